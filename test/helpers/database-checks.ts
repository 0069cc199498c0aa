import Database from "better-sqlite3";

/** A session as committed to the file, in the store's own columns. */
export interface CommittedSession {
  readonly id: string;
  readonly title: string;
  readonly tags: string[];
  readonly createdAt: bigint;
  readonly inputTokens: bigint;
  readonly outputTokens: bigint;
  readonly cacheReadTokens: bigint;
  readonly cacheCreationTokens: bigint;
  readonly version: bigint;
}

/** What a separate connection finds in the file: only what was committed. */
export interface CommittedState {
  readonly sessions: Map<string, CommittedSession>;
  /** `PRAGMA integrity_check`: "ok" when the file is sound. */
  readonly integrity: string;
  /** (session, tag) pairs in sessions.tags without their session_tags row, and the reverse. */
  readonly tagsWithoutRow: number;
  readonly rowsWithoutTag: number;
}

/**
 * Opens the database file on a connection of its own (as a second process would), reads
 * it and closes. A server may still have the file open.
 */
export function readCommitted(path: string): CommittedState {
  const db = new Database(path, { fileMustExist: true });
  try {
    const rows = db
      .prepare(
        `SELECT id, title, tags, created_at, input_tokens, output_tokens, cache_read_tokens,
           cache_creation_tokens, version FROM sessions`,
      )
      .safeIntegers(true)
      .all() as Array<Record<string, unknown>>;
    const sessions = new Map<string, CommittedSession>();
    for (const row of rows) {
      sessions.set(row.id as string, {
        id: row.id as string,
        title: row.title as string,
        tags: JSON.parse(row.tags as string) as string[],
        createdAt: row.created_at as bigint,
        inputTokens: row.input_tokens as bigint,
        outputTokens: row.output_tokens as bigint,
        cacheReadTokens: row.cache_read_tokens as bigint,
        cacheCreationTokens: row.cache_creation_tokens as bigint,
        version: row.version as bigint,
      });
    }
    const count = (sql: string) => Number(db.prepare(sql).pluck().get());
    const expected = "SELECT s.org_id, j.value, s.created_at, s.id FROM sessions AS s, json_each(s.tags) AS j";
    const stored = "SELECT org_id, tag, created_at, session_id FROM session_tags";
    return {
      sessions,
      integrity: db.pragma("integrity_check", { simple: true }) as string,
      tagsWithoutRow: count(`SELECT count(*) FROM (${expected} EXCEPT ${stored})`),
      rowsWithoutTag: count(`SELECT count(*) FROM (${stored} EXCEPT ${expected})`),
    };
  } finally {
    db.close();
  }
}
