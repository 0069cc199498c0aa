import { createContextValues, type ConnectRouter, type ContextValues } from "@connectrpc/connect";
import { createAsyncIterable, type UniversalHandler, type UniversalServerRequest } from "@connectrpc/connect/protocol";
import { replacing } from "./universal-handler.js";

/**
 * Decides from a call's headers alone whether its body may be read, recording what it
 * learnt in the call's context values; false: the body is not read (see
 * authenticateFromHeaders).
 */
export type HeaderCheck = (headers: Headers, values: ContextValues) => Promise<boolean>;

/**
 * Wraps the routes given to connect-node's adapter so that calls of `services` (type
 * names) pass `check` before their body is read: connect-es reads a unary request's whole
 * body before any interceptor or handler runs, so a client without a key could otherwise
 * hold a stream (and its buffers) by announcing a body it never sends. A call the check
 * refuses is served as if it carried an empty message, without reading a byte of its body;
 * the implementation's own authentication then answers it exactly as before (Connect 401,
 * gRPC and gRPC-Web status 16, with WWW-Authenticate), logged and counted as before.
 * Connect GETs carry their message in the URL and are left as they are, as are content
 * types no protocol serves (connect-es answers those 415 without reading).
 */
export function withHeadersChecked(
  routes: (router: ConnectRouter) => void,
  services: ReadonlySet<string>,
  check: HeaderCheck,
): (router: ConnectRouter) => void {
  return (router) => {
    const first = router.handlers.length;
    routes(router);
    for (let i = first; i < router.handlers.length; i++) {
      const handler = router.handlers[i]!;
      if (services.has(handler.service.typeName)) router.handlers[i] = checkHeadersFirst(handler, check);
    }
  };
}

function checkHeadersFirst(handler: UniversalHandler, check: HeaderCheck): UniversalHandler {
  const wrapped = async (req: UniversalServerRequest) => {
    const values = req.contextValues ?? createContextValues();
    if (req.method === "GET" || (await check(req.header, values))) return handler({ ...req, contextValues: values });
    return handler({ ...withoutBody(req), contextValues: values });
  };
  return replacing(handler, wrapped);
}

/**
 * The request with an empty message in place of its body, in the form its Content-Type
 * announces: one uncompressed envelope (gRPC, gRPC-Web, Connect streaming), or the bare
 * message (Connect unary: `{}` already parsed for JSON, no bytes for binary). The headers
 * that describe the body it no longer has are dropped.
 */
function withoutBody(req: UniversalServerRequest): UniversalServerRequest {
  const mediaType = (req.header.get("content-type") ?? "").split(";", 1)[0]!.trim().toLowerCase();
  const json = mediaType.endsWith("json");
  const header = new Headers(req.header);
  header.delete("content-length");
  header.delete("content-encoding");
  if (/^application\/(grpc|grpc-web|connect)(\+|$)/.test(mediaType)) {
    return { ...req, header, body: createAsyncIterable([envelope(json ? "{}" : "")]) };
  }
  if (mediaType === "application/json") return { ...req, header, body: {} };
  if (mediaType === "application/proto") return { ...req, header, body: createAsyncIterable([]) };
  return req;
}

function envelope(payload: string): Uint8Array {
  const bytes = Buffer.alloc(5 + Buffer.byteLength(payload));
  bytes.writeUInt32BE(bytes.length - 5, 1);
  bytes.write(payload, 5);
  return bytes;
}
