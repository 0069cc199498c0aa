import { Code, ConnectError } from "@connectrpc/connect";
import type { NodeHandler } from "../rest/node-types.js";
import { errorBody } from "../rest/errors.js";

/**
 * Answers 400 to a request whose URL cannot be built from its host, before connect-node
 * sees it. The adapter builds `new URL(req.url, "http://" + authority)` from the Host
 * header (HTTP/2: `:authority`) synchronously inside the request listener, and throws when
 * there is none (HTTP/1.0 needs none) or when it does not parse (`Host: a b`): the throw
 * escapes to the HTTP server's "request" event and ends the process. RFC 9112 §3.2 asks
 * for 400 on an invalid Host anyway; a request without one is refused on every path
 * alike, REST included, so that no path depends on where it is routed. Node keeps the first
 * of two Host headers and drops the other; RFC 9112 §3.2 asks for 400 there too.
 */
export function requireAuthority(inner: NodeHandler): NodeHandler {
  return (req, res) => {
    const authority = "authority" in req ? req.authority : req.headers.host;
    const repeated = !("authority" in req) && hostHeaderCount(req.rawHeaders) > 1;
    if (authority !== undefined && !repeated && URL.canParse(req.url ?? "/", `http://${authority}`)) {
      inner(req, res);
      return;
    }
    const reason = authority === undefined
      ? "the request names no host"
      : repeated
        ? "the request has more than one Host header"
        : "the Host header is not a valid host";
    const text = JSON.stringify(errorBody(new ConnectError(reason, Code.InvalidArgument)));
    res.writeHead(400, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text) });
    res.end(text);
  };
}

/** How many Host headers an HTTP/1.1 request has (`rawHeaders` alternates names and values). */
function hostHeaderCount(rawHeaders: readonly string[]): number {
  let count = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i]!.toLowerCase() === "host") count++;
  return count;
}
