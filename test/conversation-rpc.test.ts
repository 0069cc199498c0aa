import * as grpc from "@grpc/grpc-js";
import { createRegistry, fromBinary, toJson } from "@bufbuild/protobuf";
import { StatusSchema } from "../gen/google/rpc/status_pb.js";
import { BadRequestSchema } from "../gen/google/rpc/error_details_pb.js";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SessionService } from "../gen/sessions/v1/session_service_pb.js";
import { MessageRole } from "../gen/sessions/v1/message_pb.js";
import { SessionEventType } from "../gen/sessions/v1/session_event_pb.js";
import { GrpcJsSessionService } from "./helpers/grpc-js.js";
import { RPC_TRANSPORTS } from "./helpers/rpc-transports.js";
import { AGENT_ID, startTestServer, type TestServer } from "./helpers/server.js";

/**
 * AddMessage, GetMessage, ListMessages and ListSessionEvents over every RPC protocol and
 * codec (connect-node clients), and over gRPC with a grpc-js client built from the .proto:
 * the same messages, events and errors as over REST.
 */

const MODEL = "model_fedcba9876543210fedcba9876543210";
const text = (value: string) => ({ part: { case: "text" as const, value } });

async function failure(call: Promise<unknown>): Promise<ConnectError> {
  return call.then(
    (response) => {
      throw new Error(`expected a failure, got ${String(response)}`);
    },
    (error: unknown) => ConnectError.from(error),
  );
}

let server: TestServer;
let capped: TestServer;
beforeAll(async () => {
  [server, capped] = await Promise.all([startTestServer(), startTestServer({ maxSessionMessages: 2 })]);
});
afterAll(async () => {
  await Promise.all([server?.close(), capped?.close()]);
});

describe.each(RPC_TRANSPORTS)("the conversation over $name", (transport) => {
  let client: Client<typeof SessionService>;
  let cappedClient: Client<typeof SessionService>;
  beforeAll(() => {
    client = createClient(SessionService, transport.create(server.url));
    cappedClient = createClient(SessionService, transport.create(capped.url));
  });

  it("adds, gets and lists messages, and lists the events of every change", async () => {
    const session = await client.createSession({ agentId: AGENT_ID });
    await client.startSession({ id: session.id });
    const prompt = await client.addMessage({ sessionId: session.id, message: { role: MessageRole.USER, content: [text("Review PR 42")] } });
    expect(prompt.id).toMatch(/^message_[0-9a-f]{32}$/);
    expect([prompt.sessionId, prompt.role, prompt.sequence, prompt.modelId, prompt.usage]).toEqual([session.id, MessageRole.USER, 3n, "", undefined]);
    const reply = await client.addMessage({
      sessionId: session.id,
      message: {
        role: MessageRole.ASSISTANT,
        content: [text("Looking."), { part: { case: "toolCall", value: { id: "call_1", name: "search", arguments: { q: "PR 42", n: [1, null, true] } } } }],
        modelId: MODEL,
        usage: { inputTokens: 100n, outputTokens: 20n },
      },
    });
    expect(reply.content[1]!.part).toEqual({
      case: "toolCall",
      value: expect.objectContaining({ id: "call_1", name: "search", arguments: { q: "PR 42", n: [1, null, true] } }),
    });
    expect(reply.usage).toEqual(expect.objectContaining({ inputTokens: 100n, outputTokens: 20n, cacheReadTokens: 0n, cacheCreationTokens: 0n }));
    expect(await client.getMessage({ sessionId: session.id, id: reply.id })).toEqual(reply);

    const first = await client.listMessages({ sessionId: session.id, pageSize: 1 });
    expect(first.messages).toEqual([prompt]);
    const second = await client.listMessages({ sessionId: session.id, pageSize: 1, pageToken: first.nextPageToken });
    expect([second.messages, second.nextPageToken]).toEqual([[reply], ""]);

    await client.recordUsage({ id: session.id, cacheReadTokens: 4n });
    const completed = await client.completeSession({ id: session.id });
    const { events, nextPageToken } = await client.listSessionEvents({ sessionId: session.id });
    expect(nextPageToken).toBe("");
    expect(events.map((e) => [e.sequence, e.type, e.change.case])).toEqual([
      [1n, SessionEventType.CREATED, undefined],
      [2n, SessionEventType.STARTED, undefined],
      [3n, SessionEventType.MESSAGE_ADDED, "message"],
      [4n, SessionEventType.MESSAGE_ADDED, "message"],
      [5n, SessionEventType.USAGE_RECORDED, "usage"],
      [6n, SessionEventType.COMPLETED, undefined],
    ]);
    expect(events[2]!.change.value).toEqual(prompt);
    expect(events[3]!.change.value).toEqual(reply);
    expect(events[4]!.change.value).toEqual(expect.objectContaining({ inputTokens: 0n, cacheReadTokens: 4n }));
    expect(events[5]!.session).toEqual(completed);
    expect(events[3]!.session?.responsePreview).toBe("Looking.");
    expect(events[3]!.session?.promptPreview).toBe("Review PR 42");
    const after = await client.listSessionEvents({ sessionId: session.id, afterSequence: 4n, pageSize: 1 });
    expect(after.events.map((e) => e.sequence)).toEqual([5n]);
    const rest = await client.listSessionEvents({ sessionId: session.id, afterSequence: 4n, pageToken: after.nextPageToken });
    expect(rest.events.map((e) => e.sequence)).toEqual([6n]);
  });

  it("answers the same errors as REST: invalid_argument, failed_precondition, not_found, already_exists, resource_exhausted", async () => {
    const session = await client.createSession({ agentId: AGENT_ID });
    const invalid = await failure(client.addMessage({ sessionId: session.id, message: { role: MessageRole.TOOL, content: [{ part: { case: undefined } }], usage: {} } }));
    expect([invalid.code, invalid.rawMessage]).toEqual([
      Code.InvalidArgument,
      "message.content[0] must set exactly one of text, tool_call or tool_result; message.usage is only allowed on MESSAGE_ROLE_ASSISTANT messages",
    ]);
    if (transport.codec === "binary") {
      // JSON cannot carry NaN; a binary client can, in a Struct.
      const nan = await failure(
        client.addMessage({
          sessionId: session.id,
          message: { role: MessageRole.ASSISTANT, content: [{ part: { case: "toolCall", value: { id: "c", name: "n", arguments: { x: NaN } } } }] },
        }),
      );
      expect([nan.code, nan.rawMessage]).toEqual([Code.InvalidArgument, "message.content[0].tool_call.arguments must not contain NaN or Infinity"]);
    }
    const missing = await failure(client.addMessage({ sessionId: session.id }));
    expect([missing.code, missing.rawMessage]).toEqual([Code.InvalidArgument, "message is required"]);
    const unknown = "session_" + "0".repeat(32);
    // Thunks, called one at a time: a call made before the previous one was awaited would
    // reject with nobody listening yet.
    for (const call of [
      () => client.addMessage({ sessionId: unknown, message: { role: MessageRole.USER, content: [text("x")] } }),
      () => client.listMessages({ sessionId: unknown }),
      () => client.listSessionEvents({ sessionId: unknown }),
      () => client.getMessage({ sessionId: unknown, id: "message_" + "0".repeat(32) }),
    ]) {
      const error = await failure(call());
      expect([error.code, error.rawMessage]).toEqual([Code.NotFound, `session ${unknown} not found`]);
    }
    const requestId = crypto.randomUUID();
    const once = await client.addMessage({ sessionId: session.id, requestId, message: { role: MessageRole.USER, content: [text("once")] } });
    expect(await client.addMessage({ sessionId: session.id, requestId, message: { role: MessageRole.USER, content: [text("once")] } })).toEqual(once);
    const reused = await failure(client.addMessage({ sessionId: session.id, requestId, message: { role: MessageRole.USER, content: [text("twice")] } }));
    expect(reused.code).toBe(Code.AlreadyExists);
    await client.cancelSession({ id: session.id });
    const finished = await failure(client.addMessage({ sessionId: session.id, message: { role: MessageRole.USER, content: [text("late")] } }));
    expect([finished.code, finished.rawMessage]).toEqual([
      Code.FailedPrecondition,
      `cannot add a message to session ${session.id}: it is SESSION_STATUS_CANCELLED, and only a session that is SESSION_STATUS_PENDING or SESSION_STATUS_RUNNING takes messages`,
    ]);
    const afterSequence = await failure(client.listSessionEvents({ sessionId: session.id, afterSequence: -5n }));
    expect([afterSequence.code, afterSequence.rawMessage]).toEqual([Code.InvalidArgument, "after_sequence must be at least 0, got -5"]);

    const full = await cappedClient.createSession({ agentId: AGENT_ID });
    for (let i = 0; i < 2; i++) await cappedClient.addMessage({ sessionId: full.id, message: { role: MessageRole.USER, content: [text("x")] } });
    const cap = await failure(cappedClient.addMessage({ sessionId: full.id, message: { role: MessageRole.USER, content: [text("x")] } }));
    expect([cap.code, cap.rawMessage]).toEqual([
      Code.ResourceExhausted,
      `session ${full.id} has reached its cap of 2 messages; continue the conversation in a new session`,
    ]);
  });
});

describe("the conversation over gRPC with a grpc-js client loaded from the .proto", () => {
  let client: grpc.Client;
  beforeAll(() => {
    client = new GrpcJsSessionService(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
  });
  afterAll(() => client?.close());

  type Unary = (request: object, callback: (error: grpc.ServiceError | null, response: any) => void) => void;
  const call = (method: string, request: object): Promise<any> =>
    new Promise((resolve, reject) => {
      (client as unknown as Record<string, Unary>)[method]!.call(client, request, (error, response) => (error ? reject(error) : resolve(response)));
    });

  it("adds a message with a Struct, reads it back and lists the events, as a third-party client encodes them", async () => {
    const session = await call("CreateSession", { agent_id: AGENT_ID });
    const added = await call("AddMessage", {
      session_id: session.id,
      message: {
        role: "MESSAGE_ROLE_ASSISTANT",
        content: [{ text: "hi" }, { tool_call: { id: "c1", name: "search", arguments: { fields: { q: { stringValue: "x" } } } } }],
        model_id: MODEL,
        usage: { input_tokens: "7" },
      },
    });
    expect(added).toStrictEqual({
      id: expect.stringMatching(/^message_[0-9a-f]{32}$/),
      session_id: session.id,
      role: "MESSAGE_ROLE_ASSISTANT",
      content: [
        { text: "hi", part: "text" },
        { tool_call: { id: "c1", name: "search", arguments: { fields: { q: { stringValue: "x", kind: "stringValue" } } } }, part: "tool_call" },
      ],
      model_id: MODEL,
      usage: { input_tokens: "7", output_tokens: "0", cache_read_tokens: "0", cache_creation_tokens: "0" },
      created_at: expect.objectContaining({ seconds: expect.any(String) }),
      sequence: "2",
    });
    expect(await call("GetMessage", { session_id: session.id, id: added.id })).toStrictEqual(added);
    expect((await call("ListMessages", { session_id: session.id })).messages).toStrictEqual([added]);
    const { events } = await call("ListSessionEvents", { session_id: session.id, after_sequence: "0" });
    expect(events.map((e: any) => [e.sequence, e.type, e.change])).toEqual([
      ["1", "SESSION_EVENT_TYPE_CREATED", undefined],
      ["2", "SESSION_EVENT_TYPE_MESSAGE_ADDED", "message"],
    ]);
    expect(events[1].message).toStrictEqual(added);
    expect(events[1].session.usage.input_tokens).toBe("7");
    expect(events[1].session.status).toBe("SESSION_STATUS_PENDING");
  });

  it("answers invalid_argument with the field violations in the status details", async () => {
    const session = await call("CreateSession", { agent_id: AGENT_ID });
    const error: grpc.ServiceError = await call("AddMessage", { session_id: session.id, message: { role: "MESSAGE_ROLE_USER", content: [] } }).then(
      () => {
        throw new Error("expected a failure");
      },
      (e: grpc.ServiceError) => e,
    );
    expect(error.code).toBe(grpc.status.INVALID_ARGUMENT);
    const status = fromBinary(StatusSchema, error.metadata.get("grpc-status-details-bin")[0] as Buffer);
    expect(toJson(StatusSchema, status, { registry: createRegistry(BadRequestSchema) })).toEqual({
      code: 3,
      message: "message.content is required: at least one part",
      details: [
        {
          "@type": "type.googleapis.com/google.rpc.BadRequest",
          fieldViolations: [{ field: "message.content", description: "message.content is required: at least one part" }],
        },
      ],
    });
  });
});
