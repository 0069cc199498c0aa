import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AGENT_ID, DEFAULT_ORG_ID, MODEL_ID, requestJson, SESSION_ID_PATTERN, startTestServer, type TestServer } from "./helpers/server.js";

const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

describe("REST: POST /v1/sessions and GET /v1/sessions/{id}", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server.close();
  });

  it("creates a session: 201, Location, and every field in snake_case with int64 as strings", async () => {
    const before = Date.now();
    const res = await requestJson(`${server.url}/v1/sessions`, {
      body: {
        agent_id: AGENT_ID,
        model_id: MODEL_ID,
        title: "Refactor the parser",
        tags: ["ci", "nightly"],
        capabilities: [{ capability_id: "web.search", config: { max_results: 5, domains: ["a.example"] } }, { capability_id: "shell" }],
      },
    });
    expect(res.status).toBe(201);
    expect(res.headers.get("content-type")).toBe("application/json");
    const { id, created_at, updated_at, ...rest } = res.body;
    expect(id).toMatch(SESSION_ID_PATTERN);
    expect(res.headers.get("location")).toBe(`/v1/sessions/${id}`);
    expect(created_at).toMatch(ISO_MS);
    expect(updated_at).toBe(created_at);
    expect(Date.parse(created_at)).toBeGreaterThanOrEqual(before);
    expect(rest).toEqual({
      org_id: DEFAULT_ORG_ID,
      agent_id: AGENT_ID,
      model_id: MODEL_ID,
      capabilities: [
        { capability_id: "web.search", config: { max_results: 5, domains: ["a.example"] } },
        { capability_id: "shell" },
      ],
      title: "Refactor the parser",
      tags: ["ci", "nightly"],
      status: "SESSION_STATUS_PENDING",
      usage: { input_tokens: "0", output_tokens: "0", cache_read_tokens: "0", cache_creation_tokens: "0" },
      prompt_preview: "",
      response_preview: "",
      error: "",
      etag: "session-v1",
    });
  });

  it("answers a minimal create with every implicit field present and no unset timestamps", async () => {
    const res = await requestJson(`${server.url}/v1/sessions`, { body: { agentId: AGENT_ID } });
    expect(res.status).toBe(201);
    expect(Object.keys(res.body).sort()).toEqual(
      ["agent_id", "capabilities", "created_at", "error", "etag", "id", "model_id", "org_id", "prompt_preview",
        "response_preview", "status", "tags", "title", "updated_at", "usage"].sort(),
    );
    expect(res.body.model_id).toBe("");
    expect(res.body.tags).toEqual([]);
    expect(res.body.capabilities).toEqual([]);
  });

  it("gets what it created, byte for byte the same JSON", async () => {
    const created = await requestJson(`${server.url}/v1/sessions`, { body: { agent_id: AGENT_ID, title: "é 😀" } });
    const got = await requestJson(`${server.url}/v1/sessions/${created.body.id}`);
    expect(got.status).toBe(200);
    expect(got.body).toEqual(created.body);
  });

  it("hands out strictly increasing ids", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push((await requestJson(`${server.url}/v1/sessions`, { body: { agent_id: AGENT_ID } })).body.id);
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids).size).toBe(20);
  });

  it("answers 404 with code 5 for a well-formed unknown id", async () => {
    const res = await requestJson(`${server.url}/v1/sessions/session_0123456789abcdef0123456789abcdef`);
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ code: 5, message: "session session_0123456789abcdef0123456789abcdef not found", details: [] });
  });

  it("answers 400 with a BadRequest detail for a malformed id", async () => {
    const res = await requestJson(`${server.url}/v1/sessions/session_XYZ`);
    expect(res.status).toBe(400);
    const message = 'Invalid session ID: id must be "session_" followed by 32 lowercase hex digits';
    expect(res.body).toEqual({
      code: 3,
      message,
      details: [{ "@type": "type.googleapis.com/google.rpc.BadRequest", field_violations: [{ field: "id", description: message }] }],
    });
  });

  it("answers 400 naming an unknown field in the body", async () => {
    const res = await requestJson(`${server.url}/v1/sessions`, { body: { agent_id: AGENT_ID, colour: "red" } });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({
      code: 3,
      message: 'invalid request body: cannot decode message sessions.v1.CreateSessionRequest from JSON: key "colour" is unknown',
      details: [],
    });
  });

  it("answers 400 for a field of the wrong type", async () => {
    const res = await requestJson(`${server.url}/v1/sessions`, { body: { agent_id: AGENT_ID, tags: "x" } });
    expect(res.status).toBe(400);
    expect(res.body.code).toBe(3);
    expect(res.body.message).toBe(
      'invalid request body: cannot decode field sessions.v1.CreateSessionRequest.tags from JSON: expected Array, got "x"',
    );
  });

  it("answers 400 for output-only fields sent on create", async () => {
    const res = await requestJson(`${server.url}/v1/sessions`, { body: { agent_id: AGENT_ID, status: "SESSION_STATUS_RUNNING" } });
    expect(res.status).toBe(400);
    expect(res.body.message).toBe('invalid request body: cannot decode message sessions.v1.CreateSessionRequest from JSON: key "status" is unknown');
  });

  it.each([
    ["[]", "an array"],
    ["null", "null"],
    ['"text"', "string"],
    ["42", "number"],
  ])("answers 400 naming what came instead of an object for the body %s", async (json, what) => {
    const res = await requestJson(`${server.url}/v1/sessions`, { body: json });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ code: 3, message: `invalid request body: expected a JSON object, got ${what}`, details: [] });
  });

  it("answers 400 with code 3 for malformed JSON", async () => {
    const res = await requestJson(`${server.url}/v1/sessions`, { body: '{"agent_id": ' });
    expect(res.status).toBe(400);
    expect(res.body.code).toBe(3);
    expect(res.body.message).toMatch(/^malformed JSON body: /);
    expect(res.body.details).toEqual([]);
  });

  it("answers 413 with code 8 for a body over 1 MiB", async () => {
    const res = await requestJson(`${server.url}/v1/sessions`, { body: { agent_id: AGENT_ID, title: "x".repeat(1024 * 1024) } });
    expect(res.status).toBe(413);
    expect(res.body).toEqual({ code: 8, message: "request body is larger than 1048576 bytes", details: [] });
  });

  it("answers 415 with code 3 for a body that is not JSON", async () => {
    const res = await requestJson(`${server.url}/v1/sessions`, {
      body: "agent_id=x",
      headers: { "content-type": "application/x-www-form-urlencoded" },
    });
    expect(res.status).toBe(415);
    expect(res.body).toEqual({
      code: 3,
      message: 'unsupported Content-Type "application/x-www-form-urlencoded": send application/json',
      details: [],
    });
  });

  it("accepts application/json with a charset", async () => {
    const res = await requestJson(`${server.url}/v1/sessions`, {
      body: { agent_id: AGENT_ID },
      headers: { "content-type": "application/json; charset=utf-8" },
    });
    expect(res.status).toBe(201);
  });

  it("answers 404 with code 5 for an unknown path", async () => {
    const res = await requestJson(`${server.url}/v2/sessions`);
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ code: 5, message: "no route for /v2/sessions", details: [] });
  });

  it("answers 405 with code 12 and Allow for a known path and a wrong method", async () => {
    const res = await requestJson(`${server.url}/v1/sessions`, { method: "DELETE" });
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toBe("GET, POST");
    expect(res.body).toEqual({ code: 12, message: "method DELETE is not allowed for /v1/sessions", details: [] });
    const item = await requestJson(`${server.url}/v1/sessions/session_0123456789abcdef0123456789abcdef`, { method: "POST", body: {} });
    expect(item.status).toBe(405);
    expect(item.headers.get("allow")).toBe("DELETE, GET, PATCH");
  });

  it("answers 400 for a query parameter the method does not have", async () => {
    const res = await requestJson(`${server.url}/v1/sessions/session_0123456789abcdef0123456789abcdef?view=full`);
    expect(res.status).toBe(400);
    expect(res.body).toEqual({
      code: 3,
      message: 'invalid query parameter "view": unknown field: sessions.v1.GetSessionRequest has no field "view"',
      details: [],
    });
  });
});
