import type Database from "better-sqlite3";
import type { AgentRecord, DeleteCheck, IdempotencyKey, KeyedInsert, ListCursor, Mutation, StoredPage } from "./store.js";
import { readStoredPage, textBytes } from "./stored-page.js";
import { agentFromRow, agentToRow, type AgentRow } from "./sqlite-rows.js";
import type { SqliteIdempotencyKeys } from "./sqlite-idempotency.js";

const COLUMNS = "id, org_id, name, default_model_id, capabilities, created_at, updated_at, version";

/** Agents in SQLite, synchronously; each write runs in the caller's transaction, as in SqliteSessions. */
export class SqliteAgents {
  private readonly selectById: Database.Statement<[string, string], AgentRow>;
  private readonly selectFirstPage: Database.Statement<[string, number], AgentRow>;
  private readonly selectPage: Database.Statement<[string, bigint, string, number], AgentRow>;
  private readonly insert: Database.Statement;
  private readonly update: Database.Statement;
  private readonly remove: Database.Statement<[string, string]>;
  private readonly keys: SqliteIdempotencyKeys;

  constructor(db: Database.Database, keys: SqliteIdempotencyKeys) {
    this.selectById = db
      .prepare<[string, string], AgentRow>(`SELECT ${COLUMNS} FROM agents WHERE id = ? AND org_id = ?`)
      .safeIntegers(true);
    this.selectFirstPage = db
      .prepare<[string, number], AgentRow>(
        `SELECT ${COLUMNS} FROM agents WHERE org_id = ? ORDER BY created_at DESC, id DESC LIMIT ?`,
      )
      .safeIntegers(true);
    this.selectPage = db
      .prepare<[string, bigint, string, number], AgentRow>(
        `SELECT ${COLUMNS} FROM agents WHERE org_id = ? AND (created_at, id) < (?, ?) ORDER BY created_at DESC, id DESC LIMIT ?`,
      )
      .safeIntegers(true);
    this.insert = db.prepare(`INSERT INTO agents (${COLUMNS}) VALUES (${COLUMNS.split(", ").map((c) => "@" + c).join(", ")})`);
    this.update = db.prepare(`
      UPDATE agents SET name = @name, default_model_id = @default_model_id, capabilities = @capabilities,
        updated_at = @updated_at, version = @version
      WHERE id = @id AND org_id = @org_id`);
    this.remove = db.prepare<[string, string]>("DELETE FROM agents WHERE id = ? AND org_id = ?");
    this.keys = keys;
  }

  insertAgent(agent: AgentRecord): void {
    this.insert.run(agentToRow(agent));
  }

  insertKeyedAgent(agent: AgentRecord, key: IdempotencyKey): KeyedInsert<AgentRecord> {
    const result = this.keys.insertOnce(agent.orgId, key, agent, (id) => this.findAgent(agent.orgId, id), () => {
      this.insertAgent(agent);
      return true;
    });
    if (result === false) throw new Error("unreachable: an agent insert never declines");
    return result;
  }

  findAgent(orgId: string, id: string): AgentRecord | undefined {
    const row = this.selectById.get(id, orgId);
    return row && agentFromRow(row);
  }

  /** Up to `limit` agents and `maxBytes` of stored size, as SqliteSessions.listSessions. */
  listAgents(orgId: string, cursor: ListCursor | undefined, limit: number, maxBytes: number): StoredPage<AgentRecord> {
    const rows = cursor
      ? this.selectPage.iterate(orgId, BigInt(cursor.createdAt), cursor.id, limit + 1)
      : this.selectFirstPage.iterate(orgId, limit + 1);
    return readStoredPage(rows, limit, maxBytes, (row) => textBytes(Object.values(row)), agentFromRow);
  }

  mutateAgent(orgId: string, id: string, mutation: Mutation<AgentRecord>): AgentRecord | undefined {
    const before = this.findAgent(orgId, id);
    if (!before) return undefined;
    const after: AgentRecord = {
      ...mutation(before),
      id: before.id,
      orgId: before.orgId,
      createdAt: before.createdAt,
      version: before.version + 1,
    };
    this.update.run(agentToRow(after));
    return after;
  }

  deleteAgent(orgId: string, id: string, check: DeleteCheck<AgentRecord>): AgentRecord | undefined {
    const before = this.findAgent(orgId, id);
    if (!before) return undefined;
    check(before);
    this.remove.run(id, orgId);
    return before;
  }
}
