import type * as http from "node:http";
import type * as http2 from "node:http2";
import { createContextValues, type ContextValues } from "@connectrpc/connect";
import { connectionKey } from "../service/stream-caps.js";

/**
 * The context values of a request for Connect's handlers: the connection it came on (its
 * HTTP/2 session, or its HTTP/1.1 socket), which the per-connection stream cap counts by.
 */
export function streamContextValues(request: http.IncomingMessage | http2.Http2ServerRequest): ContextValues {
  const connection = "stream" in request ? request.stream.session ?? request.socket : request.socket;
  return createContextValues().set(connectionKey, connection);
}
