import { toJson } from "@bufbuild/protobuf";
import { ContentPartSchema, MessageRole, type ContentPart } from "../../gen/sessions/v1/message_pb.js";
import type { AddMessageRequest } from "../../gen/sessions/v1/session_service_pb.js";
import type { ContentPartRecord, MessageRole as StoredRole, UsageRecord } from "../store/store.js";
import { ID_PATTERN } from "../ids.js";
import { codePointLength, hasControlCharacter, Violations } from "../validate.js";
import { checkId, checkStruct } from "./field-rules.js";
import { checkRequestId } from "./idempotency.js";
import { contentPartRecord, storedRole } from "./message-message.js";

/** The limits of a message; message.proto's comments and the README state the same. */
export const MESSAGE_LIMITS = {
  contentParts: 64,
  /** Of the whole content as compact JSON (its proto3 JSON form with proto field names, defaults left out). */
  contentBytes: 256 * 1024,
  toolCallIdLength: 128,
  toolNameLength: 128,
} as const;

/** What of an AddMessage request the service stores, once valid. */
export interface ValidMessage {
  readonly role: StoredRole;
  readonly content: ContentPartRecord[];
  readonly modelId: string;
  readonly usage: UsageRecord | undefined;
}

/**
 * Throws invalid_argument listing every problem of an AddMessage request. Output-only
 * fields of the message (id, session_id, created_at, sequence) are ignored, as AIP-203 asks.
 */
export function validateAddMessage(request: AddMessageRequest): ValidMessage {
  const violations = new Violations();
  checkId(violations, "session", request.sessionId, "session_id");
  checkRequestId(violations, request.requestId);
  const message = request.message;
  if (message === undefined) {
    violations.add("message", "message is required");
    violations.throwIfAny();
    throw new Error("unreachable");
  }
  const role = storedRole(message.role);
  if (message.role === MessageRole.UNSPECIFIED) {
    violations.add("message.role", "message.role is required: one of MESSAGE_ROLE_USER, MESSAGE_ROLE_ASSISTANT, MESSAGE_ROLE_SYSTEM or MESSAGE_ROLE_TOOL");
  } else if (role === undefined) {
    violations.add("message.role", `message.role must be a message role, got ${message.role}`);
  }

  const parts = message.content;
  if (parts.length === 0) violations.add("message.content", "message.content is required: at least one part");
  else if (parts.length > MESSAGE_LIMITS.contentParts) {
    violations.add("message.content", `message.content must have at most ${MESSAGE_LIMITS.contentParts} parts, got ${parts.length}`);
  }
  const content: ContentPartRecord[] = [];
  if (parts.length <= MESSAGE_LIMITS.contentParts) {
    parts.forEach((part, i) => {
      const field = `message.content[${i}]`;
      switch (part.part.case) {
        case undefined:
          violations.add(field, `${field} must set exactly one of text, tool_call or tool_result`);
          return;
        case "text":
          if (part.part.value === "") violations.add(`${field}.text`, `${field}.text must not be empty`);
          if (!part.part.value.isWellFormed()) violations.add(`${field}.text`, `${field}.text must not contain unpaired surrogates`);
          break;
        case "toolCall": {
          const call = part.part.value;
          checkToolText(violations, `${field}.tool_call.id`, call.id, MESSAGE_LIMITS.toolCallIdLength);
          checkToolText(violations, `${field}.tool_call.name`, call.name, MESSAGE_LIMITS.toolNameLength);
          if (call.arguments !== undefined) checkStruct(violations, call.arguments, `${field}.tool_call.arguments`);
          break;
        }
        case "toolResult": {
          const result = part.part.value;
          checkToolText(violations, `${field}.tool_result.tool_call_id`, result.toolCallId, MESSAGE_LIMITS.toolCallIdLength);
          if (result.output !== undefined) checkStruct(violations, result.output, `${field}.tool_result.output`);
          break;
        }
      }
      content.push(contentPartRecord(part));
    });
    const bytes = contentBytes(parts);
    if (bytes > MESSAGE_LIMITS.contentBytes) {
      violations.add("message.content", `message.content must be at most 256 KiB as compact JSON, got ${bytes} bytes`);
    }
  }

  const assistant = message.role === MessageRole.ASSISTANT;
  if (message.modelId !== "") {
    if (!ID_PATTERN.model.test(message.modelId)) {
      violations.add("message.model_id", 'message.model_id must be "model_" followed by 32 lowercase hex digits, or empty');
    } else if (!assistant && role !== undefined) {
      violations.add("message.model_id", "message.model_id is only allowed on MESSAGE_ROLE_ASSISTANT messages");
    }
  }
  if (message.usage !== undefined) {
    if (!assistant && role !== undefined) {
      violations.add("message.usage", "message.usage is only allowed on MESSAGE_ROLE_ASSISTANT messages");
    }
    for (const [key, name] of USAGE_FIELDS) {
      const value = message.usage[key];
      if (value < 0n) violations.add(`message.usage.${name}`, `message.usage.${name} must be at least 0, got ${value}`);
    }
  }
  violations.throwIfAny();
  return {
    role: role!,
    content,
    modelId: message.modelId,
    usage: message.usage && {
      inputTokens: message.usage.inputTokens,
      outputTokens: message.usage.outputTokens,
      cacheReadTokens: message.usage.cacheReadTokens,
      cacheCreationTokens: message.usage.cacheCreationTokens,
    },
  };
}

const USAGE_FIELDS = [
  ["inputTokens", "input_tokens"],
  ["outputTokens", "output_tokens"],
  ["cacheReadTokens", "cache_read_tokens"],
  ["cacheCreationTokens", "cache_creation_tokens"],
] as const;

/**
 * The content's size as compact JSON; 0 when it cannot be encoded (a NaN in a Struct, which
 * checkStruct reports).
 */
function contentBytes(parts: readonly ContentPart[]): number {
  try {
    return Buffer.byteLength(JSON.stringify(parts.map((part) => toJson(ContentPartSchema, part, { useProtoFieldName: true }))));
  } catch {
    return 0;
  }
}

/** A tool call id or name: 1..max code points, no control characters, well-formed. */
function checkToolText(violations: Violations, field: string, text: string, max: number): void {
  const length = codePointLength(text);
  if (length === 0) violations.add(field, `${field} is required`);
  else if (length > max) violations.add(field, `${field} must be at most ${max} characters, got ${length}`);
  if (hasControlCharacter(text)) violations.add(field, `${field} must not contain control characters`);
  if (!text.isWellFormed()) violations.add(field, `${field} must not contain unpaired surrogates`);
}
