import * as http2 from "node:http2";
import type * as net from "node:net";
import type { NodeHandler, NodeResponse } from "../rest/node-types.js";

/** Unsent answer bytes one connection may hold beyond its socket buffer, by default. */
export const DEFAULT_CONNECTION_WRITE_BUDGET = 8 * 1024 * 1024;

/** What happened to a connection or stream that went past its budget, for the log. */
export interface WriteBudgetEvent {
  readonly protocol: "h1" | "h2";
  /** Unsent bytes the connection held. */
  readonly unsent: number;
  readonly budget: number;
}

/**
 * Back-pressure instead of buffering: a client that does not read holds at most its
 * socket buffer plus `budget` bytes of the server's memory.
 *
 * - HTTP/1.1: pipelined requests on a connection are served one at a time, the next only
 *   once the previous answer is written out of Node's buffer into the socket (its
 *   `drain`): a client is not answered faster than it reads. Node then stops reading the
 *   socket, so pipelined requests pile up in the kernel, not here. A connection whose
 *   unsent bytes still pass `budget` after a write (one answer larger than the budget,
 *   to a client that does not read it) is destroyed.
 * - HTTP/2: streams share a connection, so the budget is for the sum of its streams'
 *   unsent bytes (data flow control holds back); a stream whose unsent bytes, with those
 *   of the streams opened before it, pass it is reset with ENHANCE_YOUR_CALM, freeing
 *   what it held. Streams that write a
 *   little at a time (server streams) wait for `drain` in connect-node, so they stay
 *   within Node's own high-water mark.
 *
 * Checked right after each write (on the next tick, once Node has uncorked the socket and
 * it has taken what the kernel accepts at once), and on HTTP/2 also before a new stream's
 * request is served, so that a connection past its budget gets no new work.
 */
export function withWriteBudget(budget: number, onExceeded: (event: WriteBudgetEvent) => void, inner: NodeHandler): NodeHandler {
  const pipelines = new WeakMap<net.Socket, Pipeline>();
  const sessions = new WeakMap<http2.Http2Session, Set<http2.Http2Stream>>();
  return (req, res) => {
    if ("stream" in res) {
      const { stream } = res;
      const session = stream.session;
      if (!session) return inner(req, res);
      let streams = sessions.get(session);
      if (!streams) sessions.set(session, (streams = new Set()));
      const open = streams;
      // Earlier streams come first: a stream is reset when its unsent bytes, added to those
      // of the streams opened before it, pass the budget, so the answers that fit are kept.
      const overBudget = () => {
        let unsent = 0;
        for (const s of open) {
          unsent += s.writableLength;
          if (s === stream) break;
        }
        if (unsent <= budget) return false;
        onExceeded({ protocol: "h2", unsent, budget });
        stream.close(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
        return true;
      };
      // A connection already past its budget gets no new work.
      if (overBudget()) return;
      open.add(stream);
      stream.once("close", () => open.delete(stream));
      afterEachWrite(res, () => {
        if (!stream.closed && !stream.destroyed) overBudget();
      });
      return inner(req, res);
    }
    const socket = req.socket as net.Socket;
    afterEachWrite(res, () => {
      if (socket.destroyed || socket.writableLength <= budget) return;
      onExceeded({ protocol: "h1", unsent: socket.writableLength, budget });
      socket.destroy();
    });
    let pipeline = pipelines.get(socket);
    if (!pipeline) pipelines.set(socket, (pipeline = new Pipeline(socket)));
    pipeline.serve(() => inner(req, res), res);
  };
}

/** The requests of one HTTP/1.1 connection, served one at a time in arrival order. */
class Pipeline {
  private busy = false;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly socket: net.Socket) {}

  serve(run: () => void, res: NodeResponse): void {
    const start = () => {
      this.busy = true;
      let done = false;
      const onDone = () => {
        if (done) return;
        done = true;
        this.next();
      };
      res.once("finish", onDone);
      res.once("close", onDone);
      run();
    };
    if (this.busy) this.waiting.push(start);
    else start();
  }

  private next(): void {
    const start = this.waiting.shift();
    if (!start) {
      this.busy = false;
      return;
    }
    if (this.socket.destroyed || !this.socket.writableNeedDrain) {
      // On a closed connection, too: the request sees it aborted, and ends at once.
      start();
      return;
    }
    const go = () => {
      this.socket.off("drain", go);
      this.socket.off("close", go);
      start();
    };
    this.socket.once("drain", go);
    this.socket.once("close", go);
  }
}

/** Calls `check` on the tick after every write and end of `res`. */
function afterEachWrite(res: NodeResponse, check: () => void): void {
  const target = res as unknown as { write: (...args: unknown[]) => boolean; end: (...args: unknown[]) => unknown };
  const { write, end } = target;
  let scheduled = false;
  const schedule = () => {
    if (scheduled) return;
    scheduled = true;
    process.nextTick(() => {
      scheduled = false;
      check();
    });
  };
  target.write = function (this: unknown, ...args: unknown[]) {
    const result = write.apply(this, args);
    schedule();
    return result;
  };
  target.end = function (this: unknown, ...args: unknown[]) {
    const result = end.apply(this, args);
    schedule();
    return result;
  };
}
