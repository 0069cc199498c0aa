import type * as net from "node:net";
import type * as http2 from "node:http2";
import type { NodeHandler, NodeResponse } from "../rest/node-types.js";

/** How long a stop lets closed connections flush their last bytes before cutting them. */
const LAST_WRITES_GRACE_MS = 300;

/**
 * Tracks connections and requests so that a stop can let in-flight requests finish.
 * Servers fed through `emit("connection")` never listen, so their own `close()` waits for
 * nothing; this does the waiting instead.
 */
export class GracefulStop {
  /** Every accepted connection still open, whatever its protocol: cut when a stop ends. */
  private readonly accepted = new Set<net.Socket>();
  private readonly pending = new Set<net.Socket>();
  private readonly h1Sockets = new Set<net.Socket>();
  private readonly h2Sessions = new Set<http2.ServerHttp2Session>();
  /** Responses not yet closed, with the HTTP/1.1 socket they travel on. */
  private readonly inflight = new Map<NodeResponse, net.Socket | undefined>();
  private stopping = false;
  private notifyIdle: (() => void) | undefined;

  /**
   * Records a connection as accepted, the raw socket under TLS included: whatever is still
   * open when a stop ends is destroyed. A closed HTTP/2 session only ends its socket and
   * waits for the client, which may never leave (or never read what is left to write).
   */
  connection(socket: net.Socket): void {
    this.accepted.add(socket);
    socket.once("close", () => this.accepted.delete(socket));
    if (this.stopping) socket.destroy();
  }

  /** Records a socket as accepted (unknown), HTTP/1.1 or HTTP/2. */
  socket(socket: net.Socket, protocol: "unknown" | "h1" | "h2"): void {
    this.pending.delete(socket);
    if (protocol === "unknown") {
      this.pending.add(socket);
      socket.once("close", () => this.pending.delete(socket));
    } else if (protocol === "h1") {
      this.h1Sockets.add(socket);
      socket.once("close", () => this.h1Sockets.delete(socket));
    }
    if (this.stopping && protocol !== "h2") socket.destroy();
  }

  /** Records an HTTP/2 session; a session opened while stopping is told to go away at once. */
  session(session: http2.ServerHttp2Session): void {
    this.h2Sessions.add(session);
    session.once("close", () => this.h2Sessions.delete(session));
    if (this.stopping) session.close();
  }

  /**
   * Wraps a handler so that its requests count as in flight until their response is
   * written (or abandoned). Not until the stream closes: an HTTP/2 client may keep
   * uploading a body the server has already answered and no longer reads.
   */
  handler(inner: NodeHandler): NodeHandler {
    return (req, res) => {
      const socket = req.httpVersionMajor === 1 ? (req.socket as net.Socket) : undefined;
      this.inflight.set(res, socket);
      if (this.stopping && socket) res.setHeader("Connection", "close");
      let done = false;
      const onDone = () => {
        if (done) return;
        done = true;
        this.inflight.delete(res);
        if (this.stopping) {
          if (socket && !this.isBusy(socket)) socket.destroySoon();
          if (this.inflight.size === 0) this.notifyIdle?.();
        }
      };
      res.once("finish", onDone);
      res.once("close", onDone);
      // For HTTP/2 the response's own events wait for the stream to close. A request whose
      // upload is complete closes right after the answer, gRPC trailers included, which go
      // out after the stream's "finish": wait for that. One still uploading counts as done
      // at "finish".
      if ("stream" in res) res.stream.once("finish", () => !req.complete && onDone());
      inner(req, res);
    };
  }

  /** Requests still running. */
  get inFlight(): number {
    return this.inflight.size;
  }

  /**
   * Closes idle connections, asks the rest to close after their current response
   * (Connection: close, HTTP/2 GOAWAY), waits for in-flight requests up to `timeoutMs`,
   * then destroys whatever is left. Resolves to whether everything finished in time.
   */
  async stop(timeoutMs: number): Promise<boolean> {
    this.stopping = true;
    for (const socket of this.pending) socket.destroy();
    for (const socket of this.h1Sockets) if (!this.isBusy(socket)) socket.destroy();
    for (const [res, socket] of this.inflight) if (socket && !res.headersSent) res.setHeader("Connection", "close");
    for (const session of this.h2Sessions) session.close();
    let finished = this.inflight.size === 0;
    if (!finished) {
      finished = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), timeoutMs);
        this.notifyIdle = () => {
          clearTimeout(timer);
          resolve(true);
        };
      });
    }
    // Out of whatever callback settled the wait: the last request's "close" can fire while
    // Node is inside nghttp2 parsing the client's RST_STREAM, with promise jobs run before
    // nghttp2 returns. Destroying a session there aborted Node 20 (an assertion on nghttp2's
    // memory accounting) when a client reset its streams just as a stop began.
    await new Promise<void>((resolve) => setImmediate(resolve));
    for (const socket of this.h1Sockets) socket.destroy();
    for (const session of this.h2Sessions) session.destroy();
    // A moment for the last answers and GOAWAY frames to leave; then nothing stays open.
    if (this.accepted.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, LAST_WRITES_GRACE_MS);
        const check = () => this.accepted.size === 0 && (clearTimeout(timer), resolve());
        for (const socket of this.accepted) socket.once("close", () => setImmediate(check));
      });
    }
    for (const socket of this.accepted) socket.destroy();
    return finished;
  }

  private isBusy(socket: net.Socket): boolean {
    for (const s of this.inflight.values()) if (s === socket) return true;
    return false;
  }
}
