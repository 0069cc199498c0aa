/**
 * What the service needs from storage, in plain TypeScript values: no protobuf, no SQL.
 * A second backend (a server database) implements this interface; every method is
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
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly startedAt: number | undefined;
  readonly finishedAt: number | undefined;
}

export interface SessionStore {
  /** Stores a new session; resolves once it is durable. */
  insertSession(session: SessionRecord): Promise<void>;
  /** The session with this id in this organisation, or undefined. */
  findSession(orgId: string, id: string): Promise<SessionRecord | undefined>;
  /** Releases the store; no call may follow. */
  close(): Promise<void>;
}
