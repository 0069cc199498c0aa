import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AGENT_ID, DEFAULT_ORG_ID, requestJson, startTestServer, type TestServer } from "./helpers/server.js";

/**
 * The conversation over REST: AddMessage (201 and Location), GetMessage, ListMessages,
 * ListSessionEvents, with exact bodies; the event log holding one event per change; the
 * previews; every limit's 400; a finished session's failed_precondition; the message cap's
 * 429; request_id retries; deletion.
 */

type Json = Record<string, any>;
const MESSAGE_ID = /^message_[0-9a-f]{32}$/;
const MODEL = "model_fedcba9876543210fedcba9876543210";
const ZERO_USAGE = { input_tokens: "0", output_tokens: "0", cache_read_tokens: "0", cache_creation_tokens: "0" };

describe("the conversation over REST", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server.close();
  });

  const url = (path: string) => `${server.url}${path}`;
  const createSession = async (body: Json = {}) => {
    const res = await requestJson(url("/v1/sessions"), { body: { agent_id: AGENT_ID, ...body } });
    expect(res.status).toBe(201);
    return res.body as Json;
  };
  const add = (sessionId: string, message: unknown, query = "") =>
    requestJson(url(`/v1/sessions/${sessionId}/messages${query}`), { body: message });
  const get = (path: string) => requestJson(url(path));

  it("adds a message: 201, Location of its GET, and the stored message", async () => {
    const session = await createSession();
    const res = await add(session.id, { role: "MESSAGE_ROLE_USER", content: [{ text: "Review PR 42" }] });
    expect(res.status).toBe(201);
    expect(res.body.id).toMatch(MESSAGE_ID);
    expect(res.headers.get("location")).toBe(`/v1/sessions/${session.id}/messages/${res.body.id}`);
    expect(res.body).toEqual({
      id: res.body.id,
      session_id: session.id,
      role: "MESSAGE_ROLE_USER",
      content: [{ text: "Review PR 42" }],
      model_id: "",
      created_at: res.body.created_at,
      sequence: "2",
    });
    const after = await get(`/v1/sessions/${session.id}`);
    expect(after.body.updated_at).toBe(res.body.created_at);
    expect(after.body.etag).toBe("session-v2");
    const again = await get(res.headers.get("location")!);
    expect(again.status).toBe(200);
    expect(again.body).toEqual(res.body);
  });

  it("stores every kind of part, model and usage of an assistant message as sent", async () => {
    const session = await createSession();
    const message = {
      role: "MESSAGE_ROLE_ASSISTANT",
      content: [
        { text: "Looking." },
        { tool_call: { id: "call_1", name: "search", arguments: { q: "PR 42", opts: { n: 3, all: [true, null, "x"] } } } },
      ],
      model_id: MODEL,
      usage: { input_tokens: "120", output_tokens: "30", cache_read_tokens: "7", cache_creation_tokens: "1" },
    };
    const res = await add(session.id, message);
    expect(res.status).toBe(201);
    expect(res.body).toEqual({ ...message, id: res.body.id, session_id: session.id, created_at: res.body.created_at, sequence: "2" });
    const tool = await add(session.id, {
      role: "MESSAGE_ROLE_TOOL",
      content: [{ tool_result: { tool_call_id: "call_1", output: { hits: [] }, is_error: true } }, { tool_result: { tool_call_id: "call_2" } }],
    });
    expect(tool.body.content).toEqual([
      { tool_result: { tool_call_id: "call_1", output: { hits: [] }, is_error: true } },
      { tool_result: { tool_call_id: "call_2", is_error: false } },
    ]);
    expect((await get(`/v1/sessions/${session.id}`)).body.usage).toEqual(message.usage);
  });

  it("lists messages oldest first in pages whose token belongs to the session", async () => {
    const session = await createSession();
    const added: Json[] = [];
    for (let i = 0; i < 5; i++) added.push((await add(session.id, { role: "MESSAGE_ROLE_USER", content: [{ text: `m${i}` }] })).body);
    const first = await get(`/v1/sessions/${session.id}/messages?page_size=2`);
    expect(first.status).toBe(200);
    expect(first.body.messages).toEqual(added.slice(0, 2));
    expect(first.body.next_page_token).not.toBe("");
    const second = await get(`/v1/sessions/${session.id}/messages?page_size=2&page_token=${first.body.next_page_token}`);
    expect(second.body.messages).toEqual(added.slice(2, 4));
    const last = await get(`/v1/sessions/${session.id}/messages?page_size=2&page_token=${second.body.next_page_token}`);
    expect(last.body).toEqual({ messages: added.slice(4), next_page_token: "" });
    expect((await get(`/v1/sessions/${session.id}/messages`)).body).toEqual({ messages: added, next_page_token: "" });

    const other = await createSession();
    const foreignToken = await get(`/v1/sessions/${other.id}/messages?page_token=${first.body.next_page_token}`);
    expect(foreignToken.status).toBe(400);
    expect(foreignToken.body.message).toBe("page_token was issued for different filters");
    const sessionsToken = (await get("/v1/sessions?page_size=1")).body.next_page_token;
    const wrongList = await get(`/v1/sessions/${session.id}/messages?page_token=${sessionsToken}`);
    expect([wrongList.status, wrongList.body.message]).toEqual([400, "page_token is malformed"]);
    const negative = await get(`/v1/sessions/${session.id}/messages?page_size=-1`);
    expect([negative.status, negative.body.message]).toEqual([400, "page_size must be at least 0, got -1"]);
    expect((await get(`/v1/sessions/${other.id}/messages`)).body).toEqual({ messages: [], next_page_token: "" });
  });

  it("logs one event per change, each with the session right after it and the change itself", async () => {
    const created = await createSession({ title: "t0" });
    const id = created.id;
    const updated = (await requestJson(url(`/v1/sessions/${id}`), { method: "PATCH", body: { title: "t1" } })).body;
    const started = (await requestJson(url(`/v1/sessions/${id}:start`), { method: "POST" })).body;
    const prompt = (await add(id, { role: "MESSAGE_ROLE_USER", content: [{ text: "hi" }] })).body;
    const afterPrompt = (await get(`/v1/sessions/${id}`)).body;
    const reply = (await add(id, { role: "MESSAGE_ROLE_ASSISTANT", content: [{ text: "hello" }], usage: { output_tokens: "5" } })).body;
    const afterReply = (await get(`/v1/sessions/${id}`)).body;
    const usage = (await requestJson(url(`/v1/sessions/${id}:recordUsage`), { method: "POST", body: { input_tokens: 2 } })).body;
    const completed = (await requestJson(url(`/v1/sessions/${id}:complete`), { method: "POST" })).body;

    const res = await get(`/v1/sessions/${id}/events`);
    expect(res.status).toBe(200);
    const event = (sequence: number, type: string, session: Json, change: Json = {}) => ({
      session_id: id,
      sequence: String(sequence),
      type: `SESSION_EVENT_TYPE_${type}`,
      created_at: session.updated_at,
      ...change,
      session,
    });
    expect(res.body).toEqual({
      events: [
        event(1, "CREATED", created),
        event(2, "UPDATED", updated),
        event(3, "STARTED", started),
        event(4, "MESSAGE_ADDED", afterPrompt, { message: prompt }),
        event(5, "MESSAGE_ADDED", afterReply, { message: reply }),
        event(6, "USAGE_RECORDED", usage, { usage: { ...ZERO_USAGE, input_tokens: "2" } }),
        event(7, "COMPLETED", completed),
      ],
      next_page_token: "",
    });
    expect([prompt.sequence, reply.sequence]).toEqual(["4", "5"]);
    expect(completed.usage).toEqual({ ...ZERO_USAGE, input_tokens: "2", output_tokens: "5" });

    // after_sequence and pages; a token goes with the after_sequence it was issued for.
    const page = await get(`/v1/sessions/${id}/events?after_sequence=3&page_size=2`);
    expect(page.body.events.map((e: Json) => e.sequence)).toEqual(["4", "5"]);
    const next = await get(`/v1/sessions/${id}/events?after_sequence=3&page_size=2&page_token=${page.body.next_page_token}`);
    expect(next.body.events.map((e: Json) => e.sequence)).toEqual(["6", "7"]);
    expect(next.body.next_page_token).toBe("");
    const moved = await get(`/v1/sessions/${id}/events?after_sequence=4&page_token=${page.body.next_page_token}`);
    expect([moved.status, moved.body.message]).toEqual([400, "page_token was issued for different filters"]);
    const messagesToken = (await get(`/v1/sessions/${id}/messages?page_size=1`)).body.next_page_token;
    const wrongList = await get(`/v1/sessions/${id}/events?page_token=${messagesToken}`);
    expect([wrongList.status, wrongList.body.message]).toEqual([400, "page_token was issued for different filters"]);
    expect((await get(`/v1/sessions/${id}/events?after_sequence=7`)).body).toEqual({ events: [], next_page_token: "" });
    expect((await get(`/v1/sessions/${id}/events?after_sequence=9223372036854775807`)).body).toEqual({ events: [], next_page_token: "" });
    const negative = await get(`/v1/sessions/${id}/events?after_sequence=-1`);
    expect([negative.status, negative.body.message, negative.body.details[0].field_violations[0].field]).toEqual([
      400, "after_sequence must be at least 0, got -1", "after_sequence",
    ]);
  });

  it("logs FAILED and CANCELLED moves, and a delete removes the log and the conversation", async () => {
    const failed = await createSession();
    await requestJson(url(`/v1/sessions/${failed.id}:start`), { method: "POST" });
    await requestJson(url(`/v1/sessions/${failed.id}:fail`), { method: "POST", body: { error: "boom" } });
    expect((await get(`/v1/sessions/${failed.id}/events`)).body.events.map((e: Json) => e.type)).toEqual([
      "SESSION_EVENT_TYPE_CREATED", "SESSION_EVENT_TYPE_STARTED", "SESSION_EVENT_TYPE_FAILED",
    ]);
    const cancelled = await createSession();
    const message = (await add(cancelled.id, { role: "MESSAGE_ROLE_SYSTEM", content: [{ text: "be brief" }] })).body;
    await requestJson(url(`/v1/sessions/${cancelled.id}:cancel`), { method: "POST" });
    expect((await get(`/v1/sessions/${cancelled.id}/events`)).body.events.map((e: Json) => e.type)).toEqual([
      "SESSION_EVENT_TYPE_CREATED", "SESSION_EVENT_TYPE_MESSAGE_ADDED", "SESSION_EVENT_TYPE_CANCELLED",
    ]);
    expect((await requestJson(url(`/v1/sessions/${cancelled.id}`), { method: "DELETE" })).status).toBe(200);
    for (const path of [`/v1/sessions/${cancelled.id}/events`, `/v1/sessions/${cancelled.id}/messages`, `/v1/sessions/${cancelled.id}/messages/${message.id}`]) {
      const res = await get(path);
      expect([path, res.status, res.body]).toEqual([path, 404, { code: 5, message: `session ${cancelled.id} not found`, details: [] }]);
    }
    const db = (server.store as unknown as { db: import("better-sqlite3").Database }).db;
    for (const table of ["messages", "session_events"]) {
      expect(db.prepare(`SELECT count(*) FROM ${table} WHERE session_id = ?`).pluck().get(cancelled.id)).toBe(0);
    }
  });

  it("answers not_found for a message that is not in the session, naming both", async () => {
    const session = await createSession();
    const other = await createSession();
    const message = (await add(other.id, { role: "MESSAGE_ROLE_USER", content: [{ text: "x" }] })).body;
    const res = await get(`/v1/sessions/${session.id}/messages/${message.id}`);
    expect([res.status, res.body]).toEqual([404, { code: 5, message: `message ${message.id} not found in session ${session.id}`, details: [] }]);
    const bad = await get(`/v1/sessions/${session.id}/messages/msg_1`);
    expect([bad.status, bad.body.message]).toEqual([400, 'Invalid message ID: id must be "message_" followed by 32 lowercase hex digits']);
  });

  it("sets prompt_preview once from the first user text and response_preview from the latest assistant text or RecordUsage", async () => {
    const session = await createSession();
    const previews = async () => {
      const body = (await get(`/v1/sessions/${session.id}`)).body;
      return [body.prompt_preview, body.response_preview];
    };
    await add(session.id, { role: "MESSAGE_ROLE_SYSTEM", content: [{ text: "system text is no prompt" }] });
    expect(await previews()).toEqual(["", ""]);
    await add(session.id, { role: "MESSAGE_ROLE_USER", content: [{ text: "a".repeat(150) }, { tool_result: { tool_call_id: "c" } }, { text: "😀".repeat(100) }] });
    // Text parts joined by a newline, cut at 200 code points without splitting a pair.
    expect(await previews()).toEqual(["a".repeat(150) + "\n" + "😀".repeat(49), ""]);
    await add(session.id, { role: "MESSAGE_ROLE_USER", content: [{ text: "second prompt" }] });
    await add(session.id, { role: "MESSAGE_ROLE_ASSISTANT", content: [{ text: "first answer" }] });
    expect(await previews()).toEqual(["a".repeat(150) + "\n" + "😀".repeat(49), "first answer"]);
    // An assistant message without text keeps the response preview.
    await add(session.id, { role: "MESSAGE_ROLE_ASSISTANT", content: [{ tool_call: { id: "c", name: "search" } }] });
    expect((await previews())[1]).toBe("first answer");
    // Whichever wrote last wins for response_preview; prompt_preview stays the first.
    await requestJson(url(`/v1/sessions/${session.id}:recordUsage`), { method: "POST", body: { prompt_preview: "other", response_preview: "from RecordUsage" } });
    expect((await previews())).toEqual(["a".repeat(150) + "\n" + "😀".repeat(49), "from RecordUsage"]);
    await add(session.id, { role: "MESSAGE_ROLE_ASSISTANT", content: [{ text: "later answer" }] });
    expect((await previews())[1]).toBe("later answer");

    const viaUsage = await createSession();
    await requestJson(url(`/v1/sessions/${viaUsage.id}:recordUsage`), { method: "POST", body: { prompt_preview: "reported prompt" } });
    await add(viaUsage.id, { role: "MESSAGE_ROLE_USER", content: [{ text: "typed prompt" }] });
    expect((await get(`/v1/sessions/${viaUsage.id}`)).body.prompt_preview).toBe("reported prompt");
  });

  it("refuses a message to a finished session with failed_precondition naming its status, storing nothing", async () => {
    for (const [finish, status] of [[":cancel", "SESSION_STATUS_CANCELLED"], [":complete", "SESSION_STATUS_COMPLETED"]] as const) {
      const session = await createSession();
      if (finish === ":complete") await requestJson(url(`/v1/sessions/${session.id}:start`), { method: "POST" });
      await requestJson(url(`/v1/sessions/${session.id}${finish}`), { method: "POST" });
      const res = await add(session.id, { role: "MESSAGE_ROLE_USER", content: [{ text: "too late" }] });
      expect([res.status, res.body]).toEqual([
        400,
        {
          code: 9,
          message: `cannot add a message to session ${session.id}: it is ${status}, and only a session that is SESSION_STATUS_PENDING or SESSION_STATUS_RUNNING takes messages`,
          details: [],
        },
      ]);
      expect((await get(`/v1/sessions/${session.id}/messages`)).body.messages).toEqual([]);
    }
  });

  it("answers a retry with the same request_id with the message first stored, and refuses the id for another message", async () => {
    const session = await createSession();
    const requestId = "0190f3a2-7c41-7b2e-9d4f-3a5b6c7d8e9f";
    const body = { role: "MESSAGE_ROLE_ASSISTANT", content: [{ text: "once" }], usage: { output_tokens: "10" } };
    const [first, second] = await Promise.all([add(session.id, body, `?request_id=${requestId}`), add(session.id, body, `?request_id=${requestId}`)]);
    expect(first.status).toBe(201);
    expect(second.status).toBe(201);
    expect(second.body).toEqual(first.body);
    expect(second.headers.get("location")).toBe(first.headers.get("location"));
    // Case does not make another id; the retry still answers after the session finished.
    await requestJson(url(`/v1/sessions/${session.id}:cancel`), { method: "POST" });
    const late = await add(session.id, body, `?request_id=${requestId.toUpperCase()}`);
    expect([late.status, late.body]).toEqual([201, first.body]);
    const other = await add(session.id, { ...body, content: [{ text: "twice" }] }, `?request_id=${requestId}`);
    expect([other.status, other.body]).toEqual([
      409,
      {
        code: 6,
        message: `request_id ${requestId} was already used within the last 24 hours by a different request to add a message; a retry must repeat the original request exactly, and a new message needs a new request_id`,
        details: [],
      },
    ]);
    const messages = (await get(`/v1/sessions/${session.id}/messages`)).body.messages;
    expect(messages).toEqual([first.body]);
    expect((await get(`/v1/sessions/${session.id}`)).body.usage.output_tokens).toBe("10");
    const bad = await add(session.id, body, "?request_id=not-a-uuid");
    expect([bad.status, bad.body.message]).toEqual([400, "request_id must be a UUID (8-4-4-4-12 hex digits, e.g. 0190f3a2-7c41-7b2e-9d4f-3a5b6c7d8e9f) or empty"]);
  });

  it("refuses a sum of usage past int64 with out_of_range, storing nothing", async () => {
    const session = await createSession();
    await add(session.id, { role: "MESSAGE_ROLE_ASSISTANT", content: [{ text: "a" }], usage: { cache_read_tokens: "9223372036854775800" } });
    const res = await add(session.id, { role: "MESSAGE_ROLE_ASSISTANT", content: [{ text: "b" }], usage: { cache_read_tokens: "8" } });
    expect([res.status, res.body]).toEqual([400, { code: 11, message: `usage would overflow: cacheReadTokens of session ${session.id} exceeds 2^63-1`, details: [] }]);
    expect((await get(`/v1/sessions/${session.id}/messages`)).body.messages).toHaveLength(1);
    expect((await get(`/v1/sessions/${session.id}/events`)).body.events).toHaveLength(2);
  });

  describe("limits", () => {
    const nested = (depth: number): Json => (depth === 1 ? {} : { a: nested(depth - 1) });
    const text = (t: string) => ({ text: t });
    const CASES: ReadonlyArray<[string, unknown, string, string]> = [
      ["no role", { content: [text("x")] }, "message.role", "message.role is required: one of MESSAGE_ROLE_USER, MESSAGE_ROLE_ASSISTANT, MESSAGE_ROLE_SYSTEM or MESSAGE_ROLE_TOOL"],
      ["an unknown role", { role: 9, content: [text("x")] }, "message.role", "message.role must be a message role, got 9"],
      ["no content", { role: "MESSAGE_ROLE_USER" }, "message.content", "message.content is required: at least one part"],
      ["65 parts", { role: "MESSAGE_ROLE_USER", content: Array.from({ length: 65 }, () => text("x")) }, "message.content", "message.content must have at most 64 parts, got 65"],
      ["a part of no kind", { role: "MESSAGE_ROLE_USER", content: [text("x"), {}] }, "message.content[1]", "message.content[1] must set exactly one of text, tool_call or tool_result"],
      ["empty text", { role: "MESSAGE_ROLE_USER", content: [text("")] }, "message.content[0].text", "message.content[0].text must not be empty"],
      ["a tool call without id", { role: "MESSAGE_ROLE_ASSISTANT", content: [{ tool_call: { name: "n" } }] }, "message.content[0].tool_call.id", "message.content[0].tool_call.id is required"],
      ["a tool call id of 129", { role: "MESSAGE_ROLE_ASSISTANT", content: [{ tool_call: { id: "i".repeat(129), name: "n" } }] }, "message.content[0].tool_call.id", "message.content[0].tool_call.id must be at most 128 characters, got 129"],
      ["a tool name of 129", { role: "MESSAGE_ROLE_ASSISTANT", content: [{ tool_call: { id: "i", name: "é".repeat(129) } }] }, "message.content[0].tool_call.name", "message.content[0].tool_call.name must be at most 128 characters, got 129"],
      ["a tool name with a newline", { role: "MESSAGE_ROLE_ASSISTANT", content: [{ tool_call: { id: "i", name: "a\nb" } }] }, "message.content[0].tool_call.name", "message.content[0].tool_call.name must not contain control characters"],
      ["a tool result without tool_call_id", { role: "MESSAGE_ROLE_TOOL", content: [{ tool_result: { output: {} } }] }, "message.content[0].tool_result.tool_call_id", "message.content[0].tool_result.tool_call_id is required"],
      ["arguments 33 levels deep", { role: "MESSAGE_ROLE_ASSISTANT", content: [{ tool_call: { id: "i", name: "n", arguments: nested(33) } }] }, "message.content[0].tool_call.arguments", "message.content[0].tool_call.arguments must nest at most 32 levels of objects and arrays, got 33"],
      ["output 33 levels deep", { role: "MESSAGE_ROLE_TOOL", content: [text("x"), { tool_result: { tool_call_id: "i", output: nested(33) } }] }, "message.content[1].tool_result.output", "message.content[1].tool_result.output must nest at most 32 levels of objects and arrays, got 33"],
      ["content over 256 KiB", { role: "MESSAGE_ROLE_USER", content: [text("x".repeat(200_000)), text("y".repeat(62_120))] }, "message.content", "message.content must be at most 256 KiB as compact JSON, got 262145 bytes"],
      ["a malformed model_id", { role: "MESSAGE_ROLE_ASSISTANT", content: [text("x")], model_id: "gpt" }, "message.model_id", 'message.model_id must be "model_" followed by 32 lowercase hex digits, or empty'],
      ["model_id on a user message", { role: "MESSAGE_ROLE_USER", content: [text("x")], model_id: MODEL }, "message.model_id", "message.model_id is only allowed on MESSAGE_ROLE_ASSISTANT messages"],
      ["usage on a tool message", { role: "MESSAGE_ROLE_TOOL", content: [text("x")], usage: { input_tokens: 1 } }, "message.usage", "message.usage is only allowed on MESSAGE_ROLE_ASSISTANT messages"],
      ["negative usage", { role: "MESSAGE_ROLE_ASSISTANT", content: [text("x")], usage: { cache_creation_tokens: "-2" } }, "message.usage.cache_creation_tokens", "message.usage.cache_creation_tokens must be at least 0, got -2"],
    ];

    it.each(CASES)("refuses %s with a 400 naming the field", async (_, body, field, message) => {
      const session = await createSession();
      const res = await add(session.id, body);
      expect(res.status).toBe(400);
      expect(res.body).toEqual({
        code: 3,
        message,
        details: [{ "@type": "type.googleapis.com/google.rpc.BadRequest", field_violations: [{ field, description: message }] }],
      });
      expect((await get(`/v1/sessions/${session.id}/events`)).body.events).toHaveLength(1);
    });

    it("takes content of exactly 256 KiB and 64 parts, and ids and names of 128 characters", async () => {
      const session = await createSession();
      const exact = await add(session.id, { role: "MESSAGE_ROLE_USER", content: [text("x".repeat(200_000)), text("y".repeat(62_119))] });
      expect(exact.status).toBe(201);
      const parts = await add(session.id, {
        role: "MESSAGE_ROLE_ASSISTANT",
        content: [...Array.from({ length: 63 }, () => text("x")), { tool_call: { id: "i".repeat(128), name: "😀".repeat(128), arguments: nested(32) } }],
      });
      expect(parts.status).toBe(201);
    });

    it("refuses a malformed session id in the path", async () => {
      const res = await add("session_1", { role: "MESSAGE_ROLE_USER", content: [text("x")] });
      expect([res.status, res.body.message]).toEqual([400, 'Invalid session ID: session_id must be "session_" followed by 32 lowercase hex digits']);
    });
  });
});

describe("the per-session message cap over REST", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ maxSessionMessages: 3 });
  });
  afterAll(async () => {
    await server.close();
  });

  it("answers 429 resource_exhausted naming the cap once a session holds it, and takes messages in other sessions", async () => {
    const create = async () => (await requestJson(`${server.url}/v1/sessions`, { body: { agent_id: AGENT_ID } })).body.id as string;
    const id = await create();
    const add = (sessionId: string) =>
      requestJson(`${server.url}/v1/sessions/${sessionId}/messages`, { body: { role: "MESSAGE_ROLE_USER", content: [{ text: "x" }] } });
    for (let i = 0; i < 3; i++) expect((await add(id)).status).toBe(201);
    const res = await add(id);
    expect([res.status, res.body]).toEqual([
      429,
      { code: 8, message: `session ${id} has reached its cap of 3 messages; continue the conversation in a new session`, details: [] },
    ]);
    expect((await requestJson(`${server.url}/v1/sessions/${id}/events`)).body.events).toHaveLength(4);
    // Other changes go on: the cap is on messages only.
    expect((await requestJson(`${server.url}/v1/sessions/${id}:start`, { method: "POST" })).status).toBe(200);
    expect((await add(await create())).status).toBe(201);
  });
});

describe("conversation pages over REST with a small --list-page-bytes", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ listPageBytes: 25_000 });
  });
  afterAll(async () => {
    await server.close();
  });

  it("end early at the byte budget with a token, and page on from it to the end", async () => {
    const id = (await requestJson(`${server.url}/v1/sessions`, { body: { agent_id: AGENT_ID } })).body.id as string;
    for (let i = 0; i < 5; i++) {
      const res = await requestJson(`${server.url}/v1/sessions/${id}/messages`, { body: { role: "MESSAGE_ROLE_USER", content: [{ text: `${i}`.repeat(10_000) }] } });
      expect(res.status).toBe(201);
    }
    for (const list of ["messages", "events"] as const) {
      const sequences: string[][] = [];
      let token = "";
      do {
        const res = await requestJson(`${server.url}/v1/sessions/${id}/${list}?page_size=100${token ? `&page_token=${token}` : ""}`);
        expect(res.status).toBe(200);
        sequences.push(res.body[list].map((item: Json) => item.sequence));
        token = res.body.next_page_token;
      } while (token !== "");
      // About 10 KB each: two to a 25,000-byte page (the CREATED event is small).
      expect([list, sequences]).toEqual(
        list === "messages" ? [list, [["2", "3"], ["4", "5"], ["6"]]] : [list, [["1", "2", "3"], ["4", "5"], ["6"]]],
      );
    }
  });

  it("tells the in-process notifier of each message with the session after it", async () => {
    const id = (await requestJson(`${server.url}/v1/sessions`, { body: { agent_id: AGENT_ID } })).body.id as string;
    const seen: Array<[number, number, string]> = [];
    const stop = server.events.subscribe(DEFAULT_ORG_ID, id, (event) => {
      if (event.kind === "changed") seen.push([event.session.lastSequence, event.session.messageCount, event.session.promptPreview]);
    });
    try {
      await requestJson(`${server.url}/v1/sessions/${id}/messages`, { body: { role: "MESSAGE_ROLE_USER", content: [{ text: "hi" }] } });
      await requestJson(`${server.url}/v1/sessions/${id}:start`, { method: "POST" });
      await requestJson(`${server.url}/v1/sessions/${id}/messages`, { body: { role: "MESSAGE_ROLE_ASSISTANT", content: [{ text: "yo" }] } });
    } finally {
      stop();
    }
    expect(seen).toEqual([
      [2, 1, "hi"],
      [3, 1, "hi"],
      [4, 2, "hi"],
    ]);
  });
});
