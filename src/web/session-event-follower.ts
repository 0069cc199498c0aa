import { Code, ConnectError } from "@connectrpc/connect";
import { SessionEventType, type SessionEvent } from "../../gen/sessions/v1/session_event_pb.js";
import type { Api } from "./api.js";

/** The events after which a session never changes: the server ends the stream once it has sent one. */
const FINAL_EVENTS: ReadonlySet<SessionEventType> = new Set([
  SessionEventType.COMPLETED,
  SessionEventType.FAILED,
  SessionEventType.CANCELLED,
]);

/**
 * Answers that no retry can change: the key is refused, the session is gone, or the cursor
 * is past its log. Anything else ends a stream that was or could be flowing — the server
 * stopping (unavailable), a cut connection (unknown), a body cut short (connect-web's
 * "missing EndStreamResponse" or "missing trailer"), a stream cap (resource_exhausted) —
 * and is retried from the last sequence seen.
 */
const FINAL_CODES: ReadonlySet<Code> = new Set([
  Code.Unauthenticated,
  Code.PermissionDenied,
  Code.NotFound,
  Code.OutOfRange,
  Code.Unimplemented,
  Code.FailedPrecondition,
]);

/**
 * Waits before each reconnection: 1 s, doubling up to 16 s; back to 1 s once a stream has
 * delivered again. The first wait lets a restarting server come back before it is asked.
 */
export const RETRY_DELAYS_MS: readonly number[] = [1000, 2000, 4000, 8000, 16000];

export interface FollowHandlers {
  /** Each event once, by ascending sequence. */
  readonly onEvent: (event: SessionEvent) => void;
  /** A stream is open and has delivered its first event. */
  readonly onLive: () => void;
  /** The stream dropped; the follower reconnects after `delayMs`, resuming after the last sequence seen. */
  readonly onRetry: (err: ConnectError, delayMs: number) => void;
}

/**
 * Follows StreamSessionEvents for one session from `afterSequence` until the session's final
 * event (resolves), an error no retry can change (rejects with it), or `signal` aborts
 * (resolves). A dropped stream is resumed with after_sequence = the last sequence received,
 * so every event arrives exactly once and in order, across reconnections and server
 * restarts; an event at or before that sequence is never passed on, whatever the server sends.
 * Resolves with the last sequence received.
 */
export async function followSessionEvents(
  api: Api,
  sessionId: string,
  afterSequence: bigint,
  signal: AbortSignal,
  handlers: FollowHandlers,
): Promise<bigint> {
  let last = afterSequence;
  let failures = 0;
  for (;;) {
    let delivered = false;
    try {
      for await (const event of api.sessions.streamSessionEvents({ sessionId, afterSequence: last }, { signal })) {
        if (event.sequence <= last) continue;
        if (!delivered) {
          delivered = true;
          failures = 0;
          handlers.onLive();
        }
        last = event.sequence;
        handlers.onEvent(event);
        if (FINAL_EVENTS.has(event.type)) return last;
      }
      if (signal.aborted) return last;
      // Ended without a final event (a proxy closing an idle stream): resume it.
      throw new ConnectError("the event stream ended early", Code.Unavailable);
    } catch (err) {
      if (signal.aborted) return last;
      const error = ConnectError.from(err);
      if (FINAL_CODES.has(error.code)) throw error;
      // invalid_argument is ours when it comes first (a malformed request), connect-web's
      // when the stream had flowed (a body cut short).
      if (error.code === Code.InvalidArgument && !delivered) throw error;
      const delayMs = RETRY_DELAYS_MS[Math.min(failures, RETRY_DELAYS_MS.length - 1)]!;
      failures++;
      handlers.onRetry(error, delayMs);
      await sleep(delayMs, signal);
      if (signal.aborted) return last;
    }
  }
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}
