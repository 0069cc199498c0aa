import { Code, ConnectError } from "@connectrpc/connect";
import type { SessionEvent } from "../../gen/sessions/v1/session_event_pb.js";
import type { StreamSessionEventsRequest } from "../../gen/sessions/v1/session_service_pb.js";
import type { SessionEventRecord, SessionEventType, SessionStore } from "../store/store.js";
import type { SessionEvents } from "./session-events.js";
import { validateSessionId } from "./session-validation.js";

/** Events read from the log at a time: one page, the most a follower holds in memory. */
export const EVENT_STREAM_PAGE = 100;
/** The byte budget of one such read (see StoredPage). */
const EVENT_STREAM_PAGE_BYTES = 4 * 1024 * 1024;

/** The events after which a session never changes again: a stream ends once it has sent one. */
const FINAL_EVENTS: ReadonlySet<SessionEventType> = new Set(["completed", "failed", "cancelled"]);

/**
 * StreamSessionEvents: the events of the session's log after `after_sequence`, then each
 * new one, read from the log, until the final event has been sent.
 *
 * The log is the truth and the in-process notifier only a wake-up: a follower reads the
 * log from the last sequence it sent, a page at a time, whenever it is told that the
 * session changed, so a missed or coalesced wake-up costs latency, never an event, and
 * resuming with the last sequence seen (on this server or another, before or after a
 * restart) sends every later event exactly once, in order. A follower that does not read
 * holds one page and no queue: the next page is read only once the previous one was taken.
 * Wake-ups go through the watchers' pacer (see WakeupPacer), never in the writer's turn.
 *
 * Other ends: the session is deleted (not_found, after the events sent before), `signal`
 * aborts (its reason when that is a ConnectError — the server stopping, a revoked key —
 * else quietly: the client left).
 */
export async function* streamSessionEvents(
  store: SessionStore,
  events: SessionEvents,
  orgId: string,
  request: StreamSessionEventsRequest,
  signal: AbortSignal,
  toMessage: (record: SessionEventRecord) => SessionEvent,
): AsyncIterable<SessionEvent> {
  const id = request.sessionId;
  validateSessionId(id, "session_id");
  if (request.afterSequence < 0n) {
    throw new ConnectError(`after_sequence must be 0 or more, got ${request.afterSequence}`, Code.InvalidArgument);
  }
  let changed = false;
  let deleted = false;
  let wake: (() => void) | undefined;
  const wakeUp = () => {
    const resolve = wake;
    wake = undefined;
    resolve?.();
  };
  // Subscribed before the first read, so that no change committed in between goes unseen.
  const unsubscribe = events.subscribe(orgId, id, (event) => {
    if (event.kind === "deleted") deleted = true;
    if (changed) return;
    changed = true;
    events.pacer.schedule(wakeUp);
  });
  signal.addEventListener("abort", wakeUp);
  try {
    const session = await store.findSession(orgId, id);
    if (!session) throw new ConnectError(`session ${id} not found`, Code.NotFound);
    if (request.afterSequence > BigInt(session.lastSequence)) {
      throw new ConnectError(
        `after_sequence ${request.afterSequence} is past the last event of session ${id} (${session.lastSequence})`,
        Code.OutOfRange,
      );
    }
    let after = Number(request.afterSequence);
    // Resuming after the final event: there is nothing more to send.
    if (after === session.lastSequence && FINAL_STATES.has(session.state)) return;
    for (;;) {
      if (signal.aborted) {
        if (signal.reason instanceof ConnectError) throw signal.reason;
        return;
      }
      changed = false;
      const page = await store.listSessionEvents(orgId, id, after, EVENT_STREAM_PAGE, EVENT_STREAM_PAGE_BYTES);
      for (const record of page.records) {
        if (signal.aborted) break;
        yield toMessage(record);
        after = record.sequence;
        if (FINAL_EVENTS.has(record.type)) return;
      }
      if (page.more || signal.aborted) continue;
      if (deleted) throw new ConnectError(`session ${id} was deleted`, Code.NotFound);
      if (!changed) await new Promise<void>((resolve) => (wake = resolve));
    }
  } finally {
    signal.removeEventListener("abort", wakeUp);
    unsubscribe();
  }
}

const FINAL_STATES: ReadonlySet<string> = new Set(["completed", "failed", "cancelled"]);
