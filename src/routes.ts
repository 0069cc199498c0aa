import type { DescService } from "@bufbuild/protobuf";
import { Code, type ConnectRouter, type ServiceImpl } from "@connectrpc/connect";
import { SessionService, type StreamSessionEventsRequest, type WatchSessionRequest } from "../gen/sessions/v1/session_service_pb.js";
import { AgentService } from "../gen/sessions/v1/agent_service_pb.js";
import type { Store } from "./store/store.js";
import type { RestService } from "./rest/transcode.js";
import type { Logger } from "./log.js";
import { SessionServiceImpl } from "./service/sessions.js";
import { AgentServiceImpl } from "./service/agents.js";
import { SessionEvents } from "./service/session-events.js";
import { withInternalErrors, type InternalErrorReporter } from "./service/internal-errors.js";
import { withCaller } from "./service/caller.js";
import { REQUEST_ID_HEADER } from "./net/request-id.js";
import { Authenticator } from "./auth/authenticator.js";
import { Health } from "../gen/health/v1/health_pb.js";
import { ServerReflection } from "../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionV1alpha } from "../gen/grpc/reflection/v1alpha/reflection_pb.js";
import type { HealthStatus } from "./health/health-status.js";
import { createHealthService } from "./health/health-service.js";
import { ReflectionIndex } from "./reflection/reflection-index.js";
import { createReflectionService, createReflectionV1alphaService } from "./reflection/reflection-service.js";
import type { ReflectionAuth } from "./config.js";
import { StreamCaps, withStreamCaps } from "./service/stream-caps.js";
import { DEFAULT_CONCURRENT_LISTS, WorkLimiter } from "./service/work-limiter.js";

/** Bounds the services apply to their answers. */
export interface ServiceLimits {
  /** The byte budget of a list page (ListSessions, ListAgents); DEFAULT_PAGE_BYTES when omitted. */
  readonly listPageBytes?: number;
  /** The most messages one session holds; DEFAULT_MESSAGES_PER_SESSION when omitted. */
  readonly messagesPerSession?: number;
}

/**
 * Every service with its one implementation. Connect and the REST transcoder are both
 * given these same objects, so a write over one protocol is seen by all. `now` is the
 * services' clock (Unix milliseconds; the wall clock when omitted). Streams (WatchSession)
 * take a place in `streams`, after authentication.
 */
export function createServices(
  store: Store,
  logger: Logger,
  events: SessionEvents = new SessionEvents(),
  now?: () => number,
  authenticator: Authenticator = new Authenticator(store),
  limits: ServiceLimits = {},
  streams: StreamCaps = new StreamCaps(),
): RestService[] {
  const { listPageBytes, messagesPerSession } = limits;
  // One bound for both services' list pages: they share the process's memory.
  const lists = new WorkLimiter(DEFAULT_CONCURRENT_LISTS);
  const report = internalErrorReporter(logger);
  // Authentication inside the internal-error guard: a store failing during a key lookup
  // is reported like any other failure.
  return [
    {
      service: SessionService,
      implementation: withInternalErrors(
        SessionService,
        withCaller(
          SessionService,
          withStreamCaps(SessionService, new SessionServiceImpl({ store, events, now, listPageBytes, lists, messagesPerSession }), streams, (method, request) =>
            method === SessionService.method.watchSession
              ? (request as WatchSessionRequest).id
              : method === SessionService.method.streamSessionEvents
                ? (request as StreamSessionEventsRequest).sessionId
                : undefined,
          ),
          authenticator,
        ),
        report,
      ),
    },
    {
      service: AgentService,
      implementation: withInternalErrors(AgentService, withCaller(AgentService, new AgentServiceImpl({ store, now, listPageBytes, lists }), authenticator), report),
    },
  ];
}

/**
 * The services operators' tools call, for Connect's router only (they have no REST
 * routes): gRPC health, which never needs an API key, and server reflection (v1 and
 * v1alpha) describing `apiServices` and these three, which needs a key as the API does
 * unless `reflectionAuth` is "none" (with the API's authenticator, so that both share its
 * per-turn key lookups and its throttle of last-used writes). Their streams (health Watch,
 * reflection) take a place in `streams`: keyless ones too.
 */
export function createOperatorServices(
  authenticator: Authenticator,
  logger: Logger,
  health: HealthStatus,
  apiServices: readonly RestService[],
  reflectionAuth: ReflectionAuth,
  streams: StreamCaps = new StreamCaps(),
): RestService[] {
  const index = new ReflectionIndex([...apiServices.map((s) => s.service), Health, ServerReflection, ServerReflectionV1alpha]);
  const report = internalErrorReporter(logger);
  const reflection = <S extends DescService>(service: S, implementation: ServiceImpl<S>): RestService => {
    const capped = withStreamCaps(service, implementation, streams);
    return {
      service,
      implementation: withInternalErrors(service, reflectionAuth === "required" ? withCaller(service, capped, authenticator) : capped, report),
    };
  };
  return [
    { service: Health, implementation: withStreamCaps(Health, createHealthService(health), streams) },
    reflection(ServerReflection, createReflectionService(index)),
    reflection(ServerReflectionV1alpha, createReflectionV1alphaService(index)),
  ];
}

function internalErrorReporter(logger: Logger): InternalErrorReporter {
  return (error, method, answered, context) =>
    logger.error(
      {
        err: error,
        requestId: context.requestHeader.get(REQUEST_ID_HEADER) ?? undefined,
        procedure: `/${method.parent.typeName}/${method.name}`,
      },
      answered.code === Code.Unavailable ? "storage unavailable" : "internal error",
    );
}

/** Registers the services with Connect's router (gRPC, gRPC-Web and Connect). */
export function connectRoutes(services: readonly RestService[]): (router: ConnectRouter) => void {
  return (router) => {
    for (const { service, implementation } of services) router.service(service, implementation as never);
  };
}
