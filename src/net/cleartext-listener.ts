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
 *
 * HTTP/2 connections are handed over one per event-loop turn: Node parses the bytes read
 * while sniffing (up to 64 KiB, a thousand or more streams) in one go, before any of its
 * per-connection limits can act, so a hundred connections opened at once would otherwise
 * hold the loop for seconds. HTTP/1.1 connections are handed over at once.
 */
export function createCleartextListener(
  h1: http.Server,
  h2: http2.Http2Server,
  sniffMs: number,
  onSocket: (socket: net.Socket, protocol: "unknown" | "h1" | "h2") => void,
  onSniffExpired: () => void = () => {},
  /** Told of an HTTP/2 connection's first bytes after the preface; false closes it at once. */
  acceptH2: (socket: net.Socket, firstFrames: Buffer) => boolean = () => true,
): net.Server {
  const handOverH2 = oneHandOverPerTurn((socket: net.Socket) => {
    // The HTTP/2 session reads the unshifted preface itself; resuming here would drop it.
    h2.emit("connection", socket);
    onSocket(socket, "h2");
  });
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
      if (isPreface) {
        if (!acceptH2(socket, buffered.subarray(PREFACE.length))) {
          socket.destroy();
          return;
        }
        handOverH2(socket);
        return;
      }
      h1.emit("connection", socket);
      onSocket(socket, "h1");
      if (!socket.destroyed) socket.resume();
    };
    socket.on("data", onData);
    socket.on("error", () => socket.destroy());
  });
}

/** Calls `handOver` for each socket in arrival order, one per turn of the event loop; sockets closed while waiting are skipped. */
function oneHandOverPerTurn(handOver: (socket: net.Socket) => void): (socket: net.Socket) => void {
  const waiting: net.Socket[] = [];
  const next = () => {
    const socket = waiting.shift();
    if (socket && !socket.destroyed) handOver(socket);
    if (waiting.length > 0) setImmediate(next);
  };
  return (socket) => {
    waiting.push(socket);
    if (waiting.length === 1) setImmediate(next);
  };
}
