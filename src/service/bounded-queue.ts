/**
 * A queue between one synchronous producer and one asynchronous consumer that never
 * grows past `limit` and never makes the producer wait: a full queue refuses the item,
 * and the producer decides what that means (for a watcher: it fell behind).
 *
 * With `pace`, a waiting consumer is never handed an item inside push() or take():
 * `pace` is asked to run the hand-over later (see WakeupPacer), so that the producer's
 * turn is not spent on the consumer's work. Without it, items are handed over at once.
 */
export class BoundedQueue<T> {
  private items: T[] = [];
  private waiter: { resolve: (item: T | undefined) => void; reject: (error: unknown) => void } | undefined;
  private closed = false;
  private failure: unknown;
  private handOverScheduled = false;

  constructor(
    readonly limit: number,
    private readonly pace?: (handOver: () => void) => void,
  ) {}

  /** Adds an item for take(). False, adding nothing, when the queue is full or closed. */
  push(item: T): boolean {
    if (this.closed || this.items.length >= this.limit) return false;
    this.items.push(item);
    if (this.waiter) this.handOverLater();
    return true;
  }

  /**
   * Ends the queue at once: queued items are dropped, so a consumer that stopped reading
   * holds no memory. take() then rejects with `error`, or resolves undefined without one.
   * Only the first close counts.
   */
  close(error?: unknown): void {
    if (this.closed) return;
    this.closed = true;
    this.failure = error;
    this.items = [];
    const waiter = this.waiter;
    this.waiter = undefined;
    if (error === undefined) waiter?.resolve(undefined);
    else waiter?.reject(error);
  }

  /**
   * The oldest item, waiting for one if need be; undefined once closed without an error.
   * One take() at a time.
   */
  take(): Promise<T | undefined> {
    if (this.closed) return this.failure === undefined ? Promise.resolve(undefined) : Promise.reject(this.failure);
    if (this.items.length > 0 && !this.pace) return Promise.resolve(this.items.shift());
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
      if (this.items.length > 0) this.handOverLater();
    });
  }

  /** Items waiting to be taken. */
  get size(): number {
    return this.items.length;
  }

  private handOverLater(): void {
    if (!this.pace) {
      this.handOver();
      return;
    }
    if (this.handOverScheduled) return;
    this.handOverScheduled = true;
    this.pace(() => {
      this.handOverScheduled = false;
      this.handOver();
    });
  }

  private handOver(): void {
    const waiter = this.waiter;
    // Closed meanwhile (close() settled the waiter), or nothing left to hand over.
    if (!waiter || this.items.length === 0) return;
    this.waiter = undefined;
    waiter.resolve(this.items.shift());
  }
}
