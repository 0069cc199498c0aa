import type { CapabilityConfig } from "../../gen/sessions/v1/session_pb.js";
import { ID_PATTERN } from "../ids.js";
import { codePointLength, hasControlCharacter, type Violations } from "../validate.js";

/**
 * Rules for fields that sessions and agents share, each adding to a Violations list under
 * the field path it is given. The proto comments and the README state the same limits.
 */
export const LIMITS = {
  titleLength: 256,
  tags: 32,
  tagLength: 64,
  capabilities: 64,
  capabilityIdLength: 128,
  capabilityConfigBytes: 64 * 1024,
  // Decoders stop at 100 nested messages, and every JSON level of a Struct is two of them
  // (Struct, Value) below up to four more (ListSessionsResponse, Session, CapabilityConfig):
  // a deeper config would be stored, then break every binary or JSON client that reads it.
  capabilityConfigDepth: 32,
} as const;

const CAPABILITY_ID = /^[A-Za-z0-9_.:-]+$/;

const ID_FORM = {
  session: 'must be "session_" followed by 32 lowercase hex digits',
  agent: 'must be "agent_" followed by 32 lowercase hex digits',
  model: 'must be "model_" followed by 32 lowercase hex digits',
  message: 'must be "message_" followed by 32 lowercase hex digits',
} as const;

/**
 * A required id of one kind. Messages start "Invalid <kind> ID" (the session API has
 * always documented "Invalid agent ID").
 */
export function checkId(violations: Violations, kind: keyof typeof ID_FORM, id: string, field: string): void {
  if (id === "") violations.add(field, `Invalid ${kind} ID: ${field} is required`);
  else if (!ID_PATTERN[kind].test(id)) violations.add(field, `Invalid ${kind} ID: ${field} ${ID_FORM[kind]}`);
}

/** A title: at most LIMITS.titleLength code points, well-formed. */
export function checkTitle(violations: Violations, title: string, field = "title"): void {
  const length = codePointLength(title);
  if (length > LIMITS.titleLength) {
    violations.add(field, `${field} must be at most ${LIMITS.titleLength} characters, got ${length}`);
  }
  if (!title.isWellFormed()) violations.add(field, `${field} must not contain unpaired surrogates`);
}

/** Tags: at most LIMITS.tags, each 1..LIMITS.tagLength code points, no control characters, distinct. */
export function checkTags(violations: Violations, tags: readonly string[], field = "tags"): void {
  if (tags.length > LIMITS.tags) {
    violations.add(field, `${field} must have at most ${LIMITS.tags} entries, got ${tags.length}`);
    return;
  }
  const seen = new Map<string, number>();
  const list = field;
  tags.forEach((tag, i) => {
    const field = `${list}[${i}]`;
    const length = codePointLength(tag);
    if (length === 0) violations.add(field, `${field} must not be empty`);
    else if (length > LIMITS.tagLength) {
      violations.add(field, `${field} must be at most ${LIMITS.tagLength} characters, got ${length}`);
    }
    if (hasControlCharacter(tag)) violations.add(field, `${field} must not contain control characters`);
    if (!tag.isWellFormed()) violations.add(field, `${field} must not contain unpaired surrogates`);
    const first = seen.get(tag);
    if (first !== undefined) violations.add(field, `${field} duplicates ${list}[${first}]`);
    else seen.set(tag, i);
  });
}

/**
 * Capabilities (of a session or an agent): at most LIMITS.capabilities with distinct ids
 * of LIMITS.capabilityIdLength code points of [A-Za-z0-9_.:-], each config at most
 * LIMITS.capabilityConfigBytes as compact JSON.
 */
export function checkCapabilities(violations: Violations, capabilities: readonly CapabilityConfig[], list = "capabilities"): void {
  if (capabilities.length > LIMITS.capabilities) {
    violations.add(list, `${list} must have at most ${LIMITS.capabilities} entries, got ${capabilities.length}`);
    return;
  }
  const seen = new Map<string, number>();
  capabilities.forEach((capability, i) => {
    const field = `${list}[${i}].capability_id`;
    const id = capability.capabilityId;
    // Counted in code points like every other limit: `id.length` would count an emoji twice.
    const length = codePointLength(id);
    if (id === "") violations.add(field, `${field} is required`);
    else if (length > LIMITS.capabilityIdLength) {
      violations.add(field, `${field} must be at most ${LIMITS.capabilityIdLength} characters, got ${length}`);
    } else if (!CAPABILITY_ID.test(id)) {
      violations.add(field, `${field} must contain only letters, digits, "_", ".", ":" and "-"`);
    } else {
      const first = seen.get(id);
      if (first !== undefined) violations.add(field, `${field} duplicates ${list}[${first}].capability_id`);
      else seen.set(id, i);
    }
    if (capability.config !== undefined) {
      checkStruct(violations, capability.config, `${list}[${i}].config`, { bytes: LIMITS.capabilityConfigBytes, text: "64 KiB" });
    }
  });
}

/**
 * A Struct value (a capability config, a tool call's arguments or a tool's output): no NaN
 * or Infinity, at most LIMITS.capabilityConfigDepth levels deep, and at most `max` bytes as
 * compact JSON when given.
 */
export function checkStruct(violations: Violations, value: object, field: string, max?: { bytes: number; text: string }): void {
  // A binary client can put NaN or ±Infinity in a Struct; JSON cannot hold them, so the
  // store would keep null instead and a later read would differ from what was accepted.
  let nonFinite = false;
  const json = JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v === "number" && !Number.isFinite(v)) nonFinite = true;
    return v;
  });
  const bytes = Buffer.byteLength(json);
  if (max && bytes > max.bytes) violations.add(field, `${field} must be at most ${max.text} as compact JSON, got ${bytes} bytes`);
  if (nonFinite) violations.add(field, `${field} must not contain NaN or Infinity`);
  const depth = nestingDepth(value);
  if (depth > LIMITS.capabilityConfigDepth) {
    violations.add(field, `${field} must nest at most ${LIMITS.capabilityConfigDepth} levels of objects and arrays, got ${depth}`);
  }
}

/** Levels of objects and arrays, the value itself counting as one; iterative, so no input can overflow the stack. */
function nestingDepth(root: unknown): number {
  let max = 0;
  const stack: Array<[unknown, number]> = [[root, 1]];
  while (stack.length > 0) {
    const [value, depth] = stack.pop()!;
    if (value === null || typeof value !== "object") continue;
    max = Math.max(max, depth);
    for (const child of Array.isArray(value) ? value : Object.values(value)) stack.push([child, depth + 1]);
  }
  return max;
}
