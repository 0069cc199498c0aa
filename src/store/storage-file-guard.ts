import { statSync } from "node:fs";

/** A file of the database that is no longer the one the server opened. */
export interface StorageFault {
  /** The path, as the server was told it (the WAL and shared-memory index beside the real file). */
  readonly file: string;
  /** removed: nothing is at the path now; replaced: another file is. */
  readonly change: "removed" | "replaced";
}

interface WatchedFile {
  readonly path: string;
  /** `dev:ino` of the file first seen at the path; undefined until one is. */
  identity: string | undefined;
}

/**
 * Notices a database, WAL or shared-memory file deleted or replaced under the open
 * connections. SQLite keeps reading and writing the files it has open, so after `rm
 * sessions.db-wal` every commit still succeeds — into a file no restart will find. Neither
 * SQLite nor better-sqlite3 exposes its descriptors, but the path's (device, inode) against
 * the one recorded at open tells the same: a check is one stat(2) per file (~5 µs each here),
 * run by a timer and, at most every `maxAgeMs`, before each write transaction.
 *
 * A fault is final: once a file has changed, no later check clears it (a file put back at the
 * path is not the one the connections hold). `onFault` is called once, with the first fault.
 */
export class StorageFileGuard {
  private readonly files: WatchedFile[];
  private found: StorageFault | undefined;
  private checkedAt = -Infinity;
  private readonly timer: NodeJS.Timeout;

  constructor(
    paths: readonly string[],
    intervalMs: number,
    private readonly onFault: (fault: StorageFault) => void,
  ) {
    this.files = paths.map((path) => ({ path, identity: identityOf(path) ?? undefined }));
    this.checkedAt = performance.now();
    this.timer = setInterval(() => this.check(), intervalMs);
    this.timer.unref();
  }

  /** The fault found so far, without checking. */
  get fault(): StorageFault | undefined {
    return this.found;
  }

  /**
   * Checks the files unless the last check is younger than `maxAgeMs`, and returns the fault,
   * if any. A file missing at open (SQLite creates the WAL and its index at the first read or
   * write) is recorded when it first appears.
   */
  check(maxAgeMs = 0): StorageFault | undefined {
    if (this.found || performance.now() - this.checkedAt < maxAgeMs) return this.found;
    this.checkedAt = performance.now();
    for (const file of this.files) {
      const identity = identityOf(file.path);
      if (file.identity === undefined) {
        file.identity = identity ?? undefined;
        continue;
      }
      if (identity === file.identity) continue;
      // A stat that failed for another reason (EACCES, EIO) proves nothing about the file.
      if (identity === null) continue;
      this.found = { file: file.path, change: identity === undefined ? "removed" : "replaced" };
      clearInterval(this.timer);
      this.onFault(this.found);
      break;
    }
    return this.found;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

/** `dev:ino` of the file at `path` (following symbolic links); undefined when there is none, null when stat failed otherwise. */
function identityOf(path: string): string | undefined | null {
  try {
    const stat = statSync(path, { bigint: true, throwIfNoEntry: false });
    return stat === undefined ? undefined : `${stat.dev}:${stat.ino}`;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ENOTDIR" ? undefined : null;
  }
}
