import { base64Decode } from "@bufbuild/protobuf/wire";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import {
  createAsyncIterable,
  type UniversalHandler,
  type UniversalServerRequest,
  type UniversalServerResponse,
} from "@connectrpc/connect/protocol";
import { errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import { parseQueryString } from "../rest/query-string.js";
import { replacing } from "./universal-handler.js";

/**
 * Failures that connect-es 2.1.1 reports as `internal` although the client's bytes caused
 * them, all raised before any interceptor or handler runs, so neither can correct them:
 * a binary message that does not decode — truncated, a bad wire type, nesting deeper
 * than the recursion limit, invalid UTF-8 in a string (`createBinarySerialization`, whose
 * own interface documents invalid_argument for parse failures); an envelope flagged as
 * compressed without an encoding (`envelopeDecompress`); and gzip or brotli bytes that do
 * not inflate (connect-node's `wrapZLibErrors`, for anything but Z_DATA_ERROR).
 * Matched by message because the code is all they carry; the version is pinned, and the
 * fuzz test fails if a new one words them differently.
 */
const CLIENT_FAULT_MESSAGES: readonly ((message: string) => boolean)[] = [
  (m) => m.startsWith("parse binary: "),
  (m) => m === "received compressed envelope, but do not know how to decompress",
  (m) => m === "decompression failed",
];

function isClientFault(code: string, message: string): boolean {
  return (code === "internal" || code === String(Code.Internal)) && CLIENT_FAULT_MESSAGES.some((test) => test(message));
}

/**
 * Wraps the routes given to connect-node's adapter so that hostile input is the client's
 * fault on every RPC protocol, in that protocol's own error form:
 * - the failures above answer invalid_argument (Connect: HTTP 400 and its JSON error;
 *   gRPC: grpc-status 3 in the trailers; gRPC-Web: the same in the trailer frame;
 *   Connect streaming: the end-stream message);
 * - 405 and 415, which connect-es answers with an empty body, carry a Connect JSON error
 *   as REST's do (unimplemented and invalid_argument);
 * - a Connect GET whose query has malformed percent-encoding or invalid UTF-8, or whose
 *   base64 message is not base64, is invalid_argument (URLSearchParams would have put
 *   U+FFFD in the message; bad base64 was a bare `internal error`).
 * Everything else passes through untouched, streams included.
 */
export function withRpcClientFaults(
  routes: (router: ConnectRouter) => void,
  onHiddenInternal: HiddenInternalReporter = () => {},
): (router: ConnectRouter) => void {
  return (router) => {
    const first = router.handlers.length;
    routes(router);
    for (let i = first; i < router.handlers.length; i++) router.handlers[i] = wrapHandler(router.handlers[i]!, onHiddenInternal);
  };
}

/**
 * Told of an internal error's own message that was replaced by "internal error" before it
 * reached a client: connect-es answers a failure outside the handler (encoding the
 * response, e.g. a stored value protobuf cannot encode) with the error's own text, which
 * no handler can catch.
 */
export type HiddenInternalReporter = (message: string, procedure: string) => void;

/** The only message an internal error carries to a client. */
const INTERNAL_MESSAGE = "internal error";

function isHiddenInternal(code: string, message: string): boolean {
  return (code === "internal" || code === String(Code.Internal)) && message !== INTERNAL_MESSAGE;
}

function wrapHandler(handler: UniversalHandler, onHiddenInternal: HiddenInternalReporter): UniversalHandler {
  const hide = (message: string) => onHiddenInternal(message, handler.requestPath);
  const wrapped = async (req: UniversalServerRequest): Promise<UniversalServerResponse> => {
    const malformed = req.method === "GET" ? malformedGetQuery(req.url) : undefined;
    if (malformed) return connectErrorResponse(400, malformed);
    const res = await handler(req);
    if (res.body === undefined && res.status === 415) {
      const contentType = req.header.get("content-type") ?? "";
      return connectErrorResponse(
        415,
        new ConnectError(
          `unsupported Content-Type "${contentType}" for ${handler.requestPath}: send application/json or ` +
            "application/proto (Connect), application/grpc (gRPC over HTTP/2) or application/grpc-web",
          Code.InvalidArgument,
        ),
      );
    }
    if (res.body === undefined && res.status === 405) {
      // Connect serves GET for unary methods without side effects only.
      const { methodKind, idempotency } = handler.method;
      const allow = methodKind === "unary" && idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS ? "GET, POST" : "POST";
      const error = new ConnectError(
        `method ${req.method} is not allowed for ${handler.requestPath}: use ${allow.replace(", ", " or ")}`,
        Code.Unimplemented,
      );
      return connectErrorResponse(405, error, { Allow: allow });
    }
    return reclassify(res, hide);
  };
  return replacing(handler, wrapped);
}

/**
 * A Connect GET's query: strictly percent-encoded, and with `base64=1` a message that is
 * base64. connect-es decodes the message before its try block, so bad base64 would be a
 * bare `internal error`.
 */
function malformedGetQuery(url: string): ConnectError | undefined {
  let params: URLSearchParams;
  try {
    params = parseQueryString(new URL(url).search.slice(1));
  } catch (err) {
    return err as ConnectError;
  }
  if (params.get("base64") !== "1") return undefined;
  try {
    base64Decode(params.get("message") ?? "");
  } catch {
    return new ConnectError('query parameter "message" is not valid base64', Code.InvalidArgument);
  }
  return undefined;
}

/**
 * Rewrites a client fault reported as internal, by the protocol the response speaks, and
 * replaces the message of any other internal error with "internal error" (reporting it).
 */
async function reclassify(res: UniversalServerResponse, hide: (message: string) => void): Promise<UniversalServerResponse> {
  const contentType = res.header?.get("content-type") ?? "";
  const body = res.body;
  if (body === undefined || res.header?.has("content-encoding")) return res;
  if (contentType === "application/json" && res.status === 500) return reclassifyUnaryConnect(res, body, hide);
  if (contentType.startsWith("application/grpc-web")) return { ...res, body: mapChunks(body, (c) => reclassifyGrpcWebTrailer(c, hide)) };
  if (contentType.startsWith("application/grpc")) {
    const trailer = res.trailer;
    if (trailer === undefined) return res;
    // The trailers are final once the body has ended: connect-node writes them after it.
    return { ...res, body: mapChunks(body, (chunk) => chunk, () => reclassifyGrpcTrailer(trailer, hide)) };
  }
  if (contentType.startsWith("application/connect+")) return { ...res, body: mapChunks(body, (c) => reclassifyEndStream(c, hide)) };
  return res;
}

async function reclassifyUnaryConnect(
  res: UniversalServerResponse,
  body: AsyncIterable<Uint8Array>,
  hide: (message: string) => void,
): Promise<UniversalServerResponse> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of body) chunks.push(chunk);
  const bytes = Buffer.concat(chunks);
  const json = parseJson(bytes) as { code?: unknown; message?: unknown } | undefined;
  if (typeof json?.code !== "string" || typeof json.message !== "string") return { ...res, body: createAsyncIterable([bytes]) };
  if (isClientFault(json.code, json.message)) {
    return connectErrorResponse(400, new ConnectError(json.message, Code.InvalidArgument), Object.fromEntries(res.header!));
  }
  if (isHiddenInternal(json.code, json.message)) {
    hide(json.message);
    const header = Object.fromEntries(res.header!);
    delete header["content-length"];
    return connectErrorResponse(500, new ConnectError(INTERNAL_MESSAGE, Code.Internal), header);
  }
  return { ...res, body: createAsyncIterable([bytes]) };
}

function reclassifyGrpcTrailer(trailer: Headers, hide: (message: string) => void): void {
  const status = trailer.get("grpc-status") ?? "";
  const message = decodeGrpcMessage(trailer.get("grpc-message") ?? "");
  if (isClientFault(status, message)) trailer.set("grpc-status", String(Code.InvalidArgument));
  else if (isHiddenInternal(status, message)) {
    hide(message);
    trailer.set("grpc-message", encodeURIComponent(INTERNAL_MESSAGE));
    trailer.delete("grpc-status-details-bin");
  }
}

/** gRPC-Web: an uncompressed trailer frame (flag 0x80) holds the status as header lines. */
function reclassifyGrpcWebTrailer(chunk: Uint8Array, hide: (message: string) => void): Uint8Array {
  if (!isWholeFrame(chunk, 0x80)) return chunk;
  const text = Buffer.from(chunk.subarray(5)).toString("latin1");
  const status = /^grpc-status: ?(\d+)\r$/im.exec(text)?.[1] ?? "";
  const message = decodeGrpcMessage(/^grpc-message: ?(.*)\r$/im.exec(text)?.[1] ?? "");
  if (isClientFault(status, message)) {
    return frame(0x80, Buffer.from(text.replace(/^grpc-status: ?\d+\r$/im, `grpc-status: ${Code.InvalidArgument}\r`), "latin1"));
  }
  if (!isHiddenInternal(status, message)) return chunk;
  hide(message);
  const hidden = text
    .replace(/^grpc-message: ?.*\r$/im, `grpc-message: ${encodeURIComponent(INTERNAL_MESSAGE)}\r`)
    .replace(/^grpc-status-details-bin: ?.*\r\n/im, "");
  return frame(0x80, Buffer.from(hidden, "latin1"));
}

/** Connect streaming: an uncompressed end-stream message (flag 0x02) holds `{"error": …}`. */
function reclassifyEndStream(chunk: Uint8Array, hide: (message: string) => void): Uint8Array {
  if (!isWholeFrame(chunk, 0x02)) return chunk;
  const json = parseJson(chunk.subarray(5)) as { error?: { code?: unknown; message?: unknown; details?: unknown } } | undefined;
  const error = json?.error;
  if (typeof error?.code !== "string" || typeof error.message !== "string") return chunk;
  if (isClientFault(error.code, error.message)) error.code = "invalid_argument";
  else if (isHiddenInternal(error.code, error.message)) {
    hide(error.message);
    error.message = INTERNAL_MESSAGE;
    delete error.details;
  } else return chunk;
  return frame(0x02, Buffer.from(JSON.stringify(json)));
}

function connectErrorResponse(status: number, error: ConnectError, headers: Record<string, string> = {}): UniversalServerResponse {
  const body = errorToJsonBytes(error, undefined);
  const header = new Headers(headers);
  header.set("content-type", "application/json");
  header.set("content-length", String(body.byteLength));
  return { status, header, body: createAsyncIterable([body]) };
}

/**
 * The same chunks, each passed through `map`, with `onEnd` called once the body is done;
 * `throw` and `return` reach the original iterator, so a failed write still aborts the call.
 */
function mapChunks(
  body: AsyncIterable<Uint8Array>,
  map: (chunk: Uint8Array) => Uint8Array,
  onEnd: () => void = () => {},
): AsyncIterable<Uint8Array> {
  return {
    [Symbol.asyncIterator]() {
      const it = body[Symbol.asyncIterator]();
      return {
        async next() {
          const result = await it.next();
          if (result.done) onEnd();
          return result.done ? result : { done: false, value: map(result.value) };
        },
        throw: (e?: unknown) => it.throw?.(e) ?? Promise.reject(e),
        return: (value?: unknown) => it.return?.(value) ?? Promise.resolve({ done: true as const, value: undefined }),
      };
    },
  };
}

/** Connect sends each envelope as one chunk; anything else is left as it is. */
function isWholeFrame(chunk: Uint8Array, flags: number): boolean {
  return chunk.length >= 5 && chunk[0] === flags && Buffer.from(chunk.buffer, chunk.byteOffset, 5).readUInt32BE(1) === chunk.length - 5;
}

function frame(flags: number, payload: Uint8Array): Uint8Array {
  const out = Buffer.alloc(5 + payload.length);
  out[0] = flags;
  out.writeUInt32BE(payload.length, 1);
  out.set(payload, 5);
  return out;
}

function decodeGrpcMessage(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

function parseJson(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(Buffer.from(bytes).toString("utf8"));
  } catch {
    return undefined;
  }
}
