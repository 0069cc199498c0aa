import * as http2 from "node:http2";
import type * as net from "node:net";
import { Code, ConnectError } from "@connectrpc/connect";
import type { NodeHandler, NodeRequest } from "../rest/node-types.js";
import { errorBody } from "../rest/errors.js";

/** The deadlines of a connection at the edge, in milliseconds. */
export interface EdgeTimeouts {
  /** From accepting a connection to knowing its protocol: the sniff of cleartext bytes, or the whole TLS handshake. */
  readonly handshakeMs: number;
  /** HTTP/1.1: from the protocol being known, or the end of the previous answer, to a request's complete headers. */
  readonly headersMs: number;
  /** HTTP/2: from the preface to the client's first SETTINGS frame. */
  readonly h2SetupMs: number;
  /** From a request's headers to the last byte of its body. */
  readonly bodyMs: number;
  /** HTTP/1.1: how long a keep-alive connection waits, silent, for its next request. */
  readonly keepAliveMs: number;
  /** HTTP/2: how long a connection with no open stream is kept. */
  readonly h2IdleMs: number;
}

export const DEFAULT_EDGE_TIMEOUTS: EdgeTimeouts = {
  handshakeMs: 10_000,
  headersMs: 20_000,
  h2SetupMs: 10_000,
  bodyMs: 60_000,
  keepAliveMs: 5_000,
  h2IdleMs: 60_000,
};

/** Which deadline closed a connection or a stream, as counted in metrics. */
export type Deadline = "handshake" | "headers" | "h2_setup" | "body" | "h2_idle";

/** How long a closed connection may still flush its last bytes before it is cut. */
const CLOSE_GRACE_MS = 1000;

interface H1Connection {
  timer: NodeJS.Timeout | undefined;
  idleTimer: NodeJS.Timeout | undefined;
  /** Requests whose answer is not yet done (more than one when pipelined). */
  open: number;
  /** Refused with 408: any request still parsed from it is dropped. */
  refused: boolean;
}

/**
 * Total deadlines, which trickling cannot reset (unlike `socket.setTimeout`, which any
 * byte restarts): HTTP/1.1 request headers, HTTP/2 connection setup, request bodies, and
 * idle HTTP/2 connections. They are needed because sockets reach the HTTP servers through
 * `emit("connection")`, so Node's own `headersTimeout` and `requestTimeout`, which start
 * only on a server that listens, never run. A connection past its deadline is closed:
 * HTTP/1.1 with 408 when no answer has begun, HTTP/2 by resetting the stream (CANCEL) or
 * destroying the session.
 */
export class EdgeDeadlines {
  private readonly h1 = new WeakMap<net.Socket, H1Connection>();

  constructor(
    readonly timeouts: EdgeTimeouts,
    private readonly onExpired: (deadline: Deadline) => void = () => {},
  ) {}

  /** Starts the headers deadline of an HTTP/1.1 connection whose protocol is known. */
  h1Socket(socket: net.Socket): void {
    const connection: H1Connection = { timer: undefined, idleTimer: undefined, open: 0, refused: false };
    this.h1.set(socket, connection);
    this.awaitHeaders(socket, connection, false);
    socket.once("close", () => {
      clearTimeout(connection.timer);
      clearTimeout(connection.idleTimer);
    });
  }

  /**
   * Starts the setup deadline of an HTTP/2 session (its first SETTINGS), then keeps an idle
   * deadline running whenever no stream is open. `socket` is the session's own, which can
   * be cut even when a client that does not read keeps the session's last writes pending.
   */
  h2Session(session: http2.ServerHttp2Session, socket: net.Socket): void {
    let timer: NodeJS.Timeout | undefined = setTimeout(() => {
      this.onExpired("h2_setup");
      socket.destroy();
    }, this.timeouts.h2SetupMs);
    let open = 0;
    let setUp = false;
    const awaitStream = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        this.onExpired("h2_idle");
        session.close();
        setTimeout(() => socket.destroy(), CLOSE_GRACE_MS).unref();
      }, this.timeouts.h2IdleMs);
    };
    session.once("remoteSettings", () => {
      setUp = true;
      if (open === 0) awaitStream();
    });
    session.on("stream", (stream: http2.ServerHttp2Stream) => {
      open++;
      // A stream can only follow the client's SETTINGS (RFC 9113 §3.4), should that event have been missed.
      setUp = true;
      clearTimeout(timer);
      stream.once("close", () => {
        if (--open === 0 && setUp && !session.closed) awaitStream();
      });
    });
    session.once("close", () => clearTimeout(timer));
    socket.once("close", () => clearTimeout(timer));
  }

  /**
   * Wraps the request handler: a request's body has `bodyMs` from its headers to its last
   * byte, and on HTTP/1.1 the headers deadline restarts when the last answer is done.
   */
  handler(inner: NodeHandler): NodeHandler {
    return (req, res) => {
      const socket = req.httpVersionMajor === 1 ? (req.socket as net.Socket) : undefined;
      const connection = socket && this.h1.get(socket);
      if (connection) {
        if (connection.refused) {
          socket!.destroy();
          return;
        }
        clearTimeout(connection.timer);
        clearTimeout(connection.idleTimer);
        connection.open++;
        let done = false;
        const onDone = () => {
          if (done) return;
          done = true;
          if (--connection.open === 0 && !socket!.destroyed) this.awaitHeaders(socket!, connection, true);
        };
        res.once("finish", onDone);
        res.once("close", onDone);
      }
      if (!hasNoBody(req)) {
        const timer = setTimeout(() => {
          if (uploadEnded(req)) return;
          this.onExpired("body");
          if ("stream" in res) {
            if (!res.stream.closed) res.stream.close(http2.constants.NGHTTP2_CANCEL);
          } else if (socket) {
            if (connection) connection.refused = true;
            if (res.headersSent) socket.destroy();
            else refuseLate(socket, "the request body", this.timeouts.bodyMs);
          }
        }, this.timeouts.bodyMs);
        res.once("close", () => clearTimeout(timer));
      }
      inner(req, res);
    };
  }

  /**
   * Waits for the next request's headers; on a kept-alive connection, one that stays silent
   * for `keepAliveMs` is closed without an answer (no request was begun).
   */
  private awaitHeaders(socket: net.Socket, connection: H1Connection, keptAlive: boolean): void {
    clearTimeout(connection.timer);
    clearTimeout(connection.idleTimer);
    if (keptAlive) {
      const bytesRead = socket.bytesRead;
      connection.idleTimer = setTimeout(() => {
        if (socket.bytesRead === bytesRead) socket.destroy();
      }, this.timeouts.keepAliveMs);
    }
    connection.timer = setTimeout(() => {
      this.onExpired("headers");
      connection.refused = true;
      refuseLate(socket, "request headers", this.timeouts.headersMs);
    }, this.timeouts.headersMs);
  }
}

/**
 * Answers 408 straight on the socket (no answer has begun on it, and the request, if any,
 * is still waiting for bytes), then cuts the connection once the answer is out.
 */
function refuseLate(socket: net.Socket, what: string, ms: number): void {
  const error = new ConnectError(`${what} not received within ${ms / 1000} s`, Code.DeadlineExceeded);
  const body = JSON.stringify(errorBody(error));
  socket.end(
    `HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
  setTimeout(() => socket.destroy(), CLOSE_GRACE_MS).unref();
}

/** A request that cannot carry a body: HTTP/1.1 with neither length nor chunks (RFC 9112 §6.3); HTTP/2 ended with its headers. */
function hasNoBody(req: NodeRequest): boolean {
  if ("stream" in req) return req.stream.endAfterHeaders;
  const length = req.headers["content-length"];
  return (length === undefined || length === "0") && req.headers["transfer-encoding"] === undefined;
}

/** Whether the whole body has arrived, read by the handler or not. */
function uploadEnded(req: NodeRequest): boolean {
  if (req.complete) return true;
  const readable = ("stream" in req ? req.stream : req) as unknown as { _readableState?: { ended?: boolean } };
  return readable._readableState?.ended === true;
}
