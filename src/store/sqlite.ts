import Database from "better-sqlite3";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { MIGRATIONS } from "./migrations.js";
import { SqliteSessions } from "./sqlite-sessions.js";
import { SqliteAgents } from "./sqlite-agents.js";
import { SqliteKeys } from "./sqlite-keys.js";
import type {
  AgentRecord, ApiKeyRecord, DeleteCheck, IdempotencyKey, KeyedInsert, ListCursor, Mutation, SessionFilter, SessionRecord,
  Store,
} from "./store.js";

/** The settings the README promises; see "Storage and durability" there. */
export const SQLITE_SETTINGS = {
  journalMode: "wal",
  // FULL: a commit is on disk before it is acknowledged, also across power loss. It is
  // set on every open because better-sqlite3 builds default WAL databases to NORMAL.
  synchronous: "full",
  busyTimeoutMs: 5000,
} as const;

/**
 * The embedded store: one SQLite file in WAL mode, prepared statements only. Opening
 * creates the file and its folder when missing and brings the schema up to date.
 */
export class SqliteStore implements Store {
  /** The open database, for tests that read query plans or check integrity. */
  readonly db: Database.Database;
  private readonly sessions: SqliteSessions;
  private readonly agents: SqliteAgents;
  private readonly keys: SqliteKeys;

  constructor(path: string) {
    if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    this.db.pragma(`journal_mode = ${SQLITE_SETTINGS.journalMode}`);
    this.db.pragma(`synchronous = ${SQLITE_SETTINGS.synchronous}`);
    this.db.pragma(`busy_timeout = ${SQLITE_SETTINGS.busyTimeoutMs}`);
    migrate(this.db);
    this.sessions = new SqliteSessions(this.db);
    this.agents = new SqliteAgents(this.db);
    this.keys = new SqliteKeys(this.db);
  }

  insertSession(session: SessionRecord): Promise<boolean>;
  insertSession(session: SessionRecord, key: IdempotencyKey): Promise<KeyedInsert<SessionRecord> | false>;
  insertSession(session: SessionRecord, key?: IdempotencyKey) {
    return key ? this.sessions.insertSession(session, key) : this.sessions.insertSession(session);
  }
  findSession(orgId: string, id: string) {
    return this.sessions.findSession(orgId, id);
  }
  listSessions(orgId: string, filter: SessionFilter, cursor: ListCursor | undefined, limit: number) {
    return this.sessions.listSessions(orgId, filter, cursor, limit);
  }
  mutateSession(orgId: string, id: string, mutation: Mutation<SessionRecord>) {
    return this.sessions.mutateSession(orgId, id, mutation);
  }
  deleteSession(orgId: string, id: string, check: DeleteCheck<SessionRecord>) {
    return this.sessions.deleteSession(orgId, id, check);
  }
  insertAgent(agent: AgentRecord): Promise<void>;
  insertAgent(agent: AgentRecord, key: IdempotencyKey): Promise<KeyedInsert<AgentRecord>>;
  insertAgent(agent: AgentRecord, key?: IdempotencyKey) {
    return key ? this.agents.insertAgent(agent, key) : this.agents.insertAgent(agent);
  }
  findAgent(orgId: string, id: string) {
    return this.agents.findAgent(orgId, id);
  }
  listAgents(orgId: string, cursor: ListCursor | undefined, limit: number) {
    return this.agents.listAgents(orgId, cursor, limit);
  }
  mutateAgent(orgId: string, id: string, mutation: Mutation<AgentRecord>) {
    return this.agents.mutateAgent(orgId, id, mutation);
  }
  deleteAgent(orgId: string, id: string, check: DeleteCheck<AgentRecord>) {
    return this.agents.deleteAgent(orgId, id, check);
  }

  insertKey(key: ApiKeyRecord) {
    return this.keys.insertKey(key);
  }
  findKey(id: string) {
    return this.keys.findKey(id);
  }
  listKeys() {
    return this.keys.listKeys();
  }
  revokeKey(id: string, at: number) {
    return this.keys.revokeKey(id, at);
  }
  touchKey(id: string, at: number) {
    return this.keys.touchKey(id, at);
  }
  hasKeys() {
    return this.keys.hasKeys();
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
