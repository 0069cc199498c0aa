import { Code, ConnectError } from "@connectrpc/connect";
import type { WatchSessionRequest } from "../../gen/sessions/v1/session_service_pb.js";
import type { Session } from "../../gen/sessions/v1/session_pb.js";
import type { SessionRecord, SessionState, SessionStore } from "../store/store.js";
import type { SessionEvent, SessionEvents } from "./session-events.js";
import { BoundedQueue } from "./bounded-queue.js";
import { sessionMessage } from "./session-message.js";
import { validateSessionId } from "./session-validation.js";

/** Changes a watcher may have waiting to be sent before it is ended as fallen behind. */
export const WATCH_QUEUE_LIMIT = 1024;

/**
 * Each change's message, converted once for all its watchers: the same record reaches
 * every watcher of the session. Messages are never changed once made, so sharing is safe.
 */
const messages = new WeakMap<SessionRecord, Session>();
function messageOf(record: SessionRecord): Session {
  let message = messages.get(record);
  if (!message) {
    message = sessionMessage(record);
    messages.set(record, message);
  }
  return message;
}

/** States no move leaves: a watch ends once it has sent one. */
const FINAL_STATES: ReadonlySet<SessionState> = new Set(["completed", "failed", "cancelled"]);

/**
 * WatchSession: the current state, then every change, in commit order, until a final
 * status has been sent. Other ends:
 * - the session is deleted: not_found, after the changes that came before the delete;
 * - more than `queueLimit` changes wait to be sent (the client reads too slowly, or the
 *   server is too busy to feed it: changes are handed to watchers at the pace of
 *   `events.pacer`, never in the writer's turn): resource_exhausted, at once — the waiting
 *   changes are dropped, never skipped silently;
 * - `signal` aborts: with its reason when that is a ConnectError (the server stopping
 *   sends unavailable, a deadline deadline_exceeded), else quietly (the client left).
 * The listener is removed as soon as any of these happens, even while the stream itself
 * is stuck behind a client that does not read.
 */
export async function* watchSession(
  store: SessionStore,
  events: SessionEvents,
  orgId: string,
  request: WatchSessionRequest,
  signal: AbortSignal,
  queueLimit = WATCH_QUEUE_LIMIT,
): AsyncIterable<Session> {
  const { id } = request;
  validateSessionId(id);
  const queue = new BoundedQueue<SessionEvent>(queueLimit, (handOver) => events.pacer.schedule(handOver));
  // Subscribed before the read, so that no change committed in between is missed; the
  // versions below drop the ones the read already includes.
  const unsubscribe = events.subscribe(orgId, id, (event) => {
    if (!queue.push(event)) {
      unsubscribe();
      queue.close(
        new ConnectError(
          `watcher fell behind: more than ${queueLimit} changes of session ${id} were waiting to be sent; watch again for the current state`,
          Code.ResourceExhausted,
        ),
      );
    }
  });
  const onAbort = () => {
    unsubscribe();
    queue.close(signal.reason instanceof ConnectError ? signal.reason : undefined);
  };
  signal.addEventListener("abort", onAbort);
  if (signal.aborted) onAbort();
  try {
    const current = await store.findSession(orgId, id);
    if (!current) throw new ConnectError(`session ${id} not found`, Code.NotFound);
    let sentVersion = current.version;
    yield sessionMessage(current);
    if (FINAL_STATES.has(current.state)) return;
    for (;;) {
      const event = await queue.take();
      if (event === undefined) return;
      if (event.kind === "deleted") throw new ConnectError(`session ${id} was deleted`, Code.NotFound);
      if (event.session.version <= sentVersion) continue;
      sentVersion = event.session.version;
      yield messageOf(event.session);
      if (FINAL_STATES.has(event.session.state)) return;
    }
  } finally {
    signal.removeEventListener("abort", onAbort);
    unsubscribe();
    queue.close();
  }
}
