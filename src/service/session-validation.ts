import type {
  CreateSessionRequest, FailSessionRequest, RecordUsageRequest, UpdateSessionRequest,
} from "../../gen/sessions/v1/session_service_pb.js";
import { ID_PATTERN } from "../ids.js";
import { codePointLength, Violations } from "../validate.js";
import { checkCapabilities, checkId, checkTags, checkTitle } from "./field-rules.js";
import { checkRequestId } from "./idempotency.js";

/** Longest FailSession error kept, in code points. */
export const MAX_ERROR_LENGTH = 4096;

/** Throws invalid_argument listing every problem of the request, agent first. */
export function validateCreateSession(request: CreateSessionRequest): void {
  const violations = new Violations();
  checkId(violations, "agent", request.agentId, "agent_id");
  if (request.modelId !== "" && !ID_PATTERN.model.test(request.modelId)) {
    violations.add("model_id", 'model_id must be "model_" followed by 32 lowercase hex digits, or empty');
  }
  checkTitle(violations, request.title);
  checkTags(violations, request.tags);
  checkCapabilities(violations, request.capabilities);
  checkRequestId(violations, request.requestId);
  violations.throwIfAny();
}

/** Throws invalid_argument unless the id has the form of a session id. */
export function validateSessionId(id: string, field = "id"): void {
  const violations = new Violations();
  checkId(violations, "session", id, field);
  violations.throwIfAny();
}

/** The fields an update may name, and checks of their new values. */
export const UPDATABLE_SESSION_FIELDS = ["title", "tags"] as const;

/** Throws invalid_argument for the new values of the fields an update sets. */
export function validateSessionUpdate(request: UpdateSessionRequest, fields: ReadonlySet<string>): void {
  const violations = new Violations();
  checkId(violations, "session", request.session?.id ?? "", "session.id");
  if (fields.has("title")) checkTitle(violations, request.session!.title, "session.title");
  if (fields.has("tags")) checkTags(violations, request.session!.tags, "session.tags");
  violations.throwIfAny();
}

/** Throws invalid_argument for a FailSession without a usable error message. */
export function validateFailSession(request: FailSessionRequest): void {
  const violations = new Violations();
  checkId(violations, "session", request.id, "id");
  const length = codePointLength(request.error);
  if (length === 0) violations.add("error", "error is required: say why the session failed");
  else if (length > MAX_ERROR_LENGTH) violations.add("error", `error must be at most ${MAX_ERROR_LENGTH} characters, got ${length}`);
  if (!request.error.isWellFormed()) violations.add("error", "error must not contain unpaired surrogates");
  violations.throwIfAny();
}

/** Throws invalid_argument for negative deltas or malformed previews. */
export function validateRecordUsage(request: RecordUsageRequest): void {
  const violations = new Violations();
  checkId(violations, "session", request.id, "id");
  for (const field of ["inputTokens", "outputTokens", "cacheReadTokens", "cacheCreationTokens"] as const) {
    if (request[field] < 0n) {
      const name = field.replace(/[A-Z]/g, (c) => "_" + c.toLowerCase());
      violations.add(name, `${name} must be at least 0, got ${request[field]}`);
    }
  }
  if (!request.promptPreview.isWellFormed()) violations.add("prompt_preview", "prompt_preview must not contain unpaired surrogates");
  if (!request.responsePreview.isWellFormed()) violations.add("response_preview", "response_preview must not contain unpaired surrogates");
  violations.throwIfAny();
}

