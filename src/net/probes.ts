import type { Store } from "../store/store.js";
import { StoreUnavailableError } from "../store/store.js";
import type { HealthStatus } from "../health/health-status.js";
import { errorBody, restErrors } from "../rest/errors.js";
import type { NodeHandler, NodeRequest, NodeResponse } from "../rest/node-types.js";
import { pathOf } from "./request-path.js";

export interface Probes {
  /** Its shutdown turns readiness off before anything else of a stop happens. */
  readonly health: HealthStatus;
  /** Asked for readiness on every /readyz. */
  readonly store: Pick<Store, "ping">;
  /** Told why the store did not answer a readiness ping (the client sees only the clean reason). */
  readonly onUnready: (error: unknown) => void;
}

const PATHS = new Set(["/healthz", "/readyz"]);

/**
 * Liveness and readiness for orchestrators and load balancers, answered before routing and
 * without an API key (a probe carries none), never cached:
 * - `GET /healthz`: 200 `{"status":"ok"}` while the process serves; touches no storage, so
 *   a slow disk never gets a live process restarted;
 * - `GET /readyz`: 200 `{"status":"ready"}` once the database answers a trivial read and
 *   writes work (Store.ping: a recent write transaction's outcome, or a small write), else
 *   503 `{"status":"unavailable","reason":"…"}` with the store's clean reason, and 503
 *   from the moment the server starts to stop, so traffic moves elsewhere while it drains.
 * HEAD is answered as GET without the body; other methods 405 with `Allow`. Every other
 * path goes on to `next`.
 */
export function serveProbesBefore(probes: Probes, next: NodeHandler): NodeHandler {
  return (req, res) => {
    const path = pathOf(req);
    if (!PATHS.has(path)) return next(req, res);
    if (req.method !== "GET" && req.method !== "HEAD") {
      send(req, res, 405, errorBody(restErrors.methodNotAllowed(req.method ?? "", path)), { Allow: "GET, HEAD" });
      return;
    }
    if (path === "/healthz") {
      send(req, res, 200, { status: "ok" });
      return;
    }
    void readiness(probes).then((answer) => send(req, res, answer.ready ? 200 : 503, answer.body));
  };
}

async function readiness(probes: Probes): Promise<{ ready: boolean; body: Record<string, string> }> {
  const unavailable = (reason: string) => ({ ready: false, body: { status: "unavailable", reason } });
  const stopping = () => unavailable("server is shutting down");
  if (probes.health.shuttingDown) return stopping();
  try {
    await probes.store.ping();
  } catch (error) {
    probes.onUnready(error);
    return unavailable(error instanceof StoreUnavailableError ? error.message : "storage is unavailable");
  }
  // A stop may have begun while the database answered.
  return probes.health.shuttingDown ? stopping() : { ready: true, body: { status: "ready" } };
}

function send(req: NodeRequest, res: NodeResponse, status: number, body: object, headers: Record<string, string> = {}): void {
  const json = JSON.stringify(body);
  res.writeHead(status, {
    "Content-Type": "application/json",
    "Content-Length": String(Buffer.byteLength(json)),
    "Cache-Control": "no-store",
    ...headers,
  });
  if (req.method === "HEAD") res.end();
  else res.end(json);
}
