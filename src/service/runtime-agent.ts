import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  RuntimeAgentSchema, type GetRuntimeAgentRequest, type RuntimeAgent,
} from "../../gen/sessions/v1/session_service_pb.js";
import type { CapabilityRecord, JsonObject, Store } from "../store/store.js";
import { validateSessionId } from "./session-validation.js";

/** GetRuntimeAgent: the session's effective model and capabilities. */
export async function runtimeAgent(store: Store, orgId: string, request: GetRuntimeAgentRequest): Promise<RuntimeAgent> {
  validateSessionId(request.id);
  const session = await store.findSession(orgId, request.id);
  if (!session) throw new ConnectError(`session ${request.id} not found`, Code.NotFound);
  const agent = await store.findAgent(orgId, session.agentId);
  if (!agent) {
    // The session exists and names its agent correctly; it is the agent's deletion that
    // stands in the way, which the client cannot fix by changing this request.
    throw new ConnectError(
      `session ${session.id} runs agent ${session.agentId}, which no longer exists`,
      Code.FailedPrecondition,
    );
  }
  return create(RuntimeAgentSchema, {
    sessionId: session.id,
    agentId: agent.id,
    modelId: session.modelId || agent.defaultModelId,
    capabilities: mergeCapabilities(agent.capabilities, session.capabilities).map((c) => ({
      capabilityId: c.capabilityId,
      config: c.config as never,
    })),
  });
}

/**
 * The agent's capabilities in the agent's order, then the session's new ones in the
 * session's order. A capability both name stays at the agent's position with the
 * session's config merged over the agent's: top-level keys of the session's win and
 * nested values are replaced whole, so a session replaces a setting without having to
 * know what else the agent's value held. A missing config counts as {}; when both are
 * missing the result has none either.
 */
export function mergeCapabilities(
  agent: readonly CapabilityRecord[],
  session: readonly CapabilityRecord[],
): CapabilityRecord[] {
  const merged: CapabilityRecord[] = [];
  const positions = new Map<string, number>();
  for (const capability of [...agent, ...session]) {
    const position = positions.get(capability.capabilityId);
    if (position === undefined) {
      positions.set(capability.capabilityId, merged.length);
      merged.push(capability);
    } else {
      const earlier = merged[position]!;
      merged[position] = { capabilityId: earlier.capabilityId, config: mergeConfig(earlier.config, capability.config) };
    }
  }
  return merged;
}

function mergeConfig(base: JsonObject | undefined, over: JsonObject | undefined): JsonObject | undefined {
  if (base === undefined && over === undefined) return undefined;
  return { ...base, ...over };
}
