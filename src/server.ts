import { setMaxListeners } from "node:events";
import * as http from "node:http";
import * as http2 from "node:http2";
import type * as net from "node:net";
import { Code, ConnectError } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { Store } from "./store/store.js";
import type { Logger } from "./log.js";
import type { NodeHandler } from "./rest/node-types.js";
import { createRestHandler } from "./rest/transcode.js";
import { createCleartextListener } from "./net/cleartext-listener.js";
import { GracefulStop } from "./net/graceful-stop.js";
import { endUnreadRequestBodies } from "./net/unread-request-body.js";
import { requireAuthority } from "./net/request-authority.js";
import { withCors } from "./net/cors.js";
import { withRpcClientFaults } from "./net/rpc-client-faults.js";
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
import { withCallObserver } from "./service/call-observer.js";
import { withRequestId } from "./net/request-id.js";
import { ServerMetrics } from "./observability/server-metrics.js";
import { recordCalls } from "./observability/call-recorder.js";
import { serveMetricsBefore } from "./observability/metrics-endpoint.js";
import { StreamCaps, type StreamLimits } from "./service/stream-caps.js";
import { streamContextValues } from "./net/stream-connection.js";
import { endStreamsOfRevokedKeys } from "./auth/stream-revocation.js";

/** How often the keys of open streams are looked up again, by default: a revoked key's streams end within this. */
export const KEY_RECHECK_INTERVAL_MS = 5000;

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
  /** Caps on long-lived streams (WatchSession, health Watch, reflection); DEFAULT_STREAM_LIMITS where not given. */
  readonly streamLimits?: Partial<StreamLimits>;
  /** Where open streams are counted; tests pass their own to observe it (its limits then apply, not streamLimits). */
  readonly streams?: StreamCaps;
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
  const metrics = new ServerMetrics(events);
  const stopObservingStore = options.store.observe?.(metrics.store);
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
  const services = createServices(options.store, logger, events, options.now, authenticator, streams).map(({ service, implementation }) => ({
    service,
    implementation: withCallObserver(service, implementation as never, observeCall),
  }));
  const restRoutes = createRestHandler(services, {
    readMaxBytes: MAX_REQUEST_BYTES,
    onInternalError: (err) => logger.error({ err }, "internal error in REST transcoding"),
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
  const probes = {
    health,
    store: options.store,
    onUnready: (err: unknown) => logger.warn({ err }, "not ready: storage did not answer"),
  };
  // GET /metrics, with no API key (scrapers carry none, and it holds no session data).
  const serveMetrics = (next: NodeHandler) =>
    serveMetricsBefore(metrics.registry, (err) => logger.error({ err }, "cannot collect metrics"), next);
  const graceful = new GracefulStop();
  // Aborted when a stop begins: server streams (WatchSession) end with its reason at once
  // instead of holding the drain until the shutdown timeout.
  const shutdown = new AbortController();
  // Every request in flight listens to it; hundreds of watchers are no leak.
  setMaxListeners(0, shutdown.signal);
  // CORS sits outside everything that can answer, so that every answer, errors included,
  // carries its headers; inside the body handling, so that a refused preflight's body is
  // dealt with like any other. The request id comes first, so that every answer carries it.
  const handler = graceful.handler(withRequestId(
    endUnreadRequestBodies(
      withCors(options.corsOrigins ?? [], requireAuthority(
        connectNodeAdapter({
          routes: withRpcClientFaults(connectRoutes([...services, ...operatorServices])),
          fallback: serveMetrics(serveProbesBefore(probes, webFiles ? serveStaticFilesBefore(webFiles, rest) : rest)),
          readMaxBytes: MAX_REQUEST_BYTES,
          jsonOptions: RPC_JSON_OPTIONS,
          shutdownSignal: shutdown.signal,
          contextValues: streamContextValues,
        }),
      )),
    ),
  ));

  let listener: net.Server;
  if (options.tls) {
    const secure = http2.createSecureServer({ ...options.tls, allowHTTP1: true, ALPNProtocols: ["h2", "http/1.1"] }, handler);
    secure.on("secureConnection", (socket: net.Socket & { alpnProtocol?: string | false }) =>
      graceful.socket(socket, socket.alpnProtocol === "h2" ? "h2" : "h1"),
    );
    secure.on("session", (session) => graceful.session(session));
    listener = secure;
  } else {
    const h1 = http.createServer(handler);
    const h2 = http2.createServer(handler);
    h2.on("session", (session) => graceful.session(session));
    listener = createCleartextListener(h1, h2, (socket, protocol) => graceful.socket(socket, protocol));
  }

  await new Promise<void>((resolve, reject) => {
    listener.once("error", reject);
    listener.listen(options.port, options.host, () => {
      listener.off("error", reject);
      resolve();
    });
  });
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
      stopObservingStore?.();
    })());
  return { url, port, stop, inFlight: () => graceful.inFlight };
}
