import type Database from "better-sqlite3";
import type { AgentRecord, AgentStore, DeleteCheck, IdempotencyKey, KeyedInsert, ListCursor, Mutation } from "./store.js";
import { agentFromRow, agentToRow, type AgentRow } from "./sqlite-rows.js";
import { SqliteIdempotencyKeys } from "./sqlite-idempotency.js";

const COLUMNS = "id, org_id, name, default_model_id, capabilities, created_at, updated_at, version";

/** Agents in SQLite. Every write is one transaction, IMMEDIATE as in SqliteSessions. */
export class SqliteAgents implements AgentStore {
  private readonly selectById: Database.Statement<[string, string], AgentRow>;
  private readonly selectFirstPage: Database.Statement<[string, number], AgentRow>;
  private readonly selectPage: Database.Statement<[string, bigint, string, number], AgentRow>;
  private readonly insert: Database.Statement;
  private readonly keyedInsertTx: Database.Transaction<(agent: AgentRecord, key: IdempotencyKey) => KeyedInsert<AgentRecord> | false>;
  private readonly mutateTx: Database.Transaction<(orgId: string, id: string, mutation: Mutation<AgentRecord>) => AgentRecord | undefined>;
  private readonly deleteTx: Database.Transaction<(orgId: string, id: string, check: DeleteCheck<AgentRecord>) => AgentRecord | undefined>;

  constructor(db: Database.Database) {
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
    const update = db.prepare(`
      UPDATE agents SET name = @name, default_model_id = @default_model_id, capabilities = @capabilities,
        updated_at = @updated_at, version = @version
      WHERE id = @id AND org_id = @org_id`);
    const remove = db.prepare<[string, string]>("DELETE FROM agents WHERE id = ? AND org_id = ?");
    const current = (orgId: string, id: string) => {
      const row = this.selectById.get(id, orgId);
      return row && agentFromRow(row);
    };
    this.mutateTx = db.transaction((orgId: string, id: string, mutation: Mutation<AgentRecord>) => {
      const before = current(orgId, id);
      if (!before) return undefined;
      const after: AgentRecord = {
        ...mutation(before),
        id: before.id,
        orgId: before.orgId,
        createdAt: before.createdAt,
        version: before.version + 1,
      };
      update.run(agentToRow(after));
      return after;
    });
    this.deleteTx = db.transaction((orgId: string, id: string, check: DeleteCheck<AgentRecord>) => {
      const before = current(orgId, id);
      if (!before) return undefined;
      check(before);
      remove.run(id, orgId);
      return before;
    });
    const keys = new SqliteIdempotencyKeys(db);
    this.keyedInsertTx = db.transaction((agent: AgentRecord, key: IdempotencyKey) =>
      keys.insertOnce(agent.orgId, key, agent, (id) => current(agent.orgId, id), () => {
        this.insert.run(agentToRow(agent));
        return true;
      }),
    );
  }

  insertAgent(agent: AgentRecord): Promise<void>;
  insertAgent(agent: AgentRecord, key: IdempotencyKey): Promise<KeyedInsert<AgentRecord>>;
  async insertAgent(agent: AgentRecord, key?: IdempotencyKey): Promise<void | KeyedInsert<AgentRecord>> {
    if (!key) {
      this.insert.run(agentToRow(agent));
      return;
    }
    // IMMEDIATE, as for sessions. An agent insert never declines, so `false` cannot come back.
    const result = this.keyedInsertTx.immediate(agent, key);
    if (result === false) throw new Error("unreachable: an agent insert never declines");
    return result;
  }

  async findAgent(orgId: string, id: string): Promise<AgentRecord | undefined> {
    const row = this.selectById.get(id, orgId);
    return row && agentFromRow(row);
  }

  async listAgents(orgId: string, cursor: ListCursor | undefined, limit: number): Promise<AgentRecord[]> {
    const rows = cursor
      ? this.selectPage.all(orgId, BigInt(cursor.createdAt), cursor.id, limit)
      : this.selectFirstPage.all(orgId, limit);
    return rows.map(agentFromRow);
  }

  async mutateAgent(orgId: string, id: string, mutation: Mutation<AgentRecord>): Promise<AgentRecord | undefined> {
    return this.mutateTx.immediate(orgId, id, mutation);
  }

  async deleteAgent(orgId: string, id: string, check: DeleteCheck<AgentRecord>): Promise<AgentRecord | undefined> {
    return this.deleteTx.immediate(orgId, id, check);
  }
}
