import type { StoreObserver } from "./store-observer.js";

/**
 * What the services need from storage, in plain TypeScript values: no protobuf, no SQL.
 * A second backend (a server database) implements these interfaces; every method is
 * asynchronous for that reason even where SQLite answers synchronously.
 */

/** A JSON object as stored, for capability configuration. */
export type JsonObject = { [key: string]: unknown };

export type SessionState = "pending" | "running" | "completed" | "failed" | "cancelled";

export interface CapabilityRecord {
  readonly capabilityId: string;
  /** Undefined when the capability has no configuration. */
  readonly config: JsonObject | undefined;
}

export interface UsageRecord {
  readonly inputTokens: bigint;
  readonly outputTokens: bigint;
  readonly cacheReadTokens: bigint;
  readonly cacheCreationTokens: bigint;
}

/** Times are Unix milliseconds. */
export interface SessionRecord {
  readonly id: string;
  readonly orgId: string;
  readonly agentId: string;
  /** Empty when the agent's default model applies. */
  readonly modelId: string;
  readonly capabilities: readonly CapabilityRecord[];
  readonly title: string;
  readonly tags: readonly string[];
  readonly state: SessionState;
  readonly usage: UsageRecord;
  readonly promptPreview: string;
  readonly responsePreview: string;
  /** Why the session failed; empty unless it did. */
  readonly error: string;
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly startedAt: number | undefined;
  readonly finishedAt: number | undefined;
  /** 1 on insert, one more on every change; the store sets it, the etag derives from it. */
  readonly version: number;
  /** Messages appended so far (the store keeps it; the service caps it). */
  readonly messageCount: number;
  /** The sequence of the session's latest event (the store sets it). */
  readonly lastSequence: number;
}

export interface AgentRecord {
  readonly id: string;
  readonly orgId: string;
  readonly name: string;
  readonly defaultModelId: string;
  readonly capabilities: readonly CapabilityRecord[];
  readonly createdAt: number;
  readonly updatedAt: number;
  /** As SessionRecord.version. */
  readonly version: number;
}

/** A position in a newest-first listing: the last item of the previous page. */
export interface ListCursor {
  readonly createdAt: number;
  readonly id: string;
}

/**
 * One page as a store reads it: records in listing order, and whether more follow them.
 * A listing reads at most `limit` records and, past the first, stops before the record
 * that would take their stored size beyond `maxBytes` (UTF-8 bytes of their text
 * columns plus STORED_RECORD_OVERHEAD_BYTES each), without holding the rest in memory:
 * the first record is read whatever its size, so that paging always moves on.
 */
export interface StoredPage<T> {
  readonly records: T[];
  /** True when a record after the last one exists (the next page is not empty). */
  readonly more: boolean;
  /** The stored size of `records`, as counted against the page's byte budget. */
  readonly bytes: number;
}

/**
 * Counted for each record on top of its text, for its numbers, ids and field names once
 * encoded: a page of many small records is measured near its encoded size too.
 */
export const STORED_RECORD_OVERHEAD_BYTES = 512;

/** Filters of a session listing; they combine with AND. Empty arrays filter nothing. */
export interface SessionFilter {
  readonly agentId: string | undefined;
  /** Any of these states. */
  readonly states: readonly SessionState[];
  /** Every one of these tags. */
  readonly tags: readonly string[];
  /** Exclusive bounds, Unix milliseconds. */
  readonly createdAfter: number | undefined;
  readonly createdBefore: number | undefined;
}

/**
 * A change to a stored record, computed from its current value inside the store's
 * transaction, so that concurrent changes to one record apply one after another and none
 * is lost. It returns the new value (the store sets `version`), or throws to change
 * nothing; the error reaches the caller as it was thrown. It must be synchronous.
 */
export type Mutation<T> = (current: T) => T;

/** A check on the current record before a delete; throws to keep it. Synchronous. */
export type DeleteCheck<T> = (current: T) => void;

/**
 * The idempotency key (AIP-155) of a create: the record's organisation, the method and
 * the request_id name it; the store keeps which record it created. Built by the service,
 * which alone knows the wire format the hash is computed from.
 */
export interface IdempotencyKey {
  /** The full method name, e.g. "sessions.v1.SessionService/CreateSession". */
  readonly method: string;
  /** The request_id as the service normalised it. */
  readonly requestId: string;
  /** A digest of the request without its request_id: equal for a retry, different for another request. */
  readonly requestHash: Uint8Array;
  /** Keys created before this time (Unix milliseconds) have expired: they are ignored and swept. */
  readonly expiredBefore: number;
}

/**
 * What a create under an idempotency key did. A key that is unknown or expired stores the
 * record with the key; a live key stores nothing.
 */
export type KeyedInsert<T> =
  /** The record was stored, and the key with it. */
  | { readonly outcome: "inserted" }
  /** A retry: the key's record as it is now (current state, not a snapshot of the original answer). */
  | { readonly outcome: "replayed"; readonly record: T }
  /** A retry, but the key's record has been deleted since. */
  | { readonly outcome: "deleted"; readonly id: string }
  /** The key was used by a different request. */
  | { readonly outcome: "conflict" };

export type MessageRole = "user" | "assistant" | "system" | "tool";

/** One part of a message's content: exactly one kind. */
export type ContentPartRecord =
  | { readonly kind: "text"; readonly text: string }
  | { readonly kind: "tool_call"; readonly id: string; readonly name: string; readonly arguments: JsonObject | undefined }
  | {
      readonly kind: "tool_result";
      readonly toolCallId: string;
      readonly output: JsonObject | undefined;
      readonly isError: boolean;
    };

/** A message of a session's conversation. Times are Unix milliseconds. */
export interface MessageRecord {
  readonly id: string;
  readonly orgId: string;
  readonly sessionId: string;
  readonly role: MessageRole;
  readonly content: readonly ContentPartRecord[];
  /** Empty when none. */
  readonly modelId: string;
  /** The generation's usage (assistant messages), or undefined. */
  readonly usage: UsageRecord | undefined;
  readonly createdAt: number;
  /** The sequence of its MESSAGE_ADDED event; the store assigns it (0 before). */
  readonly sequence: number;
}

export type SessionEventType =
  | "created"
  | "updated"
  | "started"
  | "message_added"
  | "usage_recorded"
  | "completed"
  | "failed"
  | "cancelled";

/**
 * What a change to a session is, for the event the store appends with it: its type, and
 * for usage_recorded the delta. (message_added events come from appendMessage only.)
 */
export interface SessionChange {
  readonly type: Exclude<SessionEventType, "created" | "message_added">;
  /** usage_recorded: the tokens added. */
  readonly usageDelta?: UsageRecord;
}

/**
 * One entry of a session's event log. `sequence` is 1 for the session's first event and
 * one more for each later one, with no gaps: the store assigns it in the transaction of
 * the change, so there is no change without its event and no event without its change.
 */
export interface SessionEventRecord {
  readonly orgId: string;
  readonly sessionId: string;
  readonly sequence: number;
  readonly type: SessionEventType;
  /** Unix milliseconds: the session's updatedAt after the change. */
  readonly createdAt: number;
  /** message_added: the message. */
  readonly message: MessageRecord | undefined;
  /** usage_recorded: the tokens added. */
  readonly usageDelta: UsageRecord | undefined;
  /** The session right after the change. */
  readonly session: SessionRecord;
}

/** What appendMessage did. */
export type MessageAppend =
  | { readonly outcome: "appended"; readonly message: MessageRecord; readonly session: SessionRecord }
  /** A retry of an idempotent append: the message first stored. */
  | { readonly outcome: "replayed"; readonly message: MessageRecord }
  /** A retry whose message is gone (its session deleted since): not found. */
  | { readonly outcome: "deleted"; readonly id: string }
  /** The key was used by a different request. */
  | { readonly outcome: "conflict" };

export interface SessionStore {
  /**
   * Stores a new session, in the same transaction as a check that its agent exists in
   * its organisation. Resolves to false, storing nothing, when the agent does not.
   */
  insertSession(session: SessionRecord): Promise<boolean>;
  /**
   * As above, under an idempotency key in the session's organisation: the key is checked
   * and recorded in the same transaction as the insert, so racing retries store one
   * session. The agent is checked only when a session is to be stored.
   */
  insertSession(session: SessionRecord, key: IdempotencyKey): Promise<KeyedInsert<SessionRecord> | false>;
  /** The session with this id in this organisation, or undefined. */
  findSession(orgId: string, id: string): Promise<SessionRecord | undefined>;
  /**
   * Up to `limit` sessions after `cursor`, newest first (created_at, then id, descending),
   * ending early at `maxBytes` of stored size (see StoredPage).
   */
  listSessions(
    orgId: string,
    filter: SessionFilter,
    cursor: ListCursor | undefined,
    limit: number,
    maxBytes?: number,
  ): Promise<StoredPage<SessionRecord>>;
  /**
   * Applies a mutation and appends its event (`change`) in the same transaction; resolves
   * to the stored result, or undefined when there is no such session.
   */
  mutateSession(
    orgId: string,
    id: string,
    change: SessionChange,
    mutation: Mutation<SessionRecord>,
  ): Promise<SessionRecord | undefined>;
  /**
   * Deletes after the check passes, with the session's messages and events; resolves to the
   * deleted record, or undefined when there was none.
   */
  deleteSession(orgId: string, id: string, check: DeleteCheck<SessionRecord>): Promise<SessionRecord | undefined>;
  /**
   * Appends a message to a session with its message_added event, in one transaction with
   * `mutation` of the session (its usage, previews, message count; it throws to store
   * nothing, e.g. for a finished session or one at its message cap). Under a key, as
   * insertSession: the key is checked and stored in the same transaction. Resolves to
   * undefined when there is no such session.
   */
  appendMessage(
    message: MessageRecord,
    mutation: Mutation<SessionRecord>,
    key?: IdempotencyKey,
  ): Promise<MessageAppend | undefined>;
  /** The message with this id in this session and organisation, or undefined. */
  findMessage(orgId: string, sessionId: string, id: string): Promise<MessageRecord | undefined>;
  /**
   * Up to `limit` messages of a session with a sequence greater than `afterSequence`,
   * oldest first, ending early at `maxBytes` as listSessions does.
   */
  listMessages(
    orgId: string,
    sessionId: string,
    afterSequence: number,
    limit: number,
    maxBytes?: number,
  ): Promise<StoredPage<MessageRecord>>;
  /**
   * Up to `limit` events of a session with a sequence greater than `afterSequence`, by
   * ascending sequence, ending early at `maxBytes` as listSessions does.
   */
  listSessionEvents(
    orgId: string,
    sessionId: string,
    afterSequence: number,
    limit: number,
    maxBytes?: number,
  ): Promise<StoredPage<SessionEventRecord>>;
}

export interface AgentStore {
  insertAgent(agent: AgentRecord): Promise<void>;
  /** Stores a new agent under an idempotency key, as insertSession does. */
  insertAgent(agent: AgentRecord, key: IdempotencyKey): Promise<KeyedInsert<AgentRecord>>;
  findAgent(orgId: string, id: string): Promise<AgentRecord | undefined>;
  /** Up to `limit` agents after `cursor`, newest first, ending early at `maxBytes` as listSessions does. */
  listAgents(orgId: string, cursor: ListCursor | undefined, limit: number, maxBytes?: number): Promise<StoredPage<AgentRecord>>;
  mutateAgent(orgId: string, id: string, mutation: Mutation<AgentRecord>): Promise<AgentRecord | undefined>;
  deleteAgent(orgId: string, id: string, check: DeleteCheck<AgentRecord>): Promise<AgentRecord | undefined>;
}

/** An API key as stored: never the key itself, only a hash of its secret. */
export interface ApiKeyRecord {
  /** "key_" followed by 32 hex digits; also the key's public prefix. */
  readonly id: string;
  readonly orgId: string;
  readonly name: string;
  readonly secretHash: Uint8Array;
  readonly createdAt: number;
  readonly lastUsedAt: number | undefined;
  readonly revokedAt: number | undefined;
}

export interface KeyStore {
  insertKey(key: ApiKeyRecord): Promise<void>;
  findKey(id: string): Promise<ApiKeyRecord | undefined>;
  /** Every key, oldest first, revoked ones included. */
  listKeys(): Promise<ApiKeyRecord[]>;
  /** Marks a key revoked; false when there is no such key or it was revoked already. */
  revokeKey(id: string, at: number): Promise<boolean>;
  /** Records a use of the key. */
  touchKey(id: string, at: number): Promise<void>;
  /** Whether any key was ever created (revoked ones count: revoking every key must not open the server). */
  hasKeys(): Promise<boolean>;
}

/** A committed change to a session, as watchChanges reports it. */
export interface StoredChange {
  readonly orgId: string;
  readonly sessionId: string;
  /** The session's last event sequence after the change (0 when deleted). */
  readonly sequence: number;
  readonly deleted: boolean;
}

/** Everything the server stores, behind one handle to open and close. */
export interface Store extends SessionStore, AgentStore, KeyStore {
  /**
   * Resolves once the database has answered a trivial read and writes are known to work, for
   * readiness probes: from the outcome of a recent write transaction, or else a small write
   * of its own. Any failure rejects as a StoreUnavailableError (its cause kept), never with
   * the backend's own error.
   */
  ping(): Promise<void>;
  /**
   * Deletes up to `limit` idempotency keys created before `expiredBefore`, oldest first, in
   * one write; resolves to how many it deleted (fewer than `limit`: none are left).
   */
  sweepIdempotencyKeys(expiredBefore: number, limit: number): Promise<number>;
  /**
   * Reports storage timings to `observer` until the returned function is called (for the
   * server's metrics). Optional: a store without it reports nothing.
   */
  observe?(observer: StoreObserver): () => void;
  /**
   * For a store that several servers share (PostgreSQL): tells `listener` of every session
   * change committed by any of them, this one included, soon after its commit, until the
   * returned function is called. It is only a wake-up, never the truth: a change may be
   * reported late, more than once, or (when the connection that hears them was lost and
   * is back) not at all — `onGap` then says that changes may have been missed, so that
   * whoever follows sessions reads them again. A store used by one server alone leaves it
   * out: its server hears its own changes directly.
   */
  watchChanges?(listener: (change: StoredChange) => void, onGap: () => void): () => void;
  /** Releases the store; no call may follow. */
  close(): Promise<void>;
}

/**
 * Why storage cannot serve calls for now; each passes once its cause is gone, except
 * `replaced` (a file of the database deleted or replaced under the server), which refuses
 * writes until a restart.
 */
export type StoreUnavailableReason = "full" | "read-only" | "io" | "busy" | "cannot-open" | "replaced" | "unreachable";

const UNAVAILABLE_MESSAGES: Record<StoreUnavailableReason, string> = {
  full: "storage is full; try again later",
  "read-only": "storage is read-only; try again later",
  io: "storage could not read or write; try again later",
  busy: "storage is busy; try again later",
  "cannot-open": "storage cannot be opened; try again later",
  unreachable: "storage cannot be reached; try again later",
  replaced: "storage was replaced or removed while in use; writes are refused until the server restarts",
};

/**
 * Storage cannot serve a call now for a reason outside the request: a full disk, a
 * read-only file, I/O errors, a lock held too long by another process, a file that cannot
 * be opened. The store stays usable and recovers by itself once the cause is gone.
 *
 * The message is fit for a client (no paths, no SQL); `cause` keeps the backend's own
 * error for the log. A call that failed full, read-only or busy changed nothing; after an
 * I/O error a write may or may not have been kept, as after any lost answer.
 */
export class StoreUnavailableError extends Error {
  override readonly name = "StoreUnavailableError";

  constructor(
    readonly reason: StoreUnavailableReason,
    options?: { cause?: unknown },
  ) {
    super(UNAVAILABLE_MESSAGES[reason], options);
  }
}
