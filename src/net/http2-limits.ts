import type * as http2 from "node:http2";

/** Streams one HTTP/2 connection may have open at once by default (Envoy's edge default; nginx uses 128). */
export const DEFAULT_H2_MAX_CONCURRENT_STREAMS = 100;
/** Largest header list (names, values and 32 bytes each, as RFC 9113 counts them) a request may send. */
export const H2_MAX_HEADER_LIST_BYTES = 64 * 1024;
/** What one stream may send before the server reads it (Envoy's edge default). */
export const H2_STREAM_WINDOW_BYTES = 64 * 1024;
/** What one connection may send, all its streams together, before the server reads it (Envoy's edge default). */
export const H2_CONNECTION_WINDOW_BYTES = 1024 * 1024;

/**
 * Options for http2.createServer and createSecureServer: the SETTINGS frame every
 * connection starts with (Node's own is empty, so a client could open 2^32 streams at
 * once). nghttp2 enforces them too: a header list past the limit resets its stream, and a
 * stream past the concurrency limit ends the connection with GOAWAY.
 */
export function http2LimitOptions(maxConcurrentStreams: number): http2.ServerOptions {
  return {
    settings: {
      maxConcurrentStreams,
      maxHeaderListSize: H2_MAX_HEADER_LIST_BYTES,
      initialWindowSize: H2_STREAM_WINDOW_BYTES,
    },
  };
}

/** The connection window is no SETTINGS value: a WINDOW_UPDATE on stream 0 raises it once the session starts. */
export function widenConnectionWindow(session: http2.ServerHttp2Session): void {
  const raise = () => session.setLocalWindowSize(H2_CONNECTION_WINDOW_BYTES);
  if (session.connecting) session.once("connect", raise);
  else raise();
}
