import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { AgentSchema, type Agent } from "../../gen/sessions/v1/agent_pb.js";
import type { CapabilityConfig } from "../../gen/sessions/v1/session_pb.js";
import type { AgentRecord, CapabilityRecord } from "../store/store.js";
import { etagOf } from "./etag.js";

/** The API's view of a stored agent. */
export function agentMessage(record: AgentRecord): Agent {
  return create(AgentSchema, {
    id: record.id,
    orgId: record.orgId,
    name: record.name,
    defaultModelId: record.defaultModelId,
    capabilities: record.capabilities.map((c) => ({ capabilityId: c.capabilityId, config: c.config as never })),
    createdAt: timestampFromMs(record.createdAt),
    updatedAt: timestampFromMs(record.updatedAt),
    etag: etagOf("agent", record.version),
  });
}

/** Capabilities as the store keeps them; a capability without config keeps none. */
export function capabilityRecords(capabilities: readonly CapabilityConfig[]): CapabilityRecord[] {
  return capabilities.map((c) => ({ capabilityId: c.capabilityId, config: c.config }));
}
