import type { SessionRecord } from "../store/store.js";

/** A change to a session: its new state, or its deletion. */
export type SessionEvent = { readonly kind: "changed"; readonly session: SessionRecord } | { readonly kind: "deleted" };

/**
 * Tells watchers of a session about every committed change to it, in commit order.
 * Publishing never blocks and never throws: a watcher that cannot keep up is its own
 * problem (see session-watch.ts), not the writer's.
 */
export class SessionEvents {
  private readonly listeners = new Map<string, Set<(event: SessionEvent) => void>>();

  /** Registers a listener for one session; returns the function that removes it. */
  subscribe(orgId: string, id: string, listener: (event: SessionEvent) => void): () => void {
    const key = `${orgId}/${id}`;
    let set = this.listeners.get(key);
    if (!set) {
      set = new Set();
      this.listeners.set(key, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.listeners.get(key) === set) this.listeners.delete(key);
    };
  }

  changed(session: SessionRecord): void {
    this.emit(`${session.orgId}/${session.id}`, { kind: "changed", session });
  }

  deleted(orgId: string, id: string): void {
    this.emit(`${orgId}/${id}`, { kind: "deleted" });
  }

  /** Sessions with at least one watcher. */
  get watchedSessions(): number {
    return this.listeners.size;
  }

  private emit(key: string, event: SessionEvent): void {
    const set = this.listeners.get(key);
    if (!set) return;
    for (const listener of [...set]) listener(event);
  }
}
