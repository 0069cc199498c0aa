import type { Registry } from "prom-client";
import type { NodeHandler } from "../rest/node-types.js";
import { pathOf } from "../net/request-path.js";

/** Where Prometheus scrapes. */
export const METRICS_PATH = "/metrics";

/**
 * Serves GET and HEAD of /metrics (any query string) in the Prometheus text format, with
 * no API key — the norm for scrapers, and it holds no session data; everything else goes
 * on to `next`. `onError` is told when collecting fails (the scraper gets a bare 500).
 */
export function serveMetricsBefore(registry: Registry, onError: (error: unknown) => void, next: NodeHandler): NodeHandler {
  return (req, res) => {
    const path = pathOf(req);
    if (path !== METRICS_PATH || (req.method !== "GET" && req.method !== "HEAD")) {
      next(req, res);
      return;
    }
    registry.metrics().then(
      (text) => {
        res.writeHead(200, {
          "Content-Type": registry.contentType,
          "Content-Length": Buffer.byteLength(text),
          "Cache-Control": "no-store",
        });
        if (req.method === "HEAD") res.end();
        else res.end(text);
      },
      (error: unknown) => {
        onError(error);
        res.writeHead(500, { "Content-Type": "text/plain; charset=utf-8" });
        res.end("cannot collect metrics\n");
      },
    );
  };
}
