import { setMaxListeners } from "node:events";
import * as http from "node:http";
import * as http2 from "node:http2";
import type * as net from "node:net";
import { Code, ConnectError, type ContextValues } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { Store } from "./store/store.js";
import type { Logger } from "./log.js";
import type { NodeHandler } from "./rest/node-types.js";
import { createRestHandler } from "./rest/transcode.js";
import { createCleartextListener } from "./net/cleartext-listener.js";
import { DEFAULT_H2_MAX_CONCURRENT_STREAMS, http2LimitOptions, widenConnectionWindow } from "./net/http2-limits.js";
import { DEFAULT_H2_RESET_BURST, limitStreamResets, resetFramesIn } from "./net/http2-reset-limit.js";
import { GracefulStop } from "./net/graceful-stop.js";
import { DEFAULT_EDGE_TIMEOUTS, EdgeDeadlines, type EdgeTimeouts } from "./net/edge-deadlines.js";
import { capConnections, defaultConnectionCap } from "./net/connection-cap.js";
import { startOnNextTurn } from "./net/next-turn-start.js";
import { endUnreadRequestBodies } from "./net/unread-request-body.js";
import { requireAuthority } from "./net/request-authority.js";
import { withCors } from "./net/cors.js";
import { withRpcClientFaults } from "./net/rpc-client-faults.js";
import { withHeadersChecked } from "./net/authenticate-first.js";
import { DEFAULT_CONNECTION_WRITE_BUDGET, withWriteBudget } from "./net/write-budget.js";
import { authenticateFromHeaders } from "./service/caller.js";
import { serveStaticFilesBefore, StaticFiles } from "./net/static-files.js";
import { ApiDocs, serveApiDocsBefore } from "./net/api-docs.js";
import { sessionsApiDocument } from "./openapi/sessions-api.js";
import { RPC_JSON_OPTIONS } from "./net/rpc-json-options.js";
import { connectRoutes, createOperatorServices, createServices } from "./routes.js";
import { Authenticator } from "./auth/authenticator.js";
import { HealthStatus } from "./health/health-status.js";
import { serveProbesBefore } from "./net/probes.js";
import type { ReflectionAuth } from "./config.js";
import { SessionEvents } from "./service/session-events.js";
import { IDEMPOTENCY_SWEEP_INTERVAL_MS, IdempotencySweeper } from "./service/idempotency-sweeper.js";
import { withCallObserver } from "./service/call-observer.js";
import { withClientGone } from "./service/client-gone.js";
import { withRequestId } from "./net/request-id.js";
import { procedureOf, ServerMetrics } from "./observability/server-metrics.js";
import { countOpenRequests } from "./observability/open-streams.js";
import { SessionService } from "../gen/sessions/v1/session_service_pb.js";
import { recordCalls } from "./observability/call-recorder.js";
import { serveMetricsBefore } from "./observability/metrics-endpoint.js";
import { StreamCaps, type StreamLimits } from "./service/stream-caps.js";
import { streamContextValues } from "./net/stream-connection.js";
import { endStreamsOfRevokedKeys } from "./auth/stream-revocation.js";

/** How often the keys of open streams are looked up again, by default: a revoked key's streams end within this. */
export const KEY_RECHECK_INTERVAL_MS = 5000;

/** The RPC path of WatchSession on every RPC protocol, whose open streams have a gauge. */
const WATCH_SESSION_PATH = procedureOf(SessionService.method.watchSession);

/** Largest request accepted on every protocol, in bytes. */
export const MAX_REQUEST_BYTES = 1024 * 1024;

export interface ServerOptions {
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  readonly store: Store;
  readonly logger: Logger;
  /** PEM certificate and key; when given, TLS with h2 and http/1.1 by ALPN. */
  readonly tls?: { readonly cert: string | Buffer; readonly key: string | Buffer };
  /** How long stop() lets in-flight requests run. */
  readonly shutdownTimeoutMs?: number;
  /** Where session changes are published to watchers; tests pass their own to observe it. */
  readonly events?: SessionEvents;
  /** The services' clock, Unix milliseconds; tests pass their own to move time (e.g. past the idempotency window). */
  readonly now?: () => number;
  /** The built console (dist/web), served at `/` before REST; when the folder is missing, one warning and no console. */
  readonly webRoot?: string;
  /** Origins whose browser pages may call the API (exact origins, or `*`); none by default. */
  readonly corsOrigins?: readonly string[];
  /** Whether gRPC server reflection needs an API key as the API does (the default), or never. */
  readonly reflectionAuth?: ReflectionAuth;
  /** How often expired idempotency keys are swept; defaults to IDEMPOTENCY_SWEEP_INTERVAL_MS (tests shorten it). */
  readonly idempotencySweepIntervalMs?: number;
  /** Deadlines of connections and request bodies; each missing one has its default (DEFAULT_EDGE_TIMEOUTS). */
  readonly timeouts?: Partial<EdgeTimeouts>;
  /** Connections open at once; beyond, new ones are closed on arrival. Default: from the open-file limit (defaultConnectionCap). */
  readonly maxConnections?: number;
  /** The byte budget of a list page (stored size); 4 MiB when omitted. */
  readonly listPageBytes?: number;
  /** The most messages one session holds; DEFAULT_MESSAGES_PER_SESSION (10,000) when omitted. */
  readonly maxSessionMessages?: number;
  /** Unsent answer bytes one connection may hold beyond its socket buffer; 8 MiB when omitted. */
  readonly connectionWriteBudget?: number;
  /** Streams one HTTP/2 connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS); a client that opens more loses the connection. */
  readonly h2MaxConcurrentStreams?: number;
  /** Streams a client may reset on one HTTP/2 connection in a burst (refilled over 10 s); past it, GOAWAY. */
  readonly h2ResetBurst?: number;
  /** Caps on long-lived streams (WatchSession, health Watch, reflection); DEFAULT_STREAM_LIMITS where not given. */
  readonly streamLimits?: Partial<StreamLimits>;
  /** Where open streams are counted; tests pass their own to observe it (its limits then apply, not streamLimits). */
  readonly streams?: StreamCaps;
  /** Longest a REST server stream (SSE, NDJSON) goes without writing: a heartbeat is sent then (15 s by default). */
  readonly streamHeartbeatMs?: number;
  /** How often the keys of open streams are looked up again (KEY_RECHECK_INTERVAL_MS by default). */
  readonly keyRecheckIntervalMs?: number;
}

export interface RunningServer {
  /** `http://host:port` or `https://…`, with the real port. */
  readonly url: string;
  readonly port: number;
  /** Stops accepting, lets in-flight requests finish (bounded), closes every connection. Does not close the store. */
  stop(): Promise<void>;
  /** Requests being served now (tests wait on it rather than on a delay). */
  inFlight(): number;
}

/**
 * Serves gRPC, gRPC-Web, Connect and REST JSON on one port: Connect's adapter takes the
 * RPC paths, and everything else falls through to the REST transcoder.
 */
export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const { logger } = options;
  const events = options.events ?? new SessionEvents();
  const metrics = new ServerMetrics();
  const stopObservingStore = options.store.observe?.(metrics.store);
  const stopLoggingFaults = options.store.observe?.({
    writeBatch() {},
    read() {},
    fault: ({ file, change }) =>
      logger.error({ file, change }, "storage file replaced or removed: writes are refused until the server restarts"),
  });
  const sweeper = new IdempotencySweeper(options.store, {
    now: options.now ?? Date.now,
    intervalMs: options.idempotencySweepIntervalMs ?? IDEMPOTENCY_SWEEP_INTERVAL_MS,
    onError: (err) => logger.warn({ err }, "idempotency keys not swept; the next sweep tries again"),
  });
  // Outermost around each implementation, so that metrics and request logs see what
  // clients get on every protocol, authentication failures included.
  const observeCall = recordCalls(metrics, logger);
  const authenticator = new Authenticator(options.store);
  const streams = options.streams ?? new StreamCaps(options.streamLimits);
  const stopRevocations = endStreamsOfRevokedKeys(
    streams,
    options.store,
    options.keyRecheckIntervalMs ?? KEY_RECHECK_INTERVAL_MS,
    (err) => logger.warn({ err }, "cannot look up the keys of open streams again"),
  );
  const services = createServices(options.store, logger, events, options.now, authenticator, {
    listPageBytes: options.listPageBytes,
    messagesPerSession: options.maxSessionMessages,
  }, streams).map(({ service, implementation }) => ({
    service,
    // Inside the observer, so that calls whose clients left are recorded as `canceled`.
    implementation: withCallObserver(service, withClientGone(service, implementation as never), observeCall),
  }));
  // Aborted when a stop begins: server streams (WatchSession) end with its reason at once
  // instead of holding the drain until the shutdown timeout.
  const shutdown = new AbortController();
  // Every request in flight listens to it; hundreds of watchers are no leak.
  setMaxListeners(0, shutdown.signal);
  // A request without a valid key is refused from its headers, before its body is read.
  const checkHeaders = (headers: Headers, values: ContextValues) => authenticateFromHeaders(authenticator, headers, values);
  const restRoutes = createRestHandler(services, {
    readMaxBytes: MAX_REQUEST_BYTES,
    checkHeaders,
    onInternalError: (err) => logger.error({ err }, "internal error in REST transcoding"),
    onClientGone: (method, context, error) => observeCall(method, context)(error),
    // REST server streams (SSE, NDJSON) count against the per-connection cap, and end when a stop begins, as RPC streams do.
    contextValues: streamContextValues,
    shutdownSignal: shutdown.signal,
    streamHeartbeatMs: options.streamHeartbeatMs,
  });
  // GET /openapi.json and the API reference at /docs, described from the services REST serves.
  const rest = serveApiDocsBefore(ApiDocs.create(sessionsApiDocument(services.map((s) => s.service))), restRoutes);
  const webFiles = options.webRoot === undefined ? undefined : StaticFiles.load(options.webRoot);
  if (options.webRoot !== undefined && !webFiles) {
    logger.warn({ webRoot: options.webRoot }, "no console: its folder does not exist (node scripts/build.mjs builds it)");
  }
  // gRPC health and reflection (Connect only), and the /healthz and /readyz probes.
  const health = new HealthStatus(services.map((s) => s.service.typeName));
  const operatorServices = createOperatorServices(authenticator, logger, health, services, options.reflectionAuth ?? "required", streams);
  // The services whose calls need a key: the API's, and reflection unless told otherwise.
  const keyedServices = new Set([
    ...services.map((s) => s.service.typeName),
    ...((options.reflectionAuth ?? "required") === "required" ? operatorServices.map((s) => s.service.typeName).filter((n) => n !== "grpc.health.v1.Health") : []),
  ]);
  const probes = {
    health,
    store: options.store,
    onUnready: (err: unknown) => logger.warn({ err }, "not ready: storage did not answer"),
  };
  // GET /metrics, with no API key (scrapers carry none, and it holds no session data).
  const serveMetrics = (next: NodeHandler) =>
    serveMetricsBefore(metrics.registry, (err) => logger.error({ err }, "cannot collect metrics"), next);
  const graceful = new GracefulStop();
  const timeouts = { ...DEFAULT_EDGE_TIMEOUTS, ...options.timeouts };
  const onDeadline = (deadline: string) => metrics.deadlinesExpired.inc({ deadline });
  const deadlines = new EdgeDeadlines(timeouts, onDeadline);
  // A client that does not read is not answered faster than it reads (HTTP/1.1 pipelining)
  // and holds at most the write budget: outermost, so that nothing runs for a request it
  // holds back.
  const writeBudget = (next: NodeHandler) =>
    withWriteBudget(
      options.connectionWriteBudget ?? DEFAULT_CONNECTION_WRITE_BUDGET,
      (event) => logger.info(event, "client not reading: its unsent answers passed the connection write budget; ended"),
      next,
    );
  // CORS sits outside everything that can answer, so that every answer, errors included,
  // carries its headers; inside the body handling, so that a refused preflight's body is
  // dealt with like any other. The request id comes first, so that every answer carries it.
  // Deferred one turn, so that a stream reset right behind its headers never starts.
  const handler = graceful.handler(deadlines.handler(writeBudget(startOnNextTurn(countOpenRequests(WATCH_SESSION_PATH, metrics.watchStreamsOpen, withRequestId(
    endUnreadRequestBodies(
      withCors(options.corsOrigins ?? [], requireAuthority(
        connectNodeAdapter({
          routes: withRpcClientFaults(
            withHeadersChecked(connectRoutes([...services, ...operatorServices]), keyedServices, checkHeaders),
            (message, procedure) => logger.error({ procedure, error: message }, "internal error answering an RPC; the client saw \"internal error\""),
          ),
          fallback: serveMetrics(serveProbesBefore(probes, webFiles ? serveStaticFilesBefore(webFiles, rest) : rest)),
          readMaxBytes: MAX_REQUEST_BYTES,
          jsonOptions: RPC_JSON_OPTIONS,
          shutdownSignal: shutdown.signal,
          contextValues: streamContextValues,
        }),
      )),
    ),
  ))))));

  const h2Limits = http2LimitOptions(options.h2MaxConcurrentStreams ?? DEFAULT_H2_MAX_CONCURRENT_STREAMS);
  const resetBurst = options.h2ResetBurst ?? DEFAULT_H2_RESET_BURST;
  const onResetLimit = (remoteAddress: string | undefined) => {
    metrics.h2ResetLimited.inc();
    logger.info({ remoteAddress, resetBurst }, "HTTP/2 connection closed: the client reset too many streams");
  };
  // Each new HTTP/2 session is created, and announced, synchronously inside the handing over
  // of its socket; the deadlines take the two together just after.
  let newestSession: http2.ServerHttp2Session | undefined;
  const onSession = (session: http2.ServerHttp2Session) => {
    newestSession = session;
    widenConnectionWindow(session);
    limitStreamResets(session, resetBurst, () => onResetLimit(session.socket?.remoteAddress));
    graceful.session(session);
  };
  const onProtocol = (socket: net.Socket, protocol: "unknown" | "h1" | "h2") => {
    graceful.socket(socket, protocol);
    if (protocol === "h1") deadlines.h1Socket(socket);
    if (protocol === "h2" && newestSession) deadlines.h2Session(newestSession, socket);
    newestSession = undefined;
  };
  let listener: net.Server;
  if (options.tls) {
    const secure = http2.createSecureServer(
      { ...h2Limits, ...options.tls, allowHTTP1: true, ALPNProtocols: ["h2", "http/1.1"], handshakeTimeout: timeouts.handshakeMs },
      handler,
    );
    // Read by Node's HTTP/1.1 connection handling, which allowHTTP1 uses; missing from the types.
    (secure as unknown as { keepAliveTimeout: number }).keepAliveTimeout = timeouts.keepAliveMs;
    secure.on("connection", (socket: net.Socket) => graceful.connection(socket));
    secure.on("tlsClientError", (err: Error & { code?: string }) => {
      if (err.code === "ERR_TLS_HANDSHAKE_TIMEOUT") onDeadline("handshake");
    });
    secure.on("session", onSession);
    secure.on("secureConnection", (socket: net.Socket & { alpnProtocol?: string | false }) =>
      onProtocol(socket, socket.alpnProtocol === "h2" ? "h2" : "h1"),
    );
    listener = secure;
  } else {
    const h1 = http.createServer({ keepAliveTimeout: timeouts.keepAliveMs }, handler);
    const h2 = http2.createServer(h2Limits, handler);
    h2.on("session", onSession);
    listener = createCleartextListener(
      h1,
      h2,
      timeouts.handshakeMs,
      (socket, protocol) => {
        if (protocol === "unknown") graceful.connection(socket);
        onProtocol(socket, protocol);
      },
      () => onDeadline("handshake"),
      (socket, firstFrames) => {
        if (resetFramesIn(firstFrames) <= resetBurst) return true;
        onResetLimit(socket.remoteAddress);
        return false;
      },
    );
  }
  capConnections(listener, options.maxConnections ?? defaultConnectionCap(), () => metrics.connectionsRefused.inc());

  await new Promise<void>((resolve, reject) => {
    listener.once("error", reject);
    listener.listen(options.port, options.host, () => {
      listener.off("error", reject);
      resolve();
    });
  });
  // Past listen, an accept that fails (EMFILE: out of descriptors) is logged; unhandled, it would end the process.
  listener.on("error", (err) => logger.error({ err }, "cannot accept a connection"));
  const port = (listener.address() as net.AddressInfo).port;
  const host = options.host.includes(":") ? `[${options.host}]` : options.host;
  const url = `${options.tls ? "https" : "http"}://${host}:${port}`;

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      // NOT_SERVING first: health watchers receive it before the abort ends their streams.
      health.shutdown();
      stopRevocations();
      shutdown.abort(new ConnectError("server is shutting down", Code.Unavailable));
      const closed = new Promise<void>((resolve) => listener.close(() => resolve()));
      const finished = await graceful.stop(options.shutdownTimeoutMs ?? 10_000);
      if (!finished) logger.warn("shutdown timeout: in-flight requests were cut off");
      await closed;
      sweeper.stop();
      stopObservingStore?.();
      stopLoggingFaults?.();
    })());
  return { url, port, stop, inFlight: () => graceful.inFlight };
}
