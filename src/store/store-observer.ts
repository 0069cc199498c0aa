import type { StorageFault } from "./storage-file-guard.js";

/** The reads a store reports the duration of, named as metrics label them. */
export type StoreRead =
  | "find_session" | "list_sessions" | "find_message" | "list_messages" | "list_session_events"
  | "find_agent" | "list_agents" | "find_key";

/**
 * Told how long storage work takes, for metrics, so that the store itself needs no
 * metrics library. Each call runs on the storage path (inside a write's group commit):
 * it must return at once and never throw.
 */
export interface StoreObserver {
  /**
   * One group commit ended, from BEGIN to COMMIT (or to the failure that rolled it back):
   * how many writes it held, and how long it took.
   */
  writeBatch(writes: number, seconds: number): void;
  /** One read ended, successfully or not. */
  read(operation: StoreRead, seconds: number): void;
  /**
   * A file of the database was deleted or replaced under the server: from now on writes are
   * refused. Called once per store, also on observers that subscribe afterwards.
   */
  fault?(fault: StorageFault): void;
}
