import Database from "better-sqlite3";
import { StoreUnavailableError, type StoreUnavailableReason } from "./store.js";

/**
 * SQLite's primary result codes that say storage cannot serve calls for now, and why.
 * better-sqlite3 reports extended codes (`SQLITE_IOERR_FSYNC`, `SQLITE_READONLY_DBMOVED`,
 * `SQLITE_BUSY_SNAPSHOT`…); each belongs to the primary code it starts with. Every other
 * code (constraint, corrupt, misuse, …) is a bug or damage, not a passing condition, and
 * stays as it is.
 */
const UNAVAILABLE_CODES: ReadonlyArray<readonly [string, StoreUnavailableReason]> = [
  ["SQLITE_FULL", "full"], // the disk, or max_page_count
  ["SQLITE_READONLY", "read-only"], // a read-only file or mount, or query_only
  ["SQLITE_IOERR", "io"],
  ["SQLITE_BUSY", "busy"], // another connection held the lock past busy_timeout
  ["SQLITE_LOCKED", "busy"],
  ["SQLITE_CANTOPEN", "cannot-open"], // the WAL, the shared-memory index or a temporary file
];

/** The reason a SQLite error code means storage is unavailable, or undefined when it does not. */
export function unavailableReason(code: string): StoreUnavailableReason | undefined {
  for (const [primary, reason] of UNAVAILABLE_CODES) {
    if (code === primary || code.startsWith(`${primary}_`)) return reason;
  }
  return undefined;
}

/**
 * What a store call throws for an error from SQLite: a StoreUnavailableError (with the
 * SqliteError as its cause) when storage is unavailable, otherwise the error unchanged —
 * including errors a mutation throws on purpose.
 */
export function translateSqliteError(error: unknown): unknown {
  if (!(error instanceof Database.SqliteError)) return error;
  const reason = unavailableReason(error.code);
  return reason === undefined ? error : new StoreUnavailableError(reason, { cause: error });
}
