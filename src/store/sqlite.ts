import Database from "better-sqlite3";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { MIGRATIONS } from "./migrations.js";
import type { CapabilityRecord, JsonObject, SessionRecord, SessionState, SessionStore } from "./store.js";

/** The settings the README promises; see "Durability" there. */
export const SQLITE_SETTINGS = {
  journalMode: "wal",
  // FULL: a commit is on disk before it is acknowledged, also across power loss. It is
  // set on every open because better-sqlite3 builds default WAL databases to NORMAL.
  synchronous: "full",
  busyTimeoutMs: 5000,
} as const;

interface SessionRow {
  id: string;
  org_id: string;
  agent_id: string;
  model_id: string;
  capabilities: string;
  title: string;
  tags: string;
  state: string;
  input_tokens: bigint;
  output_tokens: bigint;
  cache_read_tokens: bigint;
  cache_creation_tokens: bigint;
  prompt_preview: string;
  response_preview: string;
  created_at: bigint;
  updated_at: bigint;
  started_at: bigint | null;
  finished_at: bigint | null;
}

/**
 * The embedded store: one SQLite file in WAL mode, prepared statements only. Opening
 * creates the file and its folder when missing and brings the schema up to date.
 */
export class SqliteStore implements SessionStore {
  private readonly db: Database.Database;
  private readonly insert: Database.Statement;
  private readonly selectById: Database.Statement<[string, string], SessionRow>;

  constructor(path: string) {
    if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    this.db.pragma(`journal_mode = ${SQLITE_SETTINGS.journalMode}`);
    this.db.pragma(`synchronous = ${SQLITE_SETTINGS.synchronous}`);
    this.db.pragma(`busy_timeout = ${SQLITE_SETTINGS.busyTimeoutMs}`);
    migrate(this.db);
    this.insert = this.db.prepare(`
      INSERT INTO sessions (id, org_id, agent_id, model_id, capabilities, title, tags, state,
        input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens,
        prompt_preview, response_preview, created_at, updated_at, started_at, finished_at)
      VALUES (@id, @org_id, @agent_id, @model_id, @capabilities, @title, @tags, @state,
        @input_tokens, @output_tokens, @cache_read_tokens, @cache_creation_tokens,
        @prompt_preview, @response_preview, @created_at, @updated_at, @started_at, @finished_at)`);
    this.selectById = this.db
      .prepare<[string, string], SessionRow>("SELECT * FROM sessions WHERE id = ? AND org_id = ?")
      .safeIntegers(true);
  }

  async insertSession(session: SessionRecord): Promise<void> {
    this.insert.run(toRow(session));
  }

  async findSession(orgId: string, id: string): Promise<SessionRecord | undefined> {
    const row = this.selectById.get(id, orgId);
    return row && fromRow(row);
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}

function migrate(db: Database.Database): void {
  const applied = db.pragma("user_version", { simple: true }) as number;
  if (applied > MIGRATIONS.length) {
    throw new Error(`the database has schema version ${applied}, newer than this server's ${MIGRATIONS.length}`);
  }
  for (let version = applied; version < MIGRATIONS.length; version++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[version]!);
      db.pragma(`user_version = ${version + 1}`);
    })();
  }
}

function toRow(s: SessionRecord): SessionRow {
  return {
    id: s.id,
    org_id: s.orgId,
    agent_id: s.agentId,
    model_id: s.modelId,
    capabilities: JSON.stringify(
      s.capabilities.map((c) => (c.config === undefined ? { capability_id: c.capabilityId } : { capability_id: c.capabilityId, config: c.config })),
    ),
    title: s.title,
    tags: JSON.stringify(s.tags),
    state: s.state,
    input_tokens: s.usage.inputTokens,
    output_tokens: s.usage.outputTokens,
    cache_read_tokens: s.usage.cacheReadTokens,
    cache_creation_tokens: s.usage.cacheCreationTokens,
    prompt_preview: s.promptPreview,
    response_preview: s.responsePreview,
    created_at: BigInt(s.createdAt),
    updated_at: BigInt(s.updatedAt),
    started_at: s.startedAt === undefined ? null : BigInt(s.startedAt),
    finished_at: s.finishedAt === undefined ? null : BigInt(s.finishedAt),
  };
}

function fromRow(row: SessionRow): SessionRecord {
  const capabilities = (JSON.parse(row.capabilities) as Array<{ capability_id: string; config?: JsonObject }>).map(
    (c): CapabilityRecord => ({ capabilityId: c.capability_id, config: c.config }),
  );
  return {
    id: row.id,
    orgId: row.org_id,
    agentId: row.agent_id,
    modelId: row.model_id,
    capabilities,
    title: row.title,
    tags: JSON.parse(row.tags) as string[],
    state: row.state as SessionState,
    usage: {
      inputTokens: row.input_tokens,
      outputTokens: row.output_tokens,
      cacheReadTokens: row.cache_read_tokens,
      cacheCreationTokens: row.cache_creation_tokens,
    },
    promptPreview: row.prompt_preview,
    responsePreview: row.response_preview,
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
    startedAt: row.started_at === null ? undefined : Number(row.started_at),
    finishedAt: row.finished_at === null ? undefined : Number(row.finished_at),
  };
}
