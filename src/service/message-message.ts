import { create, type JsonObject, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { MessageRole, MessageSchema, type ContentPart, type ContentPartSchema, type Message } from "../../gen/sessions/v1/message_pb.js";
import type { ContentPartRecord, MessageRecord, MessageRole as StoredRole } from "../store/store.js";

const ROLE_OF: Record<StoredRole, MessageRole> = {
  user: MessageRole.USER,
  assistant: MessageRole.ASSISTANT,
  system: MessageRole.SYSTEM,
  tool: MessageRole.TOOL,
};

/** The stored role of each API role; undefined for UNSPECIFIED and unknown numbers. */
export function storedRole(role: MessageRole): StoredRole | undefined {
  return (Object.keys(ROLE_OF) as StoredRole[]).find((r) => ROLE_OF[r] === role);
}

/** The stored form of a part whose kind is set (validation refuses the others). */
export function contentPartRecord(part: ContentPart): ContentPartRecord {
  switch (part.part.case) {
    case "text":
      return { kind: "text", text: part.part.value };
    case "toolCall":
      return { kind: "tool_call", id: part.part.value.id, name: part.part.value.name, arguments: part.part.value.arguments };
    case "toolResult":
      return {
        kind: "tool_result",
        toolCallId: part.part.value.toolCallId,
        output: part.part.value.output,
        isError: part.part.value.isError,
      };
    case undefined:
      throw new Error("a content part without a kind");
  }
}

function contentPartInit(part: ContentPartRecord): MessageInitShape<typeof ContentPartSchema> {
  switch (part.kind) {
    case "text":
      return { part: { case: "text" as const, value: part.text } };
    case "tool_call":
      return { part: { case: "toolCall" as const, value: { id: part.id, name: part.name, arguments: part.arguments as JsonObject | undefined } } };
    case "tool_result":
      return {
        part: {
          case: "toolResult" as const,
          value: { toolCallId: part.toolCallId, output: part.output as JsonObject | undefined, isError: part.isError },
        },
      };
  }
}

/** The API's view of a stored message. */
export function messageMessage(record: MessageRecord): Message {
  return create(MessageSchema, {
    id: record.id,
    sessionId: record.sessionId,
    role: ROLE_OF[record.role],
    content: record.content.map(contentPartInit),
    modelId: record.modelId,
    usage: record.usage && { ...record.usage },
    createdAt: timestampFromMs(record.createdAt),
    sequence: BigInt(record.sequence),
  });
}
