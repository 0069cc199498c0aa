import type Database from "better-sqlite3";
import type { DeleteCheck, ListCursor, Mutation, SessionFilter, SessionRecord, SessionStore } from "./store.js";
import { sessionFromRow, sessionToRow, type SessionRow } from "./sqlite-rows.js";

const COLUMNS = `id, org_id, agent_id, model_id, capabilities, title, tags, state,
  input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens,
  prompt_preview, response_preview, error, created_at, updated_at, started_at, finished_at, version`;

/** Sessions in SQLite. Every write is one transaction; callers see it only after COMMIT. */
export class SqliteSessions implements SessionStore {
  private readonly selectById: Database.Statement<[string, string], SessionRow>;
  private readonly insertTx: (session: SessionRecord) => boolean;
  private readonly mutateTx: (orgId: string, id: string, mutation: Mutation<SessionRecord>) => SessionRecord | undefined;
  private readonly deleteTx: (orgId: string, id: string, check: DeleteCheck<SessionRecord>) => SessionRecord | undefined;
  private readonly listStatements = new Map<string, Database.Statement<unknown[], SessionRow>>();

  constructor(private readonly db: Database.Database) {
    this.selectById = db
      .prepare<[string, string], SessionRow>(`SELECT ${COLUMNS} FROM sessions WHERE id = ? AND org_id = ?`)
      .safeIntegers(true);
    const agentExists = db.prepare<[string, string]>("SELECT 1 FROM agents WHERE id = ? AND org_id = ?").pluck();
    const insert = db.prepare(`INSERT INTO sessions (${COLUMNS}) VALUES (${COLUMNS.split(",").map((c) => "@" + c.trim()).join(", ")})`);
    const update = db.prepare(`
      UPDATE sessions SET title = @title, tags = @tags, state = @state,
        input_tokens = @input_tokens, output_tokens = @output_tokens,
        cache_read_tokens = @cache_read_tokens, cache_creation_tokens = @cache_creation_tokens,
        prompt_preview = @prompt_preview, response_preview = @response_preview, error = @error,
        updated_at = @updated_at, started_at = @started_at, finished_at = @finished_at, version = @version
      WHERE id = @id AND org_id = @org_id`);
    const remove = db.prepare<[string, string]>("DELETE FROM sessions WHERE id = ? AND org_id = ?");
    const insertTag = db.prepare<[string, string, bigint, string]>(
      "INSERT INTO session_tags (org_id, tag, created_at, session_id) VALUES (?, ?, ?, ?)",
    );
    const removeTag = db.prepare<[string, string, bigint, string]>(
      "DELETE FROM session_tags WHERE org_id = ? AND tag = ? AND created_at = ? AND session_id = ?",
    );
    const writeTags = (s: SessionRecord, tags: readonly string[], statement: Database.Statement<[string, string, bigint, string]>) => {
      for (const tag of tags) statement.run(s.orgId, tag, BigInt(s.createdAt), s.id);
    };
    const current = (orgId: string, id: string) => {
      const row = this.selectById.get(id, orgId);
      return row && sessionFromRow(row);
    };

    this.insertTx = db.transaction((session: SessionRecord) => {
      if (agentExists.get(session.agentId, session.orgId) === undefined) return false;
      insert.run(sessionToRow(session));
      writeTags(session, session.tags, insertTag);
      return true;
    });
    this.mutateTx = db.transaction((orgId: string, id: string, mutation: Mutation<SessionRecord>) => {
      const before = current(orgId, id);
      if (!before) return undefined;
      // Identity and creation never change, whatever the mutation returns.
      const after: SessionRecord = {
        ...mutation(before),
        id: before.id,
        orgId: before.orgId,
        agentId: before.agentId,
        createdAt: before.createdAt,
        version: before.version + 1,
      };
      update.run(sessionToRow(after));
      if (before.tags.join("\u0000") !== after.tags.join("\u0000")) {
        writeTags(before, before.tags, removeTag);
        writeTags(after, after.tags, insertTag);
      }
      return after;
    });
    this.deleteTx = db.transaction((orgId: string, id: string, check: DeleteCheck<SessionRecord>) => {
      const before = current(orgId, id);
      if (!before) return undefined;
      check(before);
      writeTags(before, before.tags, removeTag);
      remove.run(id, orgId);
      return before;
    });
  }

  async insertSession(session: SessionRecord): Promise<boolean> {
    return this.insertTx(session);
  }

  async findSession(orgId: string, id: string): Promise<SessionRecord | undefined> {
    const row = this.selectById.get(id, orgId);
    return row && sessionFromRow(row);
  }

  async mutateSession(orgId: string, id: string, mutation: Mutation<SessionRecord>): Promise<SessionRecord | undefined> {
    return this.mutateTx(orgId, id, mutation);
  }

  async deleteSession(orgId: string, id: string, check: DeleteCheck<SessionRecord>): Promise<SessionRecord | undefined> {
    return this.deleteTx(orgId, id, check);
  }

  async listSessions(orgId: string, filter: SessionFilter, cursor: ListCursor | undefined, limit: number): Promise<SessionRecord[]> {
    const { sql, params } = listQuery(orgId, filter, cursor, limit);
    let statement = this.listStatements.get(sql);
    if (!statement) {
      statement = this.db.prepare<unknown[], SessionRow>(sql).safeIntegers(true);
      // One statement per filter shape: a bounded number (shapes, not values, are keys).
      if (this.listStatements.size < 256) this.listStatements.set(sql, statement);
    }
    return statement.all(...params).map(sessionFromRow);
  }
}

/**
 * The listing query for a filter. With a tag filter the scan runs along the first tag's
 * rows in session_tags (ordered like the listing) and looks the other tags up by primary
 * key; without, along the sessions index that fits the other filters. Either way a page
 * starts where the cursor points, so a deep page costs what the first does.
 */
export function listQuery(
  orgId: string,
  filter: SessionFilter,
  cursor: ListCursor | undefined,
  limit: number,
): { sql: string; params: unknown[] } {
  const where: string[] = [];
  const params: unknown[] = [];
  const [firstTag, ...otherTags] = [...new Set(filter.tags)];
  // The columns that carry the listing order: the tag rows' own copy when scanning tags.
  const order = firstTag === undefined ? { createdAt: "s.created_at", id: "s.id" } : { createdAt: "t.created_at", id: "t.session_id" };
  let from = "sessions AS s";
  if (firstTag !== undefined) {
    from = "session_tags AS t JOIN sessions AS s ON s.id = t.session_id";
    where.push("t.org_id = ?", "t.tag = ?");
    params.push(orgId, firstTag);
  } else {
    where.push("s.org_id = ?");
    params.push(orgId);
  }
  if (filter.agentId !== undefined) {
    where.push("s.agent_id = ?");
    params.push(filter.agentId);
  }
  if (filter.states.length > 0) {
    where.push(`s.state IN (${filter.states.map(() => "?").join(", ")})`);
    params.push(...filter.states);
  }
  if (filter.createdAfter !== undefined) {
    where.push(`${order.createdAt} > ?`);
    params.push(BigInt(filter.createdAfter));
  }
  if (filter.createdBefore !== undefined) {
    where.push(`${order.createdAt} < ?`);
    params.push(BigInt(filter.createdBefore));
  }
  if (cursor !== undefined) {
    where.push(`(${order.createdAt}, ${order.id}) < (?, ?)`);
    params.push(BigInt(cursor.createdAt), cursor.id);
  }
  for (const tag of otherTags) {
    where.push(
      "EXISTS (SELECT 1 FROM session_tags AS o WHERE o.org_id = s.org_id AND o.tag = ? AND o.created_at = s.created_at AND o.session_id = s.id)",
    );
    params.push(tag);
  }
  params.push(limit);
  const columns = COLUMNS.split(",").map((c) => "s." + c.trim()).join(", ");
  const sql = `SELECT ${columns} FROM ${from} WHERE ${where.join(" AND ")} ORDER BY ${order.createdAt} DESC, ${order.id} DESC LIMIT ?`;
  return { sql, params };
}
