import type { NodeHandler, NodeRequest } from "../rest/node-types.js";

/**
 * Starts each request one event-loop turn after it arrives, and not at all when its
 * client has left meanwhile. An HTTP/2 client can send a HEADERS frame and its RST_STREAM
 * right behind it, thousands in one packet (rapid reset, CVE-2023-44487); Node parses a
 * whole read, and the first read of a connection the cleartext listener sniffed in one
 * call, before any of those resets is seen. Started at once, every such stream would run
 * (a list read and encoded for nobody); deferred, the reset ones cost only Node's own
 * parsing. The cost to every other request is one setImmediate.
 */
export function startOnNextTurn(next: NodeHandler): NodeHandler {
  return (req, res) => {
    setImmediate(() => {
      if (isGone(req)) {
        res.destroy();
        return;
      }
      next(req, res);
    });
  };
}

function isGone(req: NodeRequest): boolean {
  const stream = (req as { stream?: { closed: boolean; destroyed: boolean } }).stream;
  if (stream) return stream.closed || stream.destroyed;
  return req.socket.destroyed;
}
