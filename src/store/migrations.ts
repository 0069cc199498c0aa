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
  `
  CREATE TABLE agents (
    id               TEXT    NOT NULL PRIMARY KEY,
    org_id           TEXT    NOT NULL,
    name             TEXT    NOT NULL,
    default_model_id TEXT    NOT NULL,
    capabilities     TEXT    NOT NULL, -- JSON array of {capability_id, config?}
    created_at       INTEGER NOT NULL, -- Unix milliseconds
    updated_at       INTEGER NOT NULL,
    version          INTEGER NOT NULL
  ) STRICT;
  CREATE INDEX agents_by_org_created ON agents (org_id, created_at DESC, id DESC);

  ALTER TABLE sessions ADD COLUMN error TEXT NOT NULL DEFAULT '';
  ALTER TABLE sessions ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
  -- One index per listing filter, each ending in the listing order so that a page is a
  -- range scan whatever its depth.
  CREATE INDEX sessions_by_org_agent_created ON sessions (org_id, agent_id, created_at DESC, id DESC);
  CREATE INDEX sessions_by_org_state_created ON sessions (org_id, state, created_at DESC, id DESC);

  -- The tags of each session again, one row per tag, for the tag filter; sessions.tags
  -- keeps their order.
  CREATE TABLE session_tags (
    org_id     TEXT    NOT NULL,
    tag        TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    session_id TEXT    NOT NULL,
    PRIMARY KEY (org_id, tag, created_at DESC, session_id DESC)
  ) STRICT, WITHOUT ROWID;
  INSERT INTO session_tags (org_id, tag, created_at, session_id)
    SELECT s.org_id, t.value, s.created_at, s.id FROM sessions AS s, json_each(s.tags) AS t;
  `,
  `
  -- Agent and status together: with only the two indexes above, one of the filters is
  -- checked row by row along the other's index, and a rare status of a busy agent walks
  -- most of the agent's sessions for one page.
  CREATE INDEX sessions_by_org_agent_state_created ON sessions (org_id, agent_id, state, created_at DESC, id DESC);
  `,
  `
  -- API keys: only a SHA-256 of each key's secret is kept; the key itself is shown once.
  CREATE TABLE api_keys (
    id           TEXT    NOT NULL PRIMARY KEY,
    org_id       TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    secret_hash  BLOB    NOT NULL,
    created_at   INTEGER NOT NULL, -- Unix milliseconds
    last_used_at INTEGER,
    revoked_at   INTEGER
  ) STRICT;
  `,
  `
  -- Idempotency keys of creates (AIP-155): which resource a request_id created, and a
  -- SHA-256 of the request without its request_id, to tell a retry from another request
  -- reusing the id. Only the resource id is kept, never a response, so a row is small;
  -- rows older than 24 hours are swept a few at a time by later keyed creates.
  CREATE TABLE idempotency_keys (
    org_id       TEXT    NOT NULL,
    method       TEXT    NOT NULL, -- e.g. sessions.v1.SessionService/CreateSession
    request_id   TEXT    NOT NULL, -- a UUID, lowercase
    request_hash BLOB    NOT NULL,
    resource_id  TEXT    NOT NULL,
    created_at   INTEGER NOT NULL, -- Unix milliseconds
    PRIMARY KEY (org_id, method, request_id)
  ) STRICT;
  CREATE INDEX idempotency_keys_by_created ON idempotency_keys (created_at);
  `,
  `
  -- How many idempotency keys each organisation has, kept by triggers in the transaction of
  -- every insert and delete, so that a keyed create can hold its organisation to a bound
  -- (oldest keys dropped past it) without counting rows.
  CREATE TABLE idempotency_key_counts (
    org_id TEXT    NOT NULL PRIMARY KEY,
    keys   INTEGER NOT NULL
  ) STRICT;
  INSERT INTO idempotency_key_counts (org_id, keys) SELECT org_id, count(*) FROM idempotency_keys GROUP BY org_id;
  CREATE TRIGGER idempotency_keys_counted AFTER INSERT ON idempotency_keys BEGIN
    INSERT OR IGNORE INTO idempotency_key_counts (org_id, keys) VALUES (NEW.org_id, 0);
    UPDATE idempotency_key_counts SET keys = keys + 1 WHERE org_id = NEW.org_id;
  END;
  CREATE TRIGGER idempotency_keys_uncounted AFTER DELETE ON idempotency_keys BEGIN
    UPDATE idempotency_key_counts SET keys = keys - 1 WHERE org_id = OLD.org_id;
  END;
  -- An organisation's oldest keys, for the bound; the sweep of expired keys uses
  -- idempotency_keys_by_created.
  CREATE INDEX idempotency_keys_by_org_created ON idempotency_keys (org_id, created_at);

  -- One row that readiness probes update when no write transaction ran lately, to learn
  -- whether writes work (a full disk, a read-only file) without touching real data.
  CREATE TABLE write_probe (
    id        INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    probed_at INTEGER NOT NULL -- Unix milliseconds
  ) STRICT;
  INSERT INTO write_probe (id, probed_at) VALUES (1, 0);
  `,
  `
  -- The conversation and the event log (part 9). Each session counts its messages and
  -- knows its latest event's sequence, both kept in the transaction of every change.
  ALTER TABLE sessions ADD COLUMN message_count INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE sessions ADD COLUMN last_sequence INTEGER NOT NULL DEFAULT 0;

  -- A message is keyed by its position in the session's log (the sequence of its
  -- MESSAGE_ADDED event), so a page of the conversation is a range of the primary key.
  CREATE TABLE messages (
    org_id                TEXT    NOT NULL,
    session_id            TEXT    NOT NULL,
    sequence              INTEGER NOT NULL,
    id                    TEXT    NOT NULL,
    role                  TEXT    NOT NULL CHECK (role IN ('user', 'assistant', 'system', 'tool')),
    content               TEXT    NOT NULL, -- JSON array of parts, as in the API's JSON
    model_id              TEXT    NOT NULL,
    -- The generation's usage: all four set, or all four NULL.
    input_tokens          INTEGER,
    output_tokens         INTEGER,
    cache_read_tokens     INTEGER,
    cache_creation_tokens INTEGER,
    created_at            INTEGER NOT NULL, -- Unix milliseconds
    PRIMARY KEY (org_id, session_id, sequence)
  ) STRICT, WITHOUT ROWID;
  CREATE UNIQUE INDEX messages_by_id ON messages (org_id, session_id, id);

  -- One row per change of a session, keyed by (session, sequence): 1, 2, 3 … with no gaps.
  -- A row holds only what a change can alter (the session's mutable fields right after
  -- it, and a usage delta); the fields fixed at create (agent, model, capabilities,
  -- created_at) are read from the sessions row, and a MESSAGE_ADDED event's message from
  -- messages at the same sequence. Rows go when their session is deleted.
  CREATE TABLE session_events (
    org_id                TEXT    NOT NULL,
    session_id            TEXT    NOT NULL,
    sequence              INTEGER NOT NULL,
    type                  TEXT    NOT NULL CHECK (type IN ('created', 'updated', 'started', 'message_added',
                                                           'usage_recorded', 'completed', 'failed', 'cancelled')),
    -- usage_recorded: the tokens added; NULL otherwise.
    delta_input_tokens          INTEGER,
    delta_output_tokens         INTEGER,
    delta_cache_read_tokens     INTEGER,
    delta_cache_creation_tokens INTEGER,
    -- The session right after the change (its mutable fields).
    title                 TEXT    NOT NULL,
    tags                  TEXT    NOT NULL, -- JSON array of strings
    state                 TEXT    NOT NULL,
    input_tokens          INTEGER NOT NULL,
    output_tokens         INTEGER NOT NULL,
    cache_read_tokens     INTEGER NOT NULL,
    cache_creation_tokens INTEGER NOT NULL,
    prompt_preview        TEXT    NOT NULL,
    response_preview      TEXT    NOT NULL,
    error                 TEXT    NOT NULL,
    updated_at            INTEGER NOT NULL, -- Unix milliseconds; also the event's time
    started_at            INTEGER,
    finished_at           INTEGER,
    version               INTEGER NOT NULL,
    message_count         INTEGER NOT NULL,
    PRIMARY KEY (org_id, session_id, sequence)
  ) STRICT, WITHOUT ROWID;

  -- Sessions stored before the log existed get one CREATED event (sequence 1) holding
  -- their current state: the history before this migration is not reconstructed.
  INSERT INTO session_events (org_id, session_id, sequence, type, title, tags, state,
      input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens, prompt_preview, response_preview, error,
      updated_at, started_at, finished_at, version, message_count)
    SELECT org_id, id, 1, 'created', title, tags, state,
      input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens, prompt_preview, response_preview, error,
      updated_at, started_at, finished_at, version, 0
    FROM sessions;
  UPDATE sessions SET last_sequence = 1;
  `,
];
