import { ConnectError } from "@connectrpc/connect";
import { clientGone } from "./client-gone.js";

/** List pages read and built at once, per server; the others wait their turn. */
export const DEFAULT_CONCURRENT_LISTS = 16;

/**
 * At most `limit` runs of one kind of costly work at once (list pages: a store read and
 * a message of up to page_size records each); the rest wait in arrival order, holding
 * nothing but their request. A waiter whose client leaves, or whose server stops, gives
 * up its turn without running. Without it, a thousand list streams opened at once by
 * clients that never read (HTTP/2 allows 100 per connection) were all built together.
 */
export class WorkLimiter {
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(readonly limit: number) {}

  async run<T>(signal: AbortSignal, work: () => Promise<T>): Promise<T> {
    if (this.running < this.limit) this.running++;
    else await this.turn(signal);
    try {
      return await work();
    } finally {
      this.release();
    }
  }

  /** Runs waiting now, for tests and metrics. */
  get queued(): number {
    return this.waiting.length;
  }

  private turn(signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const go = () => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      };
      const onAbort = () => {
        const at = this.waiting.indexOf(go);
        if (at !== -1) this.waiting.splice(at, 1);
        reject(clientGone(signal) ?? ConnectError.from(signal.reason));
      };
      if (signal.aborted) return onAbort();
      this.waiting.push(go);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** The finished run's place passes to the next waiter, if any. */
  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.running--;
  }
}
