import * as http from "node:http";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { createRestHandler } from "../../src/rest/transcode.js";
import type { NodeHandler } from "../../src/rest/node-types.js";
import { StreamCaps, withStreamCaps } from "../../src/service/stream-caps.js";
import { streamContextValues } from "../../src/net/stream-connection.js";
import { LibraryService, ShelfEventKind, type WatchShelfRequest } from "../../gen/library/v1/library_pb.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ShelfEventSchema } from "../../gen/library/v1/library_pb.js";

type Library = ServiceImpl<typeof LibraryService>;
type ShelfEventInit = MessageInitShape<typeof ShelfEventSchema>;

/** Size of each event's note on the "flood" shelf. */
export const FLOOD_NOTE_BYTES = 64 * 1024;

/** What the streaming methods saw, for assertions about the server side. */
export class StreamObserver {
  /** Every WatchShelf request as it reached the method. */
  readonly requests: WatchShelfRequest[] = [];
  /** The signal of each WatchShelf call, in call order. */
  readonly signals: AbortSignal[] = [];
  /** Events the "flood" shelf has handed over (each pulled by the transcoder). */
  floodPulls = 0;
  /** Last-Event-ID of each request to WatchShelf, as the method's context saw the header. */
  readonly lastEventIds: Array<string | null> = [];
  /** The requests of the WatchShelf calls whose generator has finished (returned or thrown), in any way. */
  readonly finished: WatchShelfRequest[] = [];

  reset(): void {
    this.requests.length = 0;
    this.signals.length = 0;
    this.lastEventIds.length = 0;
    this.floodPulls = 0;
    this.finished.length = 0;
  }
}

function shelved(sequence: bigint, shelfId: string, note = ""): ShelfEventInit {
  return {
    sequence,
    kind: sequence % 2n === 1n ? ShelfEventKind.SHELVED : ShelfEventKind.LENT,
    book: { name: `shelves/${shelfId}/books/${sequence}`, title: `Book ${sequence}` },
    note,
  };
}

function abortedOf(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    const fail = () => reject(signal.reason instanceof ConnectError ? signal.reason : new ConnectError("canceled", Code.Canceled));
    if (signal.aborted) fail();
    else signal.addEventListener("abort", fail, { once: true });
  });
}

/**
 * The library's streaming methods, behaving by shelf id:
 * - any id: events after_sequence+1 … after_sequence+count (count 0: 3), then the end;
 *   shelf "notes" gives each event a note with a line break;
 * - "missing": not_found before any event;
 * - "broken": two events, then failed_precondition;
 * - "leaky": one event, then an Error whose text must not reach the client;
 * - "idle": no event, waits until its signal aborts;
 * - "one-then-idle": one event, then waits until its signal aborts;
 * - "deaf": one event, then waits for ever, never looking at its signal;
 * - "flood": events with a 64 KiB note, for ever, as fast as they are pulled.
 * FollowBooks answers `count` books by the body's author, or three.
 */
export function streamingLibrary(observer: StreamObserver): Pick<Library, "watchShelf" | "followBooks"> {
  return {
    async *watchShelf(request: WatchShelfRequest, context: HandlerContext): AsyncGenerator<ShelfEventInit> {
      observer.requests.push(request);
      observer.signals.push(context.signal);
      observer.lastEventIds.push(context.requestHeader.get("last-event-id"));
      try {
        const id = request.shelfId;
        const after = request.afterSequence;
        if (id === "missing") throw new ConnectError(`shelf ${id} not found`, Code.NotFound);
        if (id === "idle") await abortedOf(context.signal);
        if (id === "one-then-idle") {
          yield shelved(after + 1n, id);
          await abortedOf(context.signal);
        }
        if (id === "deaf") {
          yield shelved(after + 1n, id);
          await new Promise(() => undefined);
        }
        if (id === "broken") {
          yield shelved(after + 1n, id);
          yield shelved(after + 2n, id);
          throw new ConnectError("the shelf fell over", Code.FailedPrecondition);
        }
        if (id === "leaky") {
          yield shelved(after + 1n, id);
          throw new Error("SELECT * FROM shelves failed at /srv/db.sqlite");
        }
        if (id === "flood") {
          const note = "x".repeat(FLOOD_NOTE_BYTES);
          for (let sequence = after + 1n; ; sequence++) {
            observer.floodPulls++;
            yield shelved(sequence, id, note);
          }
        }
        const count = BigInt(request.count || 3);
        for (let sequence = after + 1n; sequence <= after + count; sequence++) {
          yield shelved(sequence, id, id === "notes" ? `line one\nline "two"` : "");
        }
      } finally {
        observer.finished.push(request);
      }
    },
    async *followBooks(request) {
      for (let i = 1; i <= 3; i++) yield { name: `shelves/s/books/${i}`, author: request.author };
    },
  };
}

/** Unary methods are not called by the stream tests. */
const unreachable = () => {
  throw new ConnectError("not used by these tests", Code.Unimplemented);
};

export interface LibraryStreamServer {
  /** The same handler over HTTP/1.1 … */
  readonly h1Url: string;
  /** … and over cleartext HTTP/2 (prior knowledge). */
  readonly h2Url: string;
  readonly observer: StreamObserver;
  readonly caps: StreamCaps;
  readonly internalErrors: unknown[];
  /** The transcoder's shutdownSignal: aborting it is the server beginning to stop. */
  readonly shutdown: AbortController;
  close(): Promise<void>;
}

export interface LibraryStreamServerOptions {
  readonly heartbeatMs?: number;
  readonly perConnectionStreams?: number;
  /** Served before REST for `GET /` (a page for the browser tests). */
  readonly page?: string;
}

/**
 * The transcoder over the test library's streaming methods, on an HTTP/1.1 and an h2c
 * port, with part 8's stream caps around the implementation (as the real server has) and
 * the connection in the context values (for the per-connection cap).
 */
export async function startLibraryStreamServer(options: LibraryStreamServerOptions = {}): Promise<LibraryStreamServer> {
  const observer = new StreamObserver();
  const caps = new StreamCaps({ perConnection: options.perConnectionStreams ?? 100 });
  const internalErrors: unknown[] = [];
  const shutdown = new AbortController();
  const implementation = {
    ...Object.fromEntries(LibraryService.methods.map((m) => [m.localName, unreachable])),
    ...streamingLibrary(observer),
  } as unknown as Library;
  const rest = createRestHandler([{ service: LibraryService, implementation: withStreamCaps(LibraryService, implementation, caps) }], {
    readMaxBytes: 1024,
    onInternalError: (error) => internalErrors.push(error),
    contextValues: streamContextValues,
    streamHeartbeatMs: options.heartbeatMs,
    shutdownSignal: shutdown.signal,
  });
  const handler: NodeHandler = (req, res) => {
    if (options.page !== undefined && req.url === "/") {
      res.setHeader("Content-Type", "text/html; charset=utf-8");
      res.end(options.page);
      return;
    }
    rest(req, res);
  };
  const h1 = http.createServer(handler);
  const h2 = http2.createServer(handler);
  const sessions = new Set<http2.ServerHttp2Session>();
  h2.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });
  const listen = (server: http.Server | http2.Http2Server) =>
    new Promise<number>((resolve) => server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port)));
  const [h1Port, h2Port] = [await listen(h1), await listen(h2)];
  return {
    h1Url: `http://127.0.0.1:${h1Port}`,
    h2Url: `http://127.0.0.1:${h2Port}`,
    observer,
    caps,
    internalErrors,
    shutdown,
    async close() {
      h1.closeAllConnections();
      for (const session of sessions) session.destroy();
      await Promise.all([new Promise((resolve) => h1.close(resolve)), new Promise((resolve) => h2.close(resolve))]);
    },
  };
}
