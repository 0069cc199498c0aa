import type { Gauge } from "prom-client";
import type { NodeHandler } from "../rest/node-types.js";

/**
 * Counts the requests to `path` whose answer is still open on the wire, from their start
 * to their response's "close": a stream that has ended on the server's side but still
 * waits to write to a client that does not read is open, and one whose client reset it
 * is not. (Counting subscribed watchers instead read 0 with such streams still open.)
 */
export function countOpenRequests(path: string, gauge: Gauge, next: NodeHandler): NodeHandler {
  return (req, res) => {
    const url = req.url ?? "";
    const query = url.indexOf("?");
    if ((query === -1 ? url : url.slice(0, query)) === path) {
      gauge.inc();
      res.once("close", () => gauge.dec());
    }
    next(req, res);
  };
}
