import { performance } from "node:perf_hooks";

/**
 * Runs wake-ups (a watcher's next change to send) a batch at a time, oldest first: the
 * first batch on the next turn (setImmediate), each further one after a 1 ms timer. A
 * change to a session with thousands of watchers used to wake them all inside the writer's
 * own turn: every watcher then ran its message through Connect's stream pipeline
 * (conversion, serialization, the socket write) before the writer's answer and the next
 * requests got the loop back — 4,000 watchers made each write 48 times slower. Paced,
 * requests read in between go first, and watchers that cannot be fed fast enough fall
 * behind into their bounded queues, where falling too far ends them, instead of slowing
 * writers.
 *
 * The batch adapts to what else the loop does: it doubles (up to `maxBatch`) while the
 * loop sat idle between batches — nothing else wanted it — and halves (down to
 * `minBatch`) as soon as other work ran in between.
 */
export class WakeupPacer {
  private queue: Array<(() => void) | undefined> = [];
  private head = 0;
  private scheduled = false;
  private batch: number;
  private lastUse = performance.eventLoopUtilization();

  constructor(
    readonly minBatch: number,
    readonly maxBatch: number,
  ) {
    this.batch = minBatch;
  }

  /** Runs `wake` in a later turn, after those scheduled before it. */
  schedule(wake: () => void): void {
    this.queue.push(wake);
    if (!this.scheduled) {
      this.scheduled = true;
      this.batch = this.minBatch;
      this.lastUse = performance.eventLoopUtilization();
      setImmediate(this.run);
    }
  }

  /** Wake-ups waiting for their turn. */
  get pending(): number {
    return this.queue.length - this.head;
  }

  private readonly run = (): void => {
    const use = performance.eventLoopUtilization();
    const since = performance.eventLoopUtilization(use, this.lastUse);
    // Idle for most of the time since the last batch: no request waited for the loop.
    const quiet = since.idle > 0.9 * (since.idle + since.active);
    this.batch = quiet ? Math.min(this.batch * 2, this.maxBatch) : Math.max(Math.floor(this.batch / 2), this.minBatch);
    const end = Math.min(this.head + this.batch, this.queue.length);
    while (this.head < end) {
      const wake = this.queue[this.head]!;
      this.queue[this.head++] = undefined;
      wake();
    }
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
      this.scheduled = false;
      return;
    }
    if (this.head > 4096 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    // Measured from here: the woken watchers' sends run in the microtasks after this
    // callback, so they count as the loop's work since this batch, not as idle time.
    this.lastUse = performance.eventLoopUtilization();
    setTimeout(this.run, 1);
  };
}
