import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextKey, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { Caller } from "../auth/authenticator.js";
import { callerOf } from "./caller.js";

/** How many long-lived streams (server streams and bidirectional streams) may be open at once. */
export interface StreamLimits {
  /** On the whole server. */
  readonly total: number;
  /** On the whole server, opened without an API key (health Watch; reflection with --reflection-auth none). */
  readonly keyless: number;
  /** On one connection (an HTTP/2 connection, or an HTTP/1.1 one). */
  readonly perConnection: number;
  /** Opened with the keys of one organisation (in open mode: the default organisation). */
  readonly perOrg: number;
  /** Following one session (WatchSession, StreamSessionEvents on every protocol and over REST). */
  readonly perSession: number;
}

export const DEFAULT_STREAM_LIMITS: StreamLimits = { total: 10_000, keyless: 1000, perConnection: 100, perOrg: 5000, perSession: 1000 };

/** Each limit's option, named in the refusal so that an operator knows what to raise. */
const OPTION_OF: Record<keyof StreamLimits, string> = {
  total: "--max-streams",
  keyless: "--max-keyless-streams",
  perConnection: "--max-streams-per-connection",
  perOrg: "--max-streams-per-org",
  perSession: "--max-watchers-per-session",
};

/**
 * The connection a request came on, for the per-connection cap: any object that is the
 * same for every request of one connection. The Node adapter sets it (src/net/stream-connection.ts);
 * without it (an in-memory transport) the per-connection cap does not apply.
 */
export const connectionKey = createContextKey<object | undefined>(undefined, { description: "the request's connection" });

/** Who and what a stream is counted against. */
export interface StreamScope {
  readonly connection: object | undefined;
  /** Undefined for a stream that needs no key (health Watch). */
  readonly caller: Caller | undefined;
  /** The session the stream follows, if it follows one. */
  readonly sessionId?: string;
}

/** A place taken by open(). */
export interface StreamPlace {
  /** Aborts when the request's own signal does, or when the server ends the stream (end()). */
  readonly signal: AbortSignal;
  /** Frees the place; any number of calls. */
  release(): void;
}

interface Entry {
  readonly scope: StreamScope;
  readonly controller: AbortController;
}

/**
 * Counts the open long-lived streams against every cap, and lets the server end streams
 * it no longer wants (a revoked key). A place is freed as soon as its stream ends in any
 * way — the server ends it, the client cancels or goes away, the server stops — even when
 * the last bytes still wait behind a client that does not read.
 */
export class StreamCaps {
  readonly limits: StreamLimits;
  private readonly entries = new Set<Entry>();
  private keyless = 0;
  private readonly byConnection = new WeakMap<object, number>();
  private readonly byOrg = new Map<string, number>();
  private readonly bySession = new Map<string, number>();

  constructor(limits: Partial<StreamLimits> = {}) {
    this.limits = { ...DEFAULT_STREAM_LIMITS, ...limits };
  }

  /**
   * Takes a place for one stream, or throws resource_exhausted naming the cap that is full
   * and its option (checked from the narrowest: connection, session, organisation, keyless,
   * server). The place's signal follows `requestSignal`.
   */
  open(scope: StreamScope, requestSignal: AbortSignal): StreamPlace {
    const { connection, caller, sessionId } = scope;
    const orgId = caller?.orgId;
    const sessionKey = orgId !== undefined && sessionId !== undefined ? `${orgId}/${sessionId}` : undefined;
    if (connection && (this.byConnection.get(connection) ?? 0) >= this.limits.perConnection) {
      throw refusal("perConnection", "too many open streams on this connection", this.limits);
    }
    if (sessionKey !== undefined && (this.bySession.get(sessionKey) ?? 0) >= this.limits.perSession) {
      throw refusal("perSession", `too many watchers of session ${sessionId}`, this.limits);
    }
    if (orgId !== undefined && (this.byOrg.get(orgId) ?? 0) >= this.limits.perOrg) {
      throw refusal("perOrg", "too many open streams for this organisation", this.limits);
    }
    if (caller === undefined && this.keyless >= this.limits.keyless) {
      throw refusal("keyless", "too many open streams without an API key on this server", this.limits);
    }
    if (this.entries.size >= this.limits.total) throw refusal("total", "too many open streams on this server", this.limits);

    const entry: Entry = { scope, controller: new AbortController() };
    this.entries.add(entry);
    if (connection) this.byConnection.set(connection, (this.byConnection.get(connection) ?? 0) + 1);
    if (sessionKey !== undefined) increment(this.bySession, sessionKey, 1);
    if (orgId !== undefined) increment(this.byOrg, orgId, 1);
    if (caller === undefined) this.keyless++;

    const release = () => {
      if (!this.entries.delete(entry)) return;
      requestSignal.removeEventListener("abort", onRequestAbort);
      entry.controller.signal.removeEventListener("abort", release);
      if (connection) this.byConnection.set(connection, this.byConnection.get(connection)! - 1);
      if (sessionKey !== undefined) increment(this.bySession, sessionKey, -1);
      if (orgId !== undefined) increment(this.byOrg, orgId, -1);
      if (caller === undefined) this.keyless--;
    };
    const onRequestAbort = () => entry.controller.abort(requestSignal.reason);
    // An ended stream frees its place at once, before its implementation has unwound.
    entry.controller.signal.addEventListener("abort", release);
    requestSignal.addEventListener("abort", onRequestAbort);
    if (requestSignal.aborted) onRequestAbort();
    return { signal: entry.controller.signal, release };
  }

  /** Ends every open stream whose scope `match`es with `reason`; returns how many. */
  end(match: (scope: StreamScope) => boolean, reason: ConnectError): number {
    let ended = 0;
    for (const entry of [...this.entries]) {
      if (!match(entry.scope)) continue;
      entry.controller.abort(reason);
      ended++;
    }
    return ended;
  }

  /** The callers of the open streams that were opened with one (one per distinct key, and open mode's). */
  callers(): Caller[] {
    const byKey = new Map<string | undefined, Caller>();
    for (const { scope } of this.entries) if (scope.caller) byKey.set(scope.caller.keyId, scope.caller);
    return [...byKey.values()];
  }

  /** Streams open now. */
  get size(): number {
    return this.entries.size;
  }
}

function increment(counts: Map<string, number>, key: string, by: number): void {
  const count = (counts.get(key) ?? 0) + by;
  if (count === 0) counts.delete(key);
  else counts.set(key, count);
}

function refusal(limit: keyof StreamLimits, what: string, limits: StreamLimits): ConnectError {
  return new ConnectError(`${what}: at most ${limits[limit]} (${OPTION_OF[limit]})`, Code.ResourceExhausted);
}

/**
 * Wraps an implementation so that each of its server-streaming and bidirectional methods
 * takes a place in `caps` before it runs, and frees it when it ends. Inside the
 * authentication wrapper (withCaller), so that a caller without a valid key is refused as
 * unauthenticated, not counted; without one (health), the stream counts as keyless. The
 * method sees a signal that also aborts when the server ends the stream (StreamCaps.end),
 * with that reason. `sessionOf` names the session a request follows, for the per-session cap.
 */
export function withStreamCaps<S extends DescService>(
  service: S,
  implementation: ServiceImpl<S>,
  caps: StreamCaps,
  sessionOf: (method: DescMethod, request: unknown) => string | undefined = () => undefined,
): ServiceImpl<S> {
  const wrapped: Record<string, unknown> = {};
  const methods = implementation as unknown as Record<string, (request: unknown, context: HandlerContext) => AsyncIterable<unknown>>;
  for (const method of service.methods) {
    const fn = methods[method.localName]!.bind(implementation);
    if (method.methodKind !== "server_streaming" && method.methodKind !== "bidi_streaming") {
      wrapped[method.localName] = fn;
      continue;
    }
    wrapped[method.localName] = async function* (request: unknown, context: HandlerContext) {
      const place = caps.open(
        {
          connection: context.values.get(connectionKey),
          caller: callerOf(context),
          // A bidirectional stream's request is an iterable, never a session's.
          sessionId: method.methodKind === "server_streaming" ? sessionOf(method, request) : undefined,
        },
        context.signal,
      );
      // A bidirectional implementation waits on its requests: they end with the stream.
      const input = method.methodKind === "bidi_streaming" ? endingWith(request as AsyncIterable<unknown>, place.signal) : request;
      try {
        yield* fn(input, { ...context, signal: place.signal });
      } finally {
        place.release();
      }
    };
  }
  return wrapped as ServiceImpl<S>;
}

/**
 * `requests`, ending when `signal` aborts even while a read waits: with the abort's reason
 * when that is a ConnectError (a revoked key, the server stopping), else as if the client
 * had closed its side (it went away).
 */
function endingWith<T>(requests: AsyncIterable<T>, signal: AbortSignal): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator]() {
      const it = requests[Symbol.asyncIterator]();
      const ended = (): Promise<IteratorResult<T>> =>
        signal.reason instanceof ConnectError ? Promise.reject(signal.reason) : Promise.resolve({ done: true, value: undefined });
      return {
        next() {
          if (signal.aborted) return ended();
          return new Promise<IteratorResult<T>>((resolve, reject) => {
            const onAbort = () => void ended().then(resolve, reject);
            signal.addEventListener("abort", onAbort, { once: true });
            it.next().then(
              (result) => (signal.removeEventListener("abort", onAbort), resolve(result)),
              (error: unknown) => (signal.removeEventListener("abort", onAbort), reject(error)),
            );
          });
        },
        return(value?: unknown) {
          return it.return?.(value) ?? Promise.resolve({ done: true, value: undefined });
        },
      };
    },
  };
}
