import { create, toBinary, toJson, toJsonString, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import {
  AddMessageRequestSchema, CreateSessionRequestSchema, GetSessionRequestSchema, ListMessagesRequestSchema,
  ListSessionEventsRequestSchema, ListSessionsRequestSchema, ListSessionsResponseSchema, RecordUsageRequestSchema,
  SessionService,
} from "../gen/sessions/v1/session_service_pb.js";
import { SessionSchema } from "../gen/sessions/v1/session_pb.js";
import { MessageRole, MessageSchema } from "../gen/sessions/v1/message_pb.js";

/**
 * The exact requests the load tools send, built from the generated messages with
 * @bufbuild/protobuf, so that each protocol carries the same request in its own encoding:
 * REST JSON with proto field names, Connect JSON, Connect binary, and the 5-byte length
 * prefixed frames of gRPC and gRPC-Web.
 */

export const PROTOCOLS = ["rest", "connect-json", "connect-proto", "grpc", "grpc-web"] as const;
export type Protocol = (typeof PROTOCOLS)[number];

export const OPERATIONS = [
  "create", "get", "list-first", "list-deep", "record-usage",
  "add-message", "events-first", "events-deep", "messages-first", "messages-deep",
] as const;
export type Operation = (typeof OPERATIONS)[number];

export const OPERATION_NAMES: Record<Operation, string> = {
  create: "CreateSession",
  get: "GetSession",
  "list-first": "ListSessions page 1",
  "list-deep": "ListSessions deep page",
  "record-usage": "RecordUsage",
  "add-message": "AddMessage",
  "events-first": "ListSessionEvents page 1",
  "events-deep": "ListSessionEvents deep page",
  "messages-first": "ListMessages page 1",
  "messages-deep": "ListMessages deep page",
};

/** The operations that read the long conversation (see conversation.ts): measured over REST and gRPC only. */
export const CONVERSATION_READS = ["events-first", "events-deep", "messages-first", "messages-deep"] as const satisfies readonly Operation[];

/** What the requests refer to. */
export interface Targets {
  readonly agentId: string;
  /** The session read by GetSession and updated by RecordUsage. */
  readonly sessionId: string;
  /** A page token positioned deep in the table; empty until the creates are done. */
  readonly deepPageToken: string;
  readonly pageSize: number;
  /** The session AddMessage appends to (one request per session; see buildRequest). */
  readonly messageSessionId?: string;
  /** The long conversation the page reads go through, and where its deep pages start. */
  readonly conversation?: {
    readonly sessionId: string;
    /** ListSessionEvents deep page: after_sequence. */
    readonly eventsAfterSequence: number;
    /** ListMessages deep page: the page token that opens it, after this many messages. */
    readonly messagesDeepPageToken: string;
    readonly messagesDeep: number;
  };
}

/** One HTTP request, ready for a load tool. */
export interface HttpRequest {
  readonly method: "GET" | "POST";
  /** Path and query. */
  readonly path: string;
  readonly headers: Record<string, string>;
  /** Absent for GET. */
  readonly body: Uint8Array | undefined;
  /** How to decode a successful answer, for the single checked request. */
  readonly responseSchema: DescMessage;
}

/** Tokens each RecordUsage adds: the check after a run divides the growth by these. */
export const USAGE_DELTA = { inputTokens: 1n, outputTokens: 2n } as const;

/** The usage of each appended assistant message: the check after a run divides the growth by these. */
export const MESSAGE_USAGE = { inputTokens: 3n, outputTokens: 5n, cacheReadTokens: 0n, cacheCreationTokens: 0n } as const;

/** What AddMessage appends: an assistant reply of a typical short length, with its model and usage. */
export function benchMessage() {
  return create(MessageSchema, {
    role: MessageRole.ASSISTANT,
    content: [{ part: { case: "text", value: "I reviewed the pull request: two comments on error handling, otherwise it looks good." } }],
    modelId: "model_0123456789abcdef0123456789abcdef",
    usage: MESSAGE_USAGE,
  });
}

/** The request message and RPC of each operation. */
function rpcOf(operation: Operation, t: Targets) {
  switch (operation) {
    case "create":
      return {
        method: SessionService.method.createSession,
        schema: CreateSessionRequestSchema as DescMessage,
        message: create(CreateSessionRequestSchema, { agentId: t.agentId, title: "bench", tags: ["bench"] }) as MessageShape<DescMessage>,
      };
    case "get":
      return {
        method: SessionService.method.getSession,
        schema: GetSessionRequestSchema as DescMessage,
        message: create(GetSessionRequestSchema, { id: t.sessionId }) as MessageShape<DescMessage>,
      };
    case "list-first":
    case "list-deep":
      return {
        method: SessionService.method.listSessions,
        schema: ListSessionsRequestSchema as DescMessage,
        message: create(ListSessionsRequestSchema, {
          pageSize: t.pageSize,
          pageToken: operation === "list-deep" ? t.deepPageToken : "",
        }) as MessageShape<DescMessage>,
      };
    case "record-usage":
      return {
        method: SessionService.method.recordUsage,
        schema: RecordUsageRequestSchema as DescMessage,
        message: create(RecordUsageRequestSchema, { id: t.sessionId, ...USAGE_DELTA }) as MessageShape<DescMessage>,
      };
    case "add-message":
      return {
        method: SessionService.method.addMessage,
        schema: AddMessageRequestSchema as DescMessage,
        message: create(AddMessageRequestSchema, { sessionId: t.messageSessionId ?? t.sessionId, message: benchMessage() }) as MessageShape<DescMessage>,
      };
    case "events-first":
    case "events-deep":
      return {
        method: SessionService.method.listSessionEvents,
        schema: ListSessionEventsRequestSchema as DescMessage,
        message: create(ListSessionEventsRequestSchema, {
          sessionId: conversationOf(t).sessionId,
          afterSequence: operation === "events-deep" ? BigInt(conversationOf(t).eventsAfterSequence) : 0n,
          pageSize: t.pageSize,
        }) as MessageShape<DescMessage>,
      };
    case "messages-first":
    case "messages-deep":
      return {
        method: SessionService.method.listMessages,
        schema: ListMessagesRequestSchema as DescMessage,
        message: create(ListMessagesRequestSchema, {
          sessionId: conversationOf(t).sessionId,
          pageSize: t.pageSize,
          pageToken: operation === "messages-deep" ? conversationOf(t).messagesDeepPageToken : "",
        }) as MessageShape<DescMessage>,
      };
  }
}

function conversationOf(t: Targets): NonNullable<Targets["conversation"]> {
  if (!t.conversation) throw new Error("the long conversation is not known yet");
  return t.conversation;
}

export function buildRequest(protocol: Protocol, operation: Operation, targets: Targets): HttpRequest {
  if (operation === "list-deep" && targets.deepPageToken === "") throw new Error("the deep page token is not known yet");
  const rpc = rpcOf(operation, targets);
  const responseSchema = rpc.method.output;
  if (protocol === "rest") return restRequest(operation, targets, rpc.schema, rpc.message, responseSchema);

  const path = `/${SessionService.typeName}/${rpc.method.name}`;
  const binary = toBinary(rpc.schema, rpc.message);
  switch (protocol) {
    case "connect-json":
      return {
        method: "POST", path, responseSchema,
        headers: { "content-type": "application/json", "connect-protocol-version": "1" },
        body: new TextEncoder().encode(toJsonString(rpc.schema, rpc.message)),
      };
    case "connect-proto":
      return {
        method: "POST", path, responseSchema,
        headers: { "content-type": "application/proto", "connect-protocol-version": "1" },
        body: binary,
      };
    case "grpc":
      return {
        method: "POST", path, responseSchema,
        headers: { "content-type": "application/grpc", te: "trailers" },
        body: frame(binary),
      };
    case "grpc-web":
      return {
        method: "POST", path, responseSchema,
        headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" },
        body: frame(binary),
      };
  }
}

/** The google.api.http routes of session_service.proto. */
function restRequest(
  operation: Operation,
  t: Targets,
  schema: DescMessage,
  message: MessageShape<DescMessage>,
  responseSchema: DescMessage,
): HttpRequest {
  const json = { "content-type": "application/json" };
  // The body is the request minus the fields the path carries (body: "*").
  const bodyWithout = (field?: string) => {
    const object = toJson(schema, message, { useProtoFieldName: true }) as Record<string, unknown>;
    if (field) delete object[field];
    return new TextEncoder().encode(JSON.stringify(object));
  };
  switch (operation) {
    case "create":
      return { method: "POST", path: "/v1/sessions", headers: json, body: bodyWithout(), responseSchema };
    case "get":
      return { method: "GET", path: `/v1/sessions/${t.sessionId}`, headers: {}, body: undefined, responseSchema };
    case "list-first":
      return { method: "GET", path: `/v1/sessions?page_size=${t.pageSize}`, headers: {}, body: undefined, responseSchema };
    case "list-deep":
      return {
        method: "GET",
        path: `/v1/sessions?page_size=${t.pageSize}&page_token=${encodeURIComponent(t.deepPageToken)}`,
        headers: {}, body: undefined, responseSchema,
      };
    case "record-usage":
      return { method: "POST", path: `/v1/sessions/${t.sessionId}:recordUsage`, headers: json, body: bodyWithout("id"), responseSchema };
    case "add-message": {
      // body: "message": the body is the Message itself.
      const body = new TextEncoder().encode(JSON.stringify(toJson(MessageSchema, benchMessage(), { useProtoFieldName: true })));
      return { method: "POST", path: `/v1/sessions/${t.messageSessionId ?? t.sessionId}/messages`, headers: json, body, responseSchema };
    }
    case "events-first":
    case "events-deep": {
      const c = conversationOf(t);
      const after = operation === "events-deep" ? `&after_sequence=${c.eventsAfterSequence}` : "";
      return { method: "GET", path: `/v1/sessions/${c.sessionId}/events?page_size=${t.pageSize}${after}`, headers: {}, body: undefined, responseSchema };
    }
    case "messages-first":
    case "messages-deep": {
      const c = conversationOf(t);
      const token = operation === "messages-deep" ? `&page_token=${encodeURIComponent(c.messagesDeepPageToken)}` : "";
      return { method: "GET", path: `/v1/sessions/${c.sessionId}/messages?page_size=${t.pageSize}${token}`, headers: {}, body: undefined, responseSchema };
    }
  }
}

/** gRPC and gRPC-Web framing: flags byte 0 (uncompressed), 32-bit big-endian length, message. */
export function frame(message: Uint8Array): Uint8Array {
  const framed = new Uint8Array(5 + message.length);
  new DataView(framed.buffer).setUint32(1, message.length);
  framed.set(message, 5);
  return framed;
}

export { SessionSchema, ListSessionsResponseSchema };
