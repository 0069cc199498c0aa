import * as http2 from "node:http2";

/** Streams a client may reset on one connection in a burst: the default concurrency (nginx bounds new streams per read at twice it). */
export const DEFAULT_H2_RESET_BURST = 100;
/** The burst refills over this long: a client may go on resetting burst / 10 streams a second. */
const REFILL_MS = 10_000;

/**
 * HTTP/2 rapid reset (CVE-2023-44487), per connection: counts the streams the client
 * resets before their answer began, in a token bucket of `burst` refilled over 10 s, and
 * past it sends GOAWAY (ENHANCE_YOUR_CALM) and closes the connection. Node handles each
 * stream's HEADERS and its RST_STREAM one after the other within a read, so the
 * connection ends at the reset past the limit and the rest of the read is never served.
 * nghttp2's own limit (1,000 in a burst) lets a client that opens a new connection every
 * 900 streams keep the server busy for nothing.
 */
export function limitStreamResets(session: http2.ServerHttp2Session, burst: number, onExceeded: () => void): void {
  let tokens = burst;
  let refilledAt = performance.now();
  const take = () => {
    const now = performance.now();
    tokens = Math.min(burst, tokens + ((now - refilledAt) * burst) / REFILL_MS) - 1;
    refilledAt = now;
    if (tokens >= 0 || session.destroyed) return;
    onExceeded();
    session.goaway(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    session.destroy();
  };
  // Streams not yet counted. A stream is closed as soon as its RST_STREAM is parsed, but
  // its "close" event waits for the end of the read when the read was handed over from
  // JavaScript (the cleartext listener's first bytes): so each new stream also counts
  // the ones closed before it.
  const uncounted = new Set<http2.ServerHttp2Stream>();
  const count = (stream: http2.ServerHttp2Stream) => {
    uncounted.delete(stream);
    // (headersSent, not writableEnded: a reset stream reads as ended.)
    if (stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR && !stream.headersSent) take();
  };
  session.on("stream", (stream: http2.ServerHttp2Stream) => {
    for (const earlier of uncounted) if (earlier.closed) count(earlier);
    if (session.destroyed) return;
    uncounted.add(stream);
    stream.once("close", () => {
      if (uncounted.has(stream)) count(stream);
    });
  });
}

/**
 * RST_STREAM frames among the whole frames of `bytes`, the start of a connection after
 * its 24-byte preface. Node parses a connection's first read (what the cleartext listener
 * sniffed, up to 64 KiB: a thousand streams or more) in one call, before any "close" event
 * or limit can act; counting its resets first lets the listener refuse a connection that
 * opens with more than the burst allows, without handing it to Node at all.
 */
export function resetFramesIn(bytes: Buffer): number {
  let resets = 0;
  for (let at = 0; at + 9 <= bytes.length; ) {
    const length = bytes.readUIntBE(at, 3);
    if (at + 9 + length > bytes.length) break;
    if (bytes[at + 3] === RST_STREAM) resets++;
    at += 9 + length;
  }
  return resets;
}

const RST_STREAM = 0x3;
