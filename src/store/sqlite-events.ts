import type Database from "better-sqlite3";
import type { SessionEventRecord, SessionEventType, SessionRecord, SessionState, StoredPage, UsageRecord } from "./store.js";
import { readStoredPage } from "./stored-page.js";
import { fromOptionalTime, optionalTime } from "./sqlite-rows.js";
import { MESSAGE_COLUMNS, messageFromRow, messageRowBytes, type MessageRow } from "./sqlite-messages.js";

/** The session's fields an event row keeps: those a change can alter (see the migration). */
const SESSION_STATE_COLUMNS = [
  "title", "tags", "state", "input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens",
  "prompt_preview", "response_preview", "error", "updated_at", "started_at", "finished_at", "version", "message_count",
] as const;

const DELTA_COLUMNS = ["delta_input_tokens", "delta_output_tokens", "delta_cache_read_tokens", "delta_cache_creation_tokens"] as const;

const INSERT_COLUMNS = ["org_id", "session_id", "sequence", "type", ...DELTA_COLUMNS, ...SESSION_STATE_COLUMNS] as const;

interface EventRow {
  org_id: string;
  session_id: string;
  sequence: bigint;
  type: string;
  delta_input_tokens: bigint | null;
  delta_output_tokens: bigint | null;
  delta_cache_read_tokens: bigint | null;
  delta_cache_creation_tokens: bigint | null;
  title: string;
  tags: string;
  state: string;
  input_tokens: bigint;
  output_tokens: bigint;
  cache_read_tokens: bigint;
  cache_creation_tokens: bigint;
  prompt_preview: string;
  response_preview: string;
  error: string;
  updated_at: bigint;
  started_at: bigint | null;
  finished_at: bigint | null;
  version: bigint;
  message_count: bigint;
}

/** An event row joined with its message (all m_ columns NULL for other events). */
type JoinedRow = EventRow & { [K in `m_${(typeof MESSAGE_COLUMNS)[number]}`]: unknown };

/**
 * A page of a session's events with their messages: a range of session_events' primary
 * key, each message found by primary key (see test/list-query-plan.test.ts).
 */
export const LIST_EVENTS_SQL =
  `SELECT ${INSERT_COLUMNS.map((c) => "e." + c).join(", ")}, ${MESSAGE_COLUMNS.map((c) => `m.${c} AS m_${c}`).join(", ")} ` +
  "FROM session_events AS e LEFT JOIN messages AS m " +
  "ON m.org_id = e.org_id AND m.session_id = e.session_id AND m.sequence = e.sequence " +
  "WHERE e.org_id = ? AND e.session_id = ? AND e.sequence > ? ORDER BY e.sequence LIMIT ?";

/**
 * The session_events table: appended to inside the transaction of each change (the caller
 * holds it, see SqliteSessions), read by ascending sequence.
 */
export class SqliteEvents {
  private readonly insert: Database.Statement;
  private readonly page: Database.Statement<[string, string, bigint, number], JoinedRow>;
  private readonly removeAll: Database.Statement<[string, string]>;

  constructor(db: Database.Database) {
    this.insert = db.prepare(
      `INSERT INTO session_events (${INSERT_COLUMNS.join(", ")}) VALUES (${INSERT_COLUMNS.map((c) => "@" + c).join(", ")})`,
    );
    this.page = db.prepare<[string, string, bigint, number], JoinedRow>(LIST_EVENTS_SQL).safeIntegers(true);
    this.removeAll = db.prepare<[string, string]>("DELETE FROM session_events WHERE org_id = ? AND session_id = ?");
  }

  /** Appends the event of a change: `session` as it is after it, its lastSequence the event's sequence. */
  append(session: SessionRecord, type: SessionEventType, delta: UsageRecord | undefined): void {
    const row: EventRow = {
      org_id: session.orgId,
      session_id: session.id,
      sequence: BigInt(session.lastSequence),
      type,
      delta_input_tokens: delta?.inputTokens ?? null,
      delta_output_tokens: delta?.outputTokens ?? null,
      delta_cache_read_tokens: delta?.cacheReadTokens ?? null,
      delta_cache_creation_tokens: delta?.cacheCreationTokens ?? null,
      title: session.title,
      tags: JSON.stringify(session.tags),
      state: session.state,
      input_tokens: session.usage.inputTokens,
      output_tokens: session.usage.outputTokens,
      cache_read_tokens: session.usage.cacheReadTokens,
      cache_creation_tokens: session.usage.cacheCreationTokens,
      prompt_preview: session.promptPreview,
      response_preview: session.responsePreview,
      error: session.error,
      updated_at: BigInt(session.updatedAt),
      started_at: optionalTime(session.startedAt),
      finished_at: optionalTime(session.finishedAt),
      version: BigInt(session.version),
      message_count: BigInt(session.messageCount),
    };
    this.insert.run(row);
  }

  /**
   * Events of `session` (as stored now: its fixed fields complete each event's session)
   * after `afterSequence`. Each event's size counts the fixed fields too, since every
   * event carries them.
   */
  listEvents(session: SessionRecord, afterSequence: number, limit: number, maxBytes: number): StoredPage<SessionEventRecord> {
    const fixedBytes =
      Buffer.byteLength(JSON.stringify(session.capabilities)) + session.id.length + session.orgId.length +
      session.agentId.length + session.modelId.length;
    return readStoredPage(
      this.page.iterate(session.orgId, session.id, BigInt(afterSequence), limit + 1),
      limit,
      maxBytes,
      (row) => fixedBytes + eventRowBytes(row),
      (row) => eventFromRow(session, row),
    );
  }

  deleteEventsOf(orgId: string, sessionId: string): void {
    this.removeAll.run(orgId, sessionId);
  }
}

function eventRowBytes(row: JoinedRow): number {
  let bytes =
    Buffer.byteLength(row.title) + Buffer.byteLength(row.tags) + Buffer.byteLength(row.prompt_preview) +
    Buffer.byteLength(row.response_preview) + Buffer.byteLength(row.error);
  const message = messageOf(row);
  if (message) bytes += messageRowBytes(message);
  return bytes;
}

function messageOf(row: JoinedRow): MessageRow | undefined {
  if (row.m_id === null) return undefined;
  return Object.fromEntries(MESSAGE_COLUMNS.map((c) => [c, row[`m_${c}`]])) as unknown as MessageRow;
}

function eventFromRow(fixed: SessionRecord, row: JoinedRow): SessionEventRecord {
  const sequence = Number(row.sequence);
  const session: SessionRecord = {
    id: fixed.id,
    orgId: fixed.orgId,
    agentId: fixed.agentId,
    modelId: fixed.modelId,
    capabilities: fixed.capabilities,
    createdAt: fixed.createdAt,
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
    error: row.error,
    updatedAt: Number(row.updated_at),
    startedAt: fromOptionalTime(row.started_at),
    finishedAt: fromOptionalTime(row.finished_at),
    version: Number(row.version),
    messageCount: Number(row.message_count),
    lastSequence: sequence,
  };
  const message = messageOf(row);
  return {
    orgId: fixed.orgId,
    sessionId: fixed.id,
    sequence,
    type: row.type as SessionEventType,
    createdAt: session.updatedAt,
    message: message && messageFromRow(message),
    usageDelta:
      row.delta_input_tokens === null
        ? undefined
        : {
            inputTokens: row.delta_input_tokens,
            outputTokens: row.delta_output_tokens ?? 0n,
            cacheReadTokens: row.delta_cache_read_tokens ?? 0n,
            cacheCreationTokens: row.delta_cache_creation_tokens ?? 0n,
          },
    session,
  };
}
