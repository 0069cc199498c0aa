import type Database from "better-sqlite3";
import type { ContentPartRecord, JsonObject, MessageRecord, MessageRole, StoredPage, UsageRecord } from "./store.js";
import { readStoredPage } from "./stored-page.js";

/** How a message sits in its row (see the migration that adds messages). */
export interface MessageRow {
  org_id: string;
  session_id: string;
  sequence: bigint;
  id: string;
  role: string;
  content: string;
  model_id: string;
  input_tokens: bigint | null;
  output_tokens: bigint | null;
  cache_read_tokens: bigint | null;
  cache_creation_tokens: bigint | null;
  created_at: bigint;
}

export const MESSAGE_COLUMNS = [
  "org_id", "session_id", "sequence", "id", "role", "content", "model_id",
  "input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens", "created_at",
] as const satisfies ReadonlyArray<keyof MessageRow>;

/** A stored part: the API's JSON form of a ContentPart, field names as in the proto. */
type StoredPart =
  | { text: string }
  | { tool_call: { id: string; name: string; arguments?: JsonObject } }
  | { tool_result: { tool_call_id: string; output?: JsonObject; is_error: boolean } };

/** The content as stored: compact JSON in the API's shape, which is also what its 256 KiB limit measures. */
export function contentToText(content: readonly ContentPartRecord[]): string {
  return JSON.stringify(
    content.map((part): StoredPart => {
      switch (part.kind) {
        case "text":
          return { text: part.text };
        case "tool_call":
          return { tool_call: { id: part.id, name: part.name, ...(part.arguments === undefined ? {} : { arguments: part.arguments }) } };
        case "tool_result":
          return {
            tool_result: {
              tool_call_id: part.toolCallId,
              ...(part.output === undefined ? {} : { output: part.output }),
              is_error: part.isError,
            },
          };
      }
    }),
  );
}

function contentFromText(text: string): ContentPartRecord[] {
  return (JSON.parse(text) as StoredPart[]).map((part): ContentPartRecord => {
    if ("text" in part) return { kind: "text", text: part.text };
    if ("tool_call" in part) {
      return { kind: "tool_call", id: part.tool_call.id, name: part.tool_call.name, arguments: part.tool_call.arguments };
    }
    const r = part.tool_result;
    return { kind: "tool_result", toolCallId: r.tool_call_id, output: r.output, isError: r.is_error };
  });
}

export function messageToRow(m: MessageRecord): MessageRow {
  return {
    org_id: m.orgId,
    session_id: m.sessionId,
    sequence: BigInt(m.sequence),
    id: m.id,
    role: m.role,
    content: contentToText(m.content),
    model_id: m.modelId,
    input_tokens: m.usage?.inputTokens ?? null,
    output_tokens: m.usage?.outputTokens ?? null,
    cache_read_tokens: m.usage?.cacheReadTokens ?? null,
    cache_creation_tokens: m.usage?.cacheCreationTokens ?? null,
    created_at: BigInt(m.createdAt),
  };
}

export function messageFromRow(row: MessageRow): MessageRecord {
  const usage: UsageRecord | undefined =
    row.input_tokens === null
      ? undefined
      : {
          inputTokens: row.input_tokens,
          outputTokens: row.output_tokens ?? 0n,
          cacheReadTokens: row.cache_read_tokens ?? 0n,
          cacheCreationTokens: row.cache_creation_tokens ?? 0n,
        };
  return {
    id: row.id,
    orgId: row.org_id,
    sessionId: row.session_id,
    role: row.role as MessageRole,
    content: contentFromText(row.content),
    modelId: row.model_id,
    usage,
    createdAt: Number(row.created_at),
    sequence: Number(row.sequence),
  };
}

/** The UTF-8 bytes of a message row's text columns, for page budgets. */
export function messageRowBytes(row: MessageRow): number {
  return Buffer.byteLength(row.content) + row.id.length + row.session_id.length + row.org_id.length + row.model_id.length;
}

const COLUMNS = MESSAGE_COLUMNS.join(", ");

/** A page of a session's messages: a range of the primary key (see test/list-query-plan.test.ts). */
export const LIST_MESSAGES_SQL =
  `SELECT ${COLUMNS} FROM messages WHERE org_id = ? AND session_id = ? AND sequence > ? ORDER BY sequence LIMIT ?`;

/**
 * The messages table, synchronously, inside the caller's transaction for writes (see
 * SqliteSessions.appendMessage, which alone inserts, with the session's change and event).
 */
export class SqliteMessages {
  private readonly insert: Database.Statement;
  private readonly selectById: Database.Statement<[string, string, string], MessageRow>;
  private readonly page: Database.Statement<[string, string, bigint, number], MessageRow>;
  private readonly removeAll: Database.Statement<[string, string]>;

  constructor(db: Database.Database) {
    this.insert = db.prepare(`INSERT INTO messages (${COLUMNS}) VALUES (${MESSAGE_COLUMNS.map((c) => "@" + c).join(", ")})`);
    this.selectById = db
      .prepare<[string, string, string], MessageRow>(`SELECT ${COLUMNS} FROM messages WHERE org_id = ? AND session_id = ? AND id = ?`)
      .safeIntegers(true);
    this.page = db
      .prepare<[string, string, bigint, number], MessageRow>(LIST_MESSAGES_SQL)
      .safeIntegers(true);
    this.removeAll = db.prepare<[string, string]>("DELETE FROM messages WHERE org_id = ? AND session_id = ?");
  }

  insertMessage(message: MessageRecord): void {
    this.insert.run(messageToRow(message));
  }

  findMessage(orgId: string, sessionId: string, id: string): MessageRecord | undefined {
    const row = this.selectById.get(orgId, sessionId, id);
    return row && messageFromRow(row);
  }

  listMessages(orgId: string, sessionId: string, afterSequence: number, limit: number, maxBytes: number): StoredPage<MessageRecord> {
    return readStoredPage(this.page.iterate(orgId, sessionId, BigInt(afterSequence), limit + 1), limit, maxBytes, messageRowBytes, messageFromRow);
  }

  deleteMessagesOf(orgId: string, sessionId: string): void {
    this.removeAll.run(orgId, sessionId);
  }
}
