import * as net from "node:net";
import type * as http from "node:http";
import type * as http2 from "node:http2";

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/**
 * One cleartext port for HTTP/1.1 and HTTP/2 with prior knowledge (h2c): reads until
 * the bytes either match the HTTP/2 connection preface or differ from it, puts them back,
 * and hands the socket to the matching server. Neither server listens itself.
 * `onSocket` sees every accepted socket ("unknown"), then again once it has been handed
 * over (for HTTP/2, its session exists by then), for a graceful stop and the deadlines.
 * A connection that has not shown its protocol `sniffMs` after it was accepted is closed,
 * however often it sends a byte of the preface.
 */
export function createCleartextListener(
  h1: http.Server,
  h2: http2.Http2Server,
  sniffMs: number,
  onSocket: (socket: net.Socket, protocol: "unknown" | "h1" | "h2") => void,
  onSniffExpired: () => void = () => {},
): net.Server {
  return net.createServer((socket) => {
    onSocket(socket, "unknown");
    const deadline = setTimeout(() => {
      onSniffExpired();
      socket.destroy();
    }, sniffMs);
    socket.once("close", () => clearTimeout(deadline));
    let buffered: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      const n = Math.min(buffered.length, PREFACE.length);
      const isPreface = buffered.subarray(0, n).equals(PREFACE.subarray(0, n));
      if (isPreface && n < PREFACE.length) return;
      socket.off("data", onData);
      clearTimeout(deadline);
      socket.pause();
      socket.unshift(buffered);
      const protocol = isPreface ? "h2" : "h1";
      // The HTTP/2 session reads the unshifted preface itself; resuming here would drop it.
      (isPreface ? h2 : h1).emit("connection", socket);
      onSocket(socket, protocol);
      if (!isPreface && !socket.destroyed) socket.resume();
    };
    socket.on("data", onData);
    socket.on("error", () => socket.destroy());
  });
}
