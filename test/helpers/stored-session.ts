import type { SessionRecord } from "../../src/store/store.js";
import { AGENT_ID, DEFAULT_ORG_ID } from "./server.js";

/**
 * A PENDING session of AGENT_ID in the default organisation, created at `createdAt`, for
 * seeding the store directly (Store.insertSession); `fields` replace any of its values.
 */
export function storedSession(id: string, createdAt: number, fields: Partial<SessionRecord> = {}): SessionRecord {
  return {
    id,
    orgId: DEFAULT_ORG_ID,
    agentId: AGENT_ID,
    modelId: "",
    capabilities: [],
    title: "",
    tags: [],
    state: "pending",
    usage: { inputTokens: 0n, outputTokens: 0n, cacheReadTokens: 0n, cacheCreationTokens: 0n },
    promptPreview: "",
    responsePreview: "",
    error: "",
    createdAt,
    updatedAt: createdAt,
    startedAt: undefined,
    finishedAt: undefined,
    version: 1,
    messageCount: 0,
    lastSequence: 1,
    ...fields,
  };
}
