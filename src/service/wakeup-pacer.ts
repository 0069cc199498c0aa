/**
 * Runs wake-ups (a watcher's next change to send) `perTurn` at a time, oldest first: the
 * first batch on the next turn (setImmediate), each further one after a 1 ms timer. A change to a session with thousands of
 * watchers used to wake them all inside the writer's own turn: every watcher then ran its
 * message through Connect's stream pipeline (conversion, serialization, the socket write)
 * before the writer's answer and the next requests got the loop back — 4,000 watchers made
 * each write 40 times slower. Paced, requests read in between go first, and watchers that
 * cannot be fed fast enough fall behind into their bounded queues, where falling too far
 * ends them, instead of slowing writers.
 */
export class WakeupPacer {
  private queue: Array<(() => void) | undefined> = [];
  private head = 0;
  private scheduled = false;

  constructor(readonly perTurn: number) {}

  /** Runs `wake` in a later turn, after those scheduled before it. */
  schedule(wake: () => void): void {
    this.queue.push(wake);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.run);
    }
  }

  /** Wake-ups waiting for their turn. */
  get pending(): number {
    return this.queue.length - this.head;
  }

  private readonly run = (): void => {
    const end = Math.min(this.head + this.perTurn, this.queue.length);
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
    // More waiting: after a timer, not the next turn, so that the loop is never kept busy
    // by wake-ups alone and the requests that arrive meanwhile have most of it.
    setTimeout(this.run, 1);
  };
}
