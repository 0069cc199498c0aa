import * as http2 from "node:http2";
import type { NodeHandler, NodeRequest } from "../rest/node-types.js";

/** How much of an abandoned HTTP/2 upload is read and discarded before the stream is reset. */
const H2_DRAIN_LIMIT_BYTES = 8 * 1024 * 1024;

/**
 * Ends a request cleanly when its answer goes out before its body was read — a body over
 * the size limit, or one refused early — on whatever path answered it (Connect, gRPC-Web,
 * REST):
 * - HTTP/1.1: the answer says `Connection: close`. Otherwise the client would reuse a
 *   connection whose unread body the server is about to abandon, and its next call would
 *   fail with a reset.
 * - HTTP/2: the rest of the upload is read and discarded, so the client's upload
 *   finishes, it reads the answer, and a graceful stop does not wait on a stream that
 *   flow control has stalled. Resetting the stream instead (RST_STREAM NO_ERROR, as
 *   RFC 9113 §8.1 allows) made grpc-js hang and connect-node report `unknown`.
 *   An upload that goes on past H2_DRAIN_LIMIT_BYTES is reset after all.
 */
export function endUnreadRequestBodies(inner: NodeHandler): NodeHandler {
  return (req, res) => {
    if (req.httpVersionMajor === 1) {
      const writeHead = res.writeHead as (...args: unknown[]) => unknown;
      (res as { writeHead: unknown }).writeHead = function (this: typeof res, ...args: unknown[]) {
        // Node's parser marks even a bodiless request complete only after the request event
        // returns: one answered at once (a probe, a preflight, a file) has nothing unread.
        if (!req.complete && !hasNoBody(req)) this.setHeader("Connection", "close");
        return writeHead.apply(this, args);
      };
    } else if ("stream" in res) {
      // connect-node reads the body with `for await`, and leaving that loop early (a message
      // refused before its upload ended) destroys the request. Node then never gives back the
      // connection's flow-control window for what the client had already sent, and every
      // later stream on that connection stalls. Kept alive, the request is drained below.
      (req as unknown as Record<symbol, unknown>)[Symbol.asyncIterator] = () => req.iterator({ destroyOnReturn: false });
      // The stream's own "finish" (its writable side is done): the response object's
      // "finish" waits for the whole stream to close, which a stalled upload prevents.
      const { stream } = res;
      stream.once("finish", () => {
        if (req.complete || stream.closed) return;
        let drained = 0;
        // A reader that stopped without finishing (connect's iterator after an extra message)
        // still listens for "readable", and while it does, resume() cannot make data flow.
        req.removeAllListeners("readable");
        req.removeAllListeners("data");
        req.on("data", (chunk: Buffer) => {
          drained += chunk.length;
          if (drained > H2_DRAIN_LIMIT_BYTES && !stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
        });
        req.resume();
      });
    }
    inner(req, res);
  };
}

/** An HTTP/1.1 request with neither Content-Length (or 0) nor Transfer-Encoding has no body (RFC 9112 §6.3). */
function hasNoBody(req: NodeRequest): boolean {
  const length = req.headers["content-length"];
  return (length === undefined || length === "0") && req.headers["transfer-encoding"] === undefined;
}
