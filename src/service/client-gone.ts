import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { wrapMethods } from "./method-wrapper.js";

/**
 * Whether a call's client has gone away — it reset its HTTP/2 stream, closed its
 * connection, or stopped an upload half-way — as the `canceled` error that says so, with
 * the real cause in its message; undefined while the client is there, and when the server
 * ended the call itself (stopping: `unavailable`; past its deadline: `deadline_exceeded`).
 */
export function clientGone(signal: AbortSignal): ConnectError | undefined {
  if (!signal.aborted) return undefined;
  const reason: unknown = signal.reason;
  if (reason instanceof ConnectError) {
    if (reason.code === Code.Unavailable || reason.code === Code.DeadlineExceeded) return undefined;
    if (reason.code === Code.Canceled && reason.rawMessage.startsWith(GONE)) return reason;
  }
  const cause =
    reason instanceof ConnectError ? reason.rawMessage : reason instanceof Error && reason.name !== "AbortError" ? reason.message : "it closed the connection";
  return new ConnectError(`${GONE}${cause}`, Code.Canceled, undefined, undefined, reason);
}

const GONE = "the client went away: ";

/** Throws clientGone's error when the client has gone away. */
export function throwIfClientGone(signal: AbortSignal): void {
  const gone = clientGone(signal);
  if (gone) throw gone;
}

/** One turn of the event loop: what has arrived meanwhile (a reset, a closed socket) is seen after it. */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Wraps an implementation so that a call whose client has gone away costs next to
 * nothing: it does not start (the server starts requests one turn after they arrive, see
 * next-turn-start.ts, so a reset sent right behind its HEADERS frame has been seen), a
 * unary answer is not encoded for nobody, and whatever the method throws meanwhile (a
 * body read cut short, a write to a closed stream) is `canceled` with the real cause,
 * never `internal`. Streams end through their own signal (see session-watch.ts).
 */
export function withClientGone<S extends DescService>(service: S, implementation: ServiceImpl<S>): ServiceImpl<S> {
  return wrapMethods(service, implementation, () => ({
    before: async (context) => throwIfClientGone(context.signal),
    after: (context) => throwIfClientGone(context.signal),
    mapError: (error, context) => clientGone(context.signal) ?? error,
  }));
}
