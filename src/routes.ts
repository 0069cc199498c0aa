import { Code, type ConnectRouter } from "@connectrpc/connect";
import { SessionService } from "../gen/sessions/v1/session_service_pb.js";
import { AgentService } from "../gen/sessions/v1/agent_service_pb.js";
import type { Store } from "./store/store.js";
import type { RestService } from "./rest/transcode.js";
import type { Logger } from "./log.js";
import { SessionServiceImpl } from "./service/sessions.js";
import { AgentServiceImpl } from "./service/agents.js";
import { SessionEvents } from "./service/session-events.js";
import { withInternalErrors, type InternalErrorReporter } from "./service/internal-errors.js";
import { withCaller } from "./service/caller.js";
import { Authenticator } from "./auth/authenticator.js";

/**
 * Every service with its one implementation. Connect and the REST transcoder are both
 * given these same objects, so a write over one protocol is seen by all. `now` is the
 * services' clock (Unix milliseconds; the wall clock when omitted).
 */
export function createServices(
  store: Store,
  logger: Logger,
  events: SessionEvents = new SessionEvents(),
  now?: () => number,
): RestService[] {
  const report: InternalErrorReporter = (error, method, answered) =>
    logger.error(
      { err: error, procedure: `/${method.parent.typeName}/${method.name}` },
      answered.code === Code.Unavailable ? "storage unavailable" : "internal error",
    );
  const authenticator = new Authenticator(store);
  // Authentication inside the internal-error guard: a store failing during a key lookup
  // is reported like any other failure.
  return [
    {
      service: SessionService,
      implementation: withInternalErrors(
        SessionService,
        withCaller(SessionService, new SessionServiceImpl({ store, events, now }), authenticator),
        report,
      ),
    },
    {
      service: AgentService,
      implementation: withInternalErrors(AgentService, withCaller(AgentService, new AgentServiceImpl({ store, now }), authenticator), report),
    },
  ];
}

/** Registers the services with Connect's router (gRPC, gRPC-Web and Connect). */
export function connectRoutes(services: readonly RestService[]): (router: ConnectRouter) => void {
  return (router) => {
    for (const { service, implementation } of services) router.service(service, implementation as never);
  };
}
