import type { AgentRecord, CapabilityRecord, JsonObject, SessionRecord, SessionState } from "./store.js";

/** How sessions and agents sit in their SQLite rows: JSON text for lists, integers for times. */

export interface SessionRow {
  id: string;
  org_id: string;
  agent_id: string;
  model_id: string;
  capabilities: string;
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
  created_at: bigint;
  updated_at: bigint;
  started_at: bigint | null;
  finished_at: bigint | null;
  version: bigint;
}

export interface AgentRow {
  id: string;
  org_id: string;
  name: string;
  default_model_id: string;
  capabilities: string;
  created_at: bigint;
  updated_at: bigint;
  version: bigint;
}

export function capabilitiesToText(capabilities: readonly CapabilityRecord[]): string {
  return JSON.stringify(
    capabilities.map((c) => (c.config === undefined ? { capability_id: c.capabilityId } : { capability_id: c.capabilityId, config: c.config })),
  );
}

export function capabilitiesFromText(text: string): CapabilityRecord[] {
  return (JSON.parse(text) as Array<{ capability_id: string; config?: JsonObject }>).map((c) => ({
    capabilityId: c.capability_id,
    config: c.config,
  }));
}

const optionalTime = (ms: number | undefined) => (ms === undefined ? null : BigInt(ms));
const fromOptionalTime = (value: bigint | null) => (value === null ? undefined : Number(value));

export function sessionToRow(s: SessionRecord): SessionRow {
  return {
    id: s.id,
    org_id: s.orgId,
    agent_id: s.agentId,
    model_id: s.modelId,
    capabilities: capabilitiesToText(s.capabilities),
    title: s.title,
    tags: JSON.stringify(s.tags),
    state: s.state,
    input_tokens: s.usage.inputTokens,
    output_tokens: s.usage.outputTokens,
    cache_read_tokens: s.usage.cacheReadTokens,
    cache_creation_tokens: s.usage.cacheCreationTokens,
    prompt_preview: s.promptPreview,
    response_preview: s.responsePreview,
    error: s.error,
    created_at: BigInt(s.createdAt),
    updated_at: BigInt(s.updatedAt),
    started_at: optionalTime(s.startedAt),
    finished_at: optionalTime(s.finishedAt),
    version: BigInt(s.version),
  };
}

export function sessionFromRow(row: SessionRow): SessionRecord {
  return {
    id: row.id,
    orgId: row.org_id,
    agentId: row.agent_id,
    modelId: row.model_id,
    capabilities: capabilitiesFromText(row.capabilities),
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
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
    startedAt: fromOptionalTime(row.started_at),
    finishedAt: fromOptionalTime(row.finished_at),
    version: Number(row.version),
  };
}

export function agentToRow(a: AgentRecord): AgentRow {
  return {
    id: a.id,
    org_id: a.orgId,
    name: a.name,
    default_model_id: a.defaultModelId,
    capabilities: capabilitiesToText(a.capabilities),
    created_at: BigInt(a.createdAt),
    updated_at: BigInt(a.updatedAt),
    version: BigInt(a.version),
  };
}

export function agentFromRow(row: AgentRow): AgentRecord {
  return {
    id: row.id,
    orgId: row.org_id,
    name: row.name,
    defaultModelId: row.default_model_id,
    capabilities: capabilitiesFromText(row.capabilities),
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
    version: Number(row.version),
  };
}
