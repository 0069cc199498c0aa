import type * as net from "node:net";
import type * as http2 from "node:http2";
import type { NodeHandler } from "../rest/node-types.js";

/**
 * Tracks connections and requests so that a stop can let in-flight requests finish.
 * Servers fed through `emit("connection")` never listen, so their own `close()` waits for
 * nothing; this does the waiting instead.
 */
export class GracefulStop {
  private readonly pending = new Set<net.Socket>();
  private readonly h1Sockets = new Map<net.Socket, number>();
  private readonly h2Sessions = new Set<http2.ServerHttp2Session>();
  private inflight = 0;
  private stopping = false;
  private notifyIdle: (() => void) | undefined;

  /** Records a socket as accepted (unknown), HTTP/1.1 or HTTP/2. */
  socket(socket: net.Socket, protocol: "unknown" | "h1" | "h2"): void {
    this.pending.delete(socket);
    if (protocol === "unknown") {
      this.pending.add(socket);
      socket.once("close", () => this.pending.delete(socket));
    } else if (protocol === "h1") {
      this.h1Sockets.set(socket, 0);
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

  /** Wraps a handler so that its requests count as in flight until their response closes. */
  handler(inner: NodeHandler): NodeHandler {
    return (req, res) => {
      this.inflight++;
      const socket = req.httpVersionMajor === 1 ? (req.socket as net.Socket) : undefined;
      if (socket) this.h1Sockets.set(socket, (this.h1Sockets.get(socket) ?? 0) + 1);
      if (this.stopping && socket) res.setHeader("Connection", "close");
      res.once("close", () => {
        this.inflight--;
        if (socket) {
          const active = (this.h1Sockets.get(socket) ?? 1) - 1;
          this.h1Sockets.set(socket, active);
          if (this.stopping && active === 0) socket.destroySoon();
        }
        if (this.stopping && this.inflight === 0) this.notifyIdle?.();
      });
      inner(req, res);
    };
  }

  /** Requests still running. */
  get inFlight(): number {
    return this.inflight;
  }

  /**
   * Closes idle connections, sends HTTP/2 GOAWAY, waits for in-flight requests up to
   * `timeoutMs`, then destroys whatever is left. Resolves to whether everything finished.
   */
  async stop(timeoutMs: number): Promise<boolean> {
    this.stopping = true;
    for (const socket of this.pending) socket.destroy();
    for (const [socket, active] of this.h1Sockets) if (active === 0) socket.destroy();
    for (const session of this.h2Sessions) session.close();
    let finished = this.inflight === 0;
    if (!finished) {
      finished = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), timeoutMs);
        this.notifyIdle = () => {
          clearTimeout(timer);
          resolve(true);
        };
      });
    }
    for (const socket of this.h1Sockets.keys()) socket.destroy();
    for (const session of this.h2Sessions) session.destroy();
    return finished;
  }
}
