import type Database from "better-sqlite3";
import type {
  DeleteCheck, IdempotencyKey, KeyedInsert, ListCursor, MessageAppend, MessageRecord, Mutation, SessionChange, SessionEventType,
  SessionFilter, SessionRecord, StoredPage, UsageRecord,
} from "./store.js";
import { readStoredPage, textBytes } from "./stored-page.js";
import { SESSION_COLUMNS, sessionFromRow, sessionRowFromValues, sessionToRow, type SessionRow } from "./sqlite-rows.js";
import type { SqliteIdempotencyKeys } from "./sqlite-idempotency.js";
import type { SqliteMessages } from "./sqlite-messages.js";
import type { SqliteEvents } from "./sqlite-events.js";

const COLUMNS = SESSION_COLUMNS.join(", ");

/**
 * Sessions in SQLite, synchronously; SqliteStore makes the calls asynchronous. Each write
 * runs inside a transaction the caller holds (WriteBatcher: BEGIN IMMEDIATE, a savepoint
 * per write), so a check and the write it guards are atomic, and callers see a write only
 * after its COMMIT.
 */
export class SqliteSessions {
  private readonly selectById: Database.Statement<[string, string], SessionRow>;
  private readonly agentExists: Database.Statement<[string, string]>;
  private readonly insert: Database.Statement;
  private readonly update: Database.Statement;
  private readonly remove: Database.Statement<[string, string]>;
  private readonly insertTag: Database.Statement<[string, string, bigint, string]>;
  private readonly removeTag: Database.Statement<[string, string, bigint, string]>;
  private readonly keys: SqliteIdempotencyKeys;
  private readonly listStatements = new Map<string, Database.Statement<unknown[], unknown[]>>();

  constructor(
    private readonly db: Database.Database,
    keys: SqliteIdempotencyKeys,
    private readonly messages: SqliteMessages,
    private readonly events: SqliteEvents,
  ) {
    this.selectById = db
      .prepare<[string, string], SessionRow>(`SELECT ${COLUMNS} FROM sessions WHERE id = ? AND org_id = ?`)
      .safeIntegers(true);
    this.agentExists = db.prepare<[string, string]>("SELECT 1 FROM agents WHERE id = ? AND org_id = ?").pluck();
    this.insert = db.prepare(`INSERT INTO sessions (${COLUMNS}) VALUES (${COLUMNS.split(",").map((c) => "@" + c.trim()).join(", ")})`);
    this.update = db.prepare(`
      UPDATE sessions SET title = @title, tags = @tags, state = @state,
        input_tokens = @input_tokens, output_tokens = @output_tokens,
        cache_read_tokens = @cache_read_tokens, cache_creation_tokens = @cache_creation_tokens,
        prompt_preview = @prompt_preview, response_preview = @response_preview, error = @error,
        updated_at = @updated_at, started_at = @started_at, finished_at = @finished_at, version = @version,
        message_count = @message_count, last_sequence = @last_sequence
      WHERE id = @id AND org_id = @org_id`);
    this.remove = db.prepare<[string, string]>("DELETE FROM sessions WHERE id = ? AND org_id = ?");
    this.insertTag = db.prepare<[string, string, bigint, string]>(
      "INSERT INTO session_tags (org_id, tag, created_at, session_id) VALUES (?, ?, ?, ?)",
    );
    this.removeTag = db.prepare<[string, string, bigint, string]>(
      "DELETE FROM session_tags WHERE org_id = ? AND tag = ? AND created_at = ? AND session_id = ?",
    );
    this.keys = keys;
  }

  /**
   * Stores a session unless its agent is missing (then false), with its CREATED event
   * (sequence 1, no messages yet whatever the record says); in the caller's transaction.
   */
  insertSession(record: SessionRecord): boolean {
    if (this.agentExists.get(record.agentId, record.orgId) === undefined) return false;
    const session: SessionRecord = { ...record, messageCount: 0, lastSequence: 1 };
    this.insert.run(sessionToRow(session));
    this.writeTags(session, session.tags, this.insertTag);
    this.events.append(session, "created", undefined);
    return true;
  }

  /** As insertSession, under an idempotency key; in the caller's transaction. */
  insertKeyedSession(session: SessionRecord, key: IdempotencyKey): KeyedInsert<SessionRecord> | false {
    return this.keys.insertOnce(
      session.orgId,
      key,
      session,
      (id) => this.findSession(session.orgId, id),
      () => this.insertSession(session),
    );
  }

  findSession(orgId: string, id: string): SessionRecord | undefined {
    const row = this.selectById.get(id, orgId);
    return row && sessionFromRow(row);
  }

  /**
   * Applies a mutation and appends its event; in the caller's transaction, so that a
   * mutation that throws (or a failed statement) leaves both to roll back.
   */
  mutateSession(orgId: string, id: string, change: SessionChange, mutation: Mutation<SessionRecord>): SessionRecord | undefined {
    const before = this.findSession(orgId, id);
    if (!before) return undefined;
    return this.applyChange(before, mutation(before), change.type, change.usageDelta, 0);
  }

  /**
   * Appends a message with its MESSAGE_ADDED event and the session's change, in the caller's
   * transaction; under a key, the key is checked first (a retry replays without running
   * `mutation`, so it succeeds on a session finished since). Undefined without the session.
   */
  appendMessage(message: MessageRecord, mutation: Mutation<SessionRecord>, key?: IdempotencyKey): MessageAppend | undefined {
    const before = this.findSession(message.orgId, message.sessionId);
    if (!before) return undefined;
    const append = (): { message: MessageRecord; session: SessionRecord } => {
      const after = this.applyChange(before, mutation(before), "message_added", undefined, 1, (session) =>
        this.messages.insertMessage({ ...message, sequence: session.lastSequence }),
      );
      return { message: { ...message, sequence: after.lastSequence }, session: after };
    };
    if (!key) return { outcome: "appended", ...append() };
    let appended: { message: MessageRecord; session: SessionRecord } | undefined;
    const result = this.keys.insertOnce(
      message.orgId,
      key,
      message,
      (id) => this.messages.findMessage(message.orgId, message.sessionId, id),
      () => ((appended = append()), true),
    );
    if (result === false) throw new Error("unreachable: an append always stores");
    switch (result.outcome) {
      case "inserted":
        return { outcome: "appended", ...appended! };
      case "replayed":
        return { outcome: "replayed", message: result.record };
      default:
        return result;
    }
  }

  /**
   * Stores `next` as the session after `before` with the event of `type`: identity and
   * creation never change whatever the mutation returned, the version and sequence move on
   * by one, and the message count by `addedMessages`. `beforeEvent` writes what the event
   * refers to (its message) first.
   */
  private applyChange(
    before: SessionRecord,
    next: SessionRecord,
    type: SessionEventType,
    delta: UsageRecord | undefined,
    addedMessages: number,
    beforeEvent?: (after: SessionRecord) => void,
  ): SessionRecord {
    const after: SessionRecord = {
      ...next,
      id: before.id,
      orgId: before.orgId,
      agentId: before.agentId,
      modelId: before.modelId,
      capabilities: before.capabilities,
      createdAt: before.createdAt,
      version: before.version + 1,
      messageCount: before.messageCount + addedMessages,
      lastSequence: before.lastSequence + 1,
    };
    this.update.run(sessionToRow(after));
    if (before.tags.join("\u0000") !== after.tags.join("\u0000")) {
      this.writeTags(before, before.tags, this.removeTag);
      this.writeTags(after, after.tags, this.insertTag);
    }
    beforeEvent?.(after);
    this.events.append(after, type, delta);
    return after;
  }

  /** In the caller's transaction, with the session's messages and events; a check that throws leaves it to roll back. */
  deleteSession(orgId: string, id: string, check: DeleteCheck<SessionRecord>): SessionRecord | undefined {
    const before = this.findSession(orgId, id);
    if (!before) return undefined;
    check(before);
    this.writeTags(before, before.tags, this.removeTag);
    this.messages.deleteMessagesOf(orgId, id);
    this.events.deleteEventsOf(orgId, id);
    this.remove.run(id, orgId);
    return before;
  }

  /** Up to `limit` sessions and `maxBytes` of stored size (see StoredPage); one more row is read to learn whether more follow. */
  listSessions(orgId: string, filter: SessionFilter, cursor: ListCursor | undefined, limit: number, maxBytes: number): StoredPage<SessionRecord> {
    const { sql, params } = listQuery(orgId, filter, cursor, limit + 1);
    let statement = this.listStatements.get(sql);
    if (!statement) {
      statement = this.db.prepare<unknown[], unknown[]>(sql).safeIntegers(true).raw(true);
      // One statement per filter shape: a bounded number (shapes, not values, are keys).
      if (this.listStatements.size < 256) this.listStatements.set(sql, statement);
    }
    return readStoredPage(statement.iterate(...params), limit, maxBytes, textBytes, (values) =>
      sessionFromRow(sessionRowFromValues(values)),
    );
  }

  private writeTags(s: SessionRecord, tags: readonly string[], statement: Database.Statement<[string, string, bigint, string]>): void {
    for (const tag of tags) statement.run(s.orgId, tag, BigInt(s.createdAt), s.id);
  }
}

/**
 * The listing query for a filter: a range scan of the index that fits it, in listing
 * order, starting where the cursor points, so a deep page costs what the first does.
 *
 * - Tags: along the first tag's rows in session_tags (kept in listing order), looking
 *   each session up by id and the other tags by primary key. CROSS JOIN pins that order:
 *   without it, statistics could make the planner drive from sessions instead.
 * - Two or more states: one ordered, limited scan of the state index per state, merged.
 *   A single `state IN (…)` cannot come out of an index in created_at order, so SQLite
 *   would walk the org's created_at index filtering every row, or read every matching
 *   row and sort them, whatever the page.
 * - Otherwise one scan of sessions: by org, agent, state or agent and state.
 */
export function listQuery(
  orgId: string,
  filter: SessionFilter,
  cursor: ListCursor | undefined,
  limit: number,
): { sql: string; params: unknown[] } {
  const tags = [...new Set(filter.tags)];
  const states = [...new Set(filter.states)];
  if (tags.length > 0) return tagScan(orgId, filter, tags, states, cursor, limit);
  if (states.length > 1) {
    const arms = states.map((state) => sessionScan(orgId, filter, [state], cursor, limit));
    const columns = COLUMN_NAMES.join(", ");
    return {
      sql: arms.map((arm) => `SELECT ${columns} FROM (${arm.sql})`).join(" UNION ALL ") + ` ORDER BY created_at DESC, id DESC LIMIT ?`,
      params: [...arms.flatMap((arm) => arm.params), limit],
    };
  }
  return sessionScan(orgId, filter, states, cursor, limit);
}

const COLUMN_NAMES: readonly string[] = SESSION_COLUMNS;
const SELECTED = COLUMN_NAMES.map((c) => `s.${c} AS ${c}`).join(", ");

/** Conditions on the listing order's columns: the time bounds and the cursor. */
function orderBounds(
  order: { createdAt: string; id: string },
  filter: SessionFilter,
  cursor: ListCursor | undefined,
): { where: string[]; params: unknown[] } {
  const where: string[] = [];
  const params: unknown[] = [];
  if (filter.createdAfter !== undefined) {
    where.push(`${order.createdAt} > ?`);
    params.push(BigInt(filter.createdAfter));
  }
  // Only the tighter upper bound goes into the query (it implies the other): given both,
  // SQLite may seek with created_before and test the cursor on each row, and then a deep
  // page would read every row between the bound and the cursor.
  if (cursor !== undefined && (filter.createdBefore === undefined || cursor.createdAt < filter.createdBefore)) {
    where.push(`(${order.createdAt}, ${order.id}) < (?, ?)`);
    params.push(BigInt(cursor.createdAt), cursor.id);
  } else if (filter.createdBefore !== undefined) {
    where.push(`${order.createdAt} < ?`);
    params.push(BigInt(filter.createdBefore));
  }
  return { where, params };
}

function sessionScan(
  orgId: string,
  filter: SessionFilter,
  states: readonly string[],
  cursor: ListCursor | undefined,
  limit: number,
): { sql: string; params: unknown[] } {
  const where = ["s.org_id = ?"];
  const params: unknown[] = [orgId];
  addRowFilters(where, params, filter, states);
  const bounds = orderBounds({ createdAt: "s.created_at", id: "s.id" }, filter, cursor);
  where.push(...bounds.where);
  params.push(...bounds.params, limit);
  return {
    sql: `SELECT ${SELECTED} FROM sessions AS s WHERE ${where.join(" AND ")} ORDER BY s.created_at DESC, s.id DESC LIMIT ?`,
    params,
  };
}

/** The agent and state filters, checked on the sessions row itself. */
function addRowFilters(where: string[], params: unknown[], filter: SessionFilter, states: readonly string[]): void {
  if (filter.agentId !== undefined) {
    where.push("s.agent_id = ?");
    params.push(filter.agentId);
  }
  if (states.length > 0) {
    where.push(`s.state IN (${states.map(() => "?").join(", ")})`);
    params.push(...states);
  }
}

function tagScan(
  orgId: string,
  filter: SessionFilter,
  [firstTag, ...otherTags]: readonly string[],
  states: readonly string[],
  cursor: ListCursor | undefined,
  limit: number,
): { sql: string; params: unknown[] } {
  const where = ["t.org_id = ?", "t.tag = ?"];
  const params: unknown[] = [orgId, firstTag];
  // The order columns are the tag rows' own copy, so that bounds and cursor narrow the
  // primary key range of session_tags rather than filter joined rows.
  const bounds = orderBounds({ createdAt: "t.created_at", id: "t.session_id" }, filter, cursor);
  where.push(...bounds.where);
  params.push(...bounds.params);
  addRowFilters(where, params, filter, states);
  if (otherTags.length > 0) {
    // One subquery probing the primary key once per tag. One EXISTS per tag reads the
    // same rows, but SQLite plans it as a join of every tag: about 0.5 s to prepare and
    // run with 32 tags even on an empty table.
    where.push(
      `(SELECT count(*) FROM session_tags AS o WHERE o.org_id = t.org_id AND o.tag IN (${otherTags.map(() => "?").join(", ")}) ` +
        "AND o.created_at = t.created_at AND o.session_id = t.session_id) = ?",
    );
    params.push(...otherTags, otherTags.length);
  }
  params.push(limit);
  return {
    sql:
      `SELECT ${SELECTED} FROM session_tags AS t CROSS JOIN sessions AS s ON s.id = t.session_id ` +
      `WHERE ${where.join(" AND ")} ORDER BY t.created_at DESC, t.session_id DESC LIMIT ?`,
    params,
  };
}
