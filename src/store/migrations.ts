/**
 * The SQLite schema, one entry per version. `PRAGMA user_version` records how many have
 * been applied; a start applies the rest, each in its own transaction. Entries are never
 * edited once released: a change is a new entry.
 */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE sessions (
    id                    TEXT    NOT NULL PRIMARY KEY,
    org_id                TEXT    NOT NULL,
    agent_id              TEXT    NOT NULL,
    model_id              TEXT    NOT NULL,
    capabilities          TEXT    NOT NULL, -- JSON array of {capability_id, config?}
    title                 TEXT    NOT NULL,
    tags                  TEXT    NOT NULL, -- JSON array of strings
    state                 TEXT    NOT NULL CHECK (state IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    input_tokens          INTEGER NOT NULL DEFAULT 0,
    output_tokens         INTEGER NOT NULL DEFAULT 0,
    cache_read_tokens     INTEGER NOT NULL DEFAULT 0,
    cache_creation_tokens INTEGER NOT NULL DEFAULT 0,
    prompt_preview        TEXT    NOT NULL DEFAULT '',
    response_preview      TEXT    NOT NULL DEFAULT '',
    created_at            INTEGER NOT NULL, -- Unix milliseconds
    updated_at            INTEGER NOT NULL,
    started_at            INTEGER,
    finished_at           INTEGER
  ) STRICT;
  CREATE INDEX sessions_by_org_created ON sessions (org_id, created_at DESC, id DESC);
  `,
];
