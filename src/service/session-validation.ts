import type { CreateSessionRequest } from "../../gen/sessions/v1/session_service_pb.js";
import type { CapabilityConfig } from "../../gen/sessions/v1/session_pb.js";
import { ID_PATTERN } from "../ids.js";
import { codePointLength, hasControlCharacter, Violations } from "../validate.js";

/** The limits of a session's fields; the proto comments and the README state the same. */
export const SESSION_LIMITS = {
  titleLength: 256,
  tags: 32,
  tagLength: 64,
  capabilities: 64,
  capabilityIdLength: 128,
  capabilityConfigBytes: 64 * 1024,
} as const;

const CAPABILITY_ID = /^[A-Za-z0-9_.:-]+$/;

/** Throws invalid_argument listing every problem of the request, agent first. */
export function validateCreateSession(request: CreateSessionRequest): void {
  const violations = new Violations();
  if (request.agentId === "") {
    violations.add("agent_id", "Invalid agent ID: agent_id is required");
  } else if (!ID_PATTERN.agent.test(request.agentId)) {
    violations.add("agent_id", 'Invalid agent ID: agent_id must be "agent_" followed by 32 lowercase hex digits');
  }
  if (request.modelId !== "" && !ID_PATTERN.model.test(request.modelId)) {
    violations.add("model_id", 'model_id must be "model_" followed by 32 lowercase hex digits, or empty');
  }
  checkTitle(violations, request.title);
  checkTags(violations, request.tags);
  checkCapabilities(violations, request.capabilities);
  violations.throwIfAny();
}

/** Throws invalid_argument unless the id has the form of a session id. */
export function validateSessionId(id: string, field = "id"): void {
  const violations = new Violations();
  if (id === "") violations.add(field, `Invalid session ID: ${field} is required`);
  else if (!ID_PATTERN.session.test(id)) {
    violations.add(field, `Invalid session ID: ${field} must be "session_" followed by 32 lowercase hex digits`);
  }
  violations.throwIfAny();
}

function checkTitle(violations: Violations, title: string): void {
  const length = codePointLength(title);
  if (length > SESSION_LIMITS.titleLength) {
    violations.add("title", `title must be at most ${SESSION_LIMITS.titleLength} characters, got ${length}`);
  }
  if (!title.isWellFormed()) violations.add("title", "title must not contain unpaired surrogates");
}

function checkTags(violations: Violations, tags: readonly string[]): void {
  if (tags.length > SESSION_LIMITS.tags) {
    violations.add("tags", `tags must have at most ${SESSION_LIMITS.tags} entries, got ${tags.length}`);
    return;
  }
  const seen = new Map<string, number>();
  tags.forEach((tag, i) => {
    const field = `tags[${i}]`;
    const length = codePointLength(tag);
    if (length === 0) violations.add(field, `${field} must not be empty`);
    else if (length > SESSION_LIMITS.tagLength) {
      violations.add(field, `${field} must be at most ${SESSION_LIMITS.tagLength} characters, got ${length}`);
    }
    if (hasControlCharacter(tag)) violations.add(field, `${field} must not contain control characters`);
    if (!tag.isWellFormed()) violations.add(field, `${field} must not contain unpaired surrogates`);
    const first = seen.get(tag);
    if (first !== undefined) violations.add(field, `${field} duplicates tags[${first}]`);
    else seen.set(tag, i);
  });
}

function checkCapabilities(violations: Violations, capabilities: readonly CapabilityConfig[]): void {
  if (capabilities.length > SESSION_LIMITS.capabilities) {
    violations.add(
      "capabilities",
      `capabilities must have at most ${SESSION_LIMITS.capabilities} entries, got ${capabilities.length}`,
    );
    return;
  }
  const seen = new Map<string, number>();
  capabilities.forEach((capability, i) => {
    const field = `capabilities[${i}].capability_id`;
    const id = capability.capabilityId;
    // Counted in code points like every other limit: `id.length` would count an emoji twice.
    const length = codePointLength(id);
    if (id === "") violations.add(field, `${field} is required`);
    else if (length > SESSION_LIMITS.capabilityIdLength) {
      violations.add(field, `${field} must be at most ${SESSION_LIMITS.capabilityIdLength} characters, got ${length}`);
    } else if (!CAPABILITY_ID.test(id)) {
      violations.add(field, `${field} must contain only letters, digits, "_", ".", ":" and "-"`);
    } else {
      const first = seen.get(id);
      if (first !== undefined) violations.add(field, `${field} duplicates capabilities[${first}].capability_id`);
      else seen.set(id, i);
    }
    if (capability.config !== undefined) {
      // A binary client can put NaN or ±Infinity in a Struct; JSON cannot hold them, so the
      // store would keep null instead and a later read would differ from what was accepted.
      let nonFinite = false;
      const json = JSON.stringify(capability.config, (_key, value: unknown) => {
        if (typeof value === "number" && !Number.isFinite(value)) nonFinite = true;
        return value;
      });
      const bytes = Buffer.byteLength(json);
      if (bytes > SESSION_LIMITS.capabilityConfigBytes) {
        violations.add(
          `capabilities[${i}].config`,
          `capabilities[${i}].config must be at most 64 KiB as compact JSON, got ${bytes} bytes`,
        );
      }
      if (nonFinite) {
        violations.add(`capabilities[${i}].config`, `capabilities[${i}].config must not contain NaN or Infinity`);
      }
    }
  });
}
