import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { AgentSchema, type Agent } from "../../gen/sessions/v1/agent_pb.js";
import type { AgentRecord } from "../store/store.js";
import { capabilityMessages } from "./capability-message.js";
import { etagOf } from "./etag.js";

/** The API's view of a stored agent. */
export function agentMessage(record: AgentRecord): Agent {
  return create(AgentSchema, {
    id: record.id,
    orgId: record.orgId,
    name: record.name,
    defaultModelId: record.defaultModelId,
    capabilities: capabilityMessages(record.capabilities),
    createdAt: timestampFromMs(record.createdAt),
    updatedAt: timestampFromMs(record.updatedAt),
    etag: etagOf("agent", record.version),
  });
}
