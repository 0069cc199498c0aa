import * as http from "node:http";
import * as http2 from "node:http2";

/** A request exactly as written: no URL normalisation, no header added but Content-Length. */
export interface RawRequest {
  readonly method: string;
  /** The request target as sent, percent-encoding and dot segments included. */
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body?: Uint8Array;
}

export interface RawResponse {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  /** HTTP/2 trailers (gRPC's status); empty over HTTP/1.1. */
  readonly trailers: http.IncomingHttpHeaders;
  readonly body: Buffer;
}

/** Raised when no answer arrives within the timeout: the server hangs on this request. */
export class NoAnswerError extends Error {}

/**
 * Sends over HTTP/1.1 with node:http, which (unlike fetch) sends `..`, `//` and a missing
 * Content-Type as they are. A socket error after the answer arrived is ignored: the server
 * may close a connection whose body it refused before reading it.
 */
export function sendH1(baseUrl: string, agent: http.Agent, request: RawRequest, timeoutMs: number): Promise<RawResponse> {
  const url = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      req.destroy();
      reject(new NoAnswerError(`no answer within ${timeoutMs} ms to ${request.method} ${request.path.slice(0, 200)}`));
    }, timeoutMs);
    const req = http.request(
      {
        host: url.hostname,
        port: url.port,
        agent,
        method: request.method,
        path: request.path,
        headers: { ...request.headers, ...(request.body ? { "content-length": String(request.body.length) } : {}) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => {
          clearTimeout(timer);
          resolve({ status: res.statusCode!, headers: res.headers, trailers: {}, body: Buffer.concat(chunks) });
        });
        res.on("error", (err) => {
          clearTimeout(timer);
          reject(err);
        });
      },
    );
    req.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end(request.body);
  });
}

/** Sends on an HTTP/2 session (gRPC needs it), collecting headers, body and trailers. */
export function sendH2(session: http2.ClientHttp2Session, request: RawRequest, timeoutMs: number): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ":method": request.method, ":path": request.path, ...request.headers });
    const timer = setTimeout(() => {
      stream.close(http2.constants.NGHTTP2_CANCEL);
      reject(new NoAnswerError(`no answer within ${timeoutMs} ms to ${request.method} ${request.path.slice(0, 200)}`));
    }, timeoutMs);
    let headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader = {};
    let trailers: http.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.on("response", (h) => (headers = h));
    stream.on("trailers", (t) => (trailers = t));
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    // An answer that refuses the body early ends the stream while the upload is unread.
    stream.on("error", () => {});
    stream.on("close", () => {
      clearTimeout(timer);
      if (headers[":status"] === undefined) reject(new Error(`stream closed without an answer (code ${stream.rstCode})`));
      else resolve({ status: Number(headers[":status"]), headers, trailers, body: Buffer.concat(chunks) });
    });
    stream.end(request.body);
  });
}

/** One length-prefixed message of gRPC, gRPC-Web and Connect streaming. */
export function envelope(flags: number, payload: Uint8Array, declaredLength = payload.length): Buffer {
  const header = Buffer.alloc(5);
  header[0] = flags;
  header.writeUInt32BE(declaredLength >>> 0, 1);
  return Buffer.concat([header, payload]);
}

/** Splits a response body into envelopes; a malformed tail is returned as `rest`. */
export function splitEnvelopes(body: Buffer): { frames: Array<{ flags: number; payload: Buffer }>; rest: Buffer } {
  const frames = [];
  let offset = 0;
  while (offset + 5 <= body.length) {
    const length = body.readUInt32BE(offset + 1);
    if (offset + 5 + length > body.length) break;
    frames.push({ flags: body[offset]!, payload: body.subarray(offset + 5, offset + 5 + length) });
    offset += 5 + length;
  }
  return { frames, rest: body.subarray(offset) };
}
