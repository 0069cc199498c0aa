/**
 * A clock in Unix milliseconds that never goes backwards: when the wall clock steps back
 * (NTP), it holds the last reading instead. Timestamps taken from it keep their order —
 * created_at of newer sessions, updated_at after created_at — which keyset pagination on
 * (created_at, id) relies on.
 */
export function monotonicClock(now: () => number = Date.now): () => number {
  let last = -Infinity;
  return () => (last = Math.max(last, now()));
}
