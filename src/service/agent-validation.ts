import type { CreateAgentRequest, UpdateAgentRequest } from "../../gen/sessions/v1/agent_service_pb.js";
import { codePointLength, hasControlCharacter, Violations } from "../validate.js";
import { checkCapabilities, checkId } from "./field-rules.js";
import { checkRequestId } from "./idempotency.js";

/** Longest agent name, in code points. */
export const MAX_AGENT_NAME_LENGTH = 128;

/** The fields an update may name, in the order error messages list them. */
export const UPDATABLE_AGENT_FIELDS = ["name", "default_model_id", "capabilities"] as const;
export type UpdatableAgentField = (typeof UPDATABLE_AGENT_FIELDS)[number];

/** Throws invalid_argument listing every problem of the request. */
export function validateCreateAgent(request: CreateAgentRequest): void {
  const violations = new Violations();
  checkName(violations, request.name, "name");
  checkId(violations, "model", request.defaultModelId, "default_model_id");
  checkCapabilities(violations, request.capabilities);
  checkRequestId(violations, request.requestId);
  violations.throwIfAny();
}

/** Throws invalid_argument unless the id has the form of an agent id. */
export function validateAgentId(id: string, field = "id"): void {
  const violations = new Violations();
  checkId(violations, "agent", id, field);
  violations.throwIfAny();
}

/**
 * The fields an update sets, or invalid_argument listing every problem: a malformed id,
 * mask paths that cannot be updated, and bad new values of the fields it sets.
 *
 * An explicit mask must name only updatable fields (`id` and `etag` identify the agent
 * and are allowed, and ignored); an empty mask means every updatable field with a value
 * (AIP-134). Over REST the transcoder fills an empty mask from the keys present in the
 * body, so a REST client can also clear the capabilities.
 */
export function validateAgentUpdate(request: UpdateAgentRequest): Set<UpdatableAgentField> {
  const violations = new Violations();
  const agent = request.agent;
  checkId(violations, "agent", agent?.id ?? "", "agent.id");
  const fields = new Set<UpdatableAgentField>();
  const paths = request.updateMask?.paths ?? [];
  if (paths.length === 0) {
    if (agent?.name) fields.add("name");
    if (agent?.defaultModelId) fields.add("default_model_id");
    if (agent && agent.capabilities.length > 0) fields.add("capabilities");
  }
  const updatable: readonly string[] = UPDATABLE_AGENT_FIELDS;
  for (const path of paths) {
    if (updatable.includes(path)) fields.add(path as UpdatableAgentField);
    else if (path !== "id" && path !== "etag") {
      violations.add("update_mask", `update_mask: "${path}" cannot be updated; only name, default_model_id and capabilities can`);
    }
  }
  if (agent) {
    if (fields.has("name")) checkName(violations, agent.name, "agent.name");
    if (fields.has("default_model_id")) checkId(violations, "model", agent.defaultModelId, "agent.default_model_id");
    if (fields.has("capabilities")) checkCapabilities(violations, agent.capabilities, "agent.capabilities");
  }
  violations.throwIfAny();
  return fields;
}

/** A name: 1..MAX_AGENT_NAME_LENGTH code points, no control characters, well-formed. */
function checkName(violations: Violations, name: string, field: string): void {
  const length = codePointLength(name);
  if (length === 0) violations.add(field, `${field} is required`);
  else if (length > MAX_AGENT_NAME_LENGTH) {
    violations.add(field, `${field} must be at most ${MAX_AGENT_NAME_LENGTH} characters, got ${length}`);
  }
  if (hasControlCharacter(name)) violations.add(field, `${field} must not contain control characters`);
  if (!name.isWellFormed()) violations.add(field, `${field} must not contain unpaired surrogates`);
}
