import type { Store } from "../store/store.js";
import { IDEMPOTENCY_WINDOW_MS } from "./idempotency.js";

/** How often expired idempotency keys are swept, by default. */
export const IDEMPOTENCY_SWEEP_INTERVAL_MS = 60_000;

/**
 * The most keys one sweep deletes: one write in a group commit, a few milliseconds here. A
 * larger backlog (a server that was down, a clock moved) goes in further sweeps, one per
 * event-loop turn, so that the requests of each turn still get their share of the batcher.
 */
export const IDEMPOTENCY_SWEEP_LIMIT = 1000;

export interface IdempotencySweeperOptions {
  /** The services' clock, Unix milliseconds. */
  readonly now: () => number;
  readonly intervalMs: number;
  /** Told why a sweep failed (storage unavailable, say); the next interval tries again. */
  readonly onError: (error: unknown) => void;
}

/**
 * Deletes idempotency keys older than the window on a timer, off the path of the creates:
 * without it, a table of keyed creates would keep every expired row until later keyed
 * creates happened to sweep them. The timer does not keep the process alive.
 */
export class IdempotencySweeper {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly store: Pick<Store, "sweepIdempotencyKeys">,
    private readonly options: IdempotencySweeperOptions,
  ) {
    this.schedule(options.intervalMs);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.sweep(), delayMs);
    this.timer.unref();
  }

  private async sweep(): Promise<void> {
    let deleted = 0;
    try {
      deleted = await this.store.sweepIdempotencyKeys(this.options.now() - IDEMPOTENCY_WINDOW_MS, IDEMPOTENCY_SWEEP_LIMIT);
    } catch (error) {
      this.options.onError(error);
    }
    this.schedule(deleted === IDEMPOTENCY_SWEEP_LIMIT ? 0 : this.options.intervalMs);
  }
}
