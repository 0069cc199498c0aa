import { randomUUID } from "node:crypto";
import type { NodeHandler } from "../rest/node-types.js";

/** The header a request id travels in, both ways. */
export const REQUEST_ID_HEADER = "x-request-id";

/** 1–128 visible ASCII characters: anything else could forge log lines or bloat them. */
const ACCEPTABLE_REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

/**
 * Gives every request an id: the caller's `X-Request-Id` when it is 1–128 visible ASCII
 * characters, else a new UUID. The id replaces the request's header, so that every
 * protocol's handler reads the same value from `context.requestHeader` (the request log
 * does), and is answered as the `X-Request-Id` response header on every protocol — for
 * gRPC among the response headers, on errors too.
 */
export function withRequestId(inner: NodeHandler): NodeHandler {
  return (req, res) => {
    const given = req.headers[REQUEST_ID_HEADER];
    // Node joins a repeated header with ", ", which is then not acceptable: a new id.
    const id = typeof given === "string" && ACCEPTABLE_REQUEST_ID.test(given) ? given : randomUUID();
    if (id !== given) req.headers[REQUEST_ID_HEADER] = id;
    res.setHeader(REQUEST_ID_HEADER, id);
    inner(req, res);
  };
}
