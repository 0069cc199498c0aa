import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AGENT_ID, DEFAULT_ORG_ID, requestJson, startTestServer, type TestServer } from "./helpers/server.js";
import { insertTestKey } from "./helpers/keys.js";
import { until } from "./helpers/until.js";
import { curlN, openStream, type HttpVersion } from "./rest/stream-clients.js";

// GET /v1/sessions/{session_id}/events:stream on the real server: the transcoder's generic
// server streams (test/rest/event-stream.test.ts proves their framing on the test library)
// over StreamSessionEvents, with the server's authentication, request ids, logs, stream
// caps and graceful stop around them.

const HEARTBEAT_MS = 200;
const CONSOLE_ORIGIN = "http://console.example.test";

interface SseEvent {
  readonly id: string;
  readonly event: string;
  readonly data: any;
}

/** Parses complete Server-Sent Events (the framing is proven byte-exact elsewhere). */
function parseSse(text: string): SseEvent[] {
  return text
    .split("\n\n")
    .filter((block) => block.startsWith("id: ") || block.startsWith("event: "))
    .map((block) => {
      const fields = Object.fromEntries(block.split("\n").map((line) => [line.slice(0, line.indexOf(":")), line.slice(line.indexOf(":") + 2)]));
      return { id: fields.id, event: fields.event, data: JSON.parse(fields.data) };
    });
}

async function createSession(base: string, headers: Record<string, string> = {}): Promise<string> {
  const created = await requestJson(`${base}/v1/sessions`, { body: { agent_id: AGENT_ID, title: "followed" }, headers });
  expect(created.status).toBe(201);
  return created.body.id;
}

async function addUserMessage(base: string, id: string, text: string): Promise<void> {
  const added = await requestJson(`${base}/v1/sessions/${id}/messages`, { body: { role: "MESSAGE_ROLE_USER", content: [{ text }] } });
  expect(added.status).toBe(201);
}

describe("REST stream of a session's events (open mode)", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ streamHeartbeatMs: HEARTBEAT_MS, streamLimits: { perSession: 2 }, corsOrigins: [CONSOLE_ORIGIN] });
  });
  afterAll(() => server.close());

  it.each(["h1", "h2"] as const)("curl -N follows a session as SSE over %s: each event as ListSessionEvents gives it, ending after the final one", async (version: HttpVersion) => {
    const id = await createSession(server.url);
    await addUserMessage(server.url, id, "Review PR 42");
    await requestJson(`${server.url}/v1/sessions/${id}:start`, { body: {} });
    await requestJson(`${server.url}/v1/sessions/${id}:complete`, { body: {} });
    const run = curlN([version === "h2" ? "--http2-prior-knowledge" : "--http1.1", "-H", "Accept: text/event-stream", `${server.url}/v1/sessions/${id}/events:stream`]);
    expect(await run.exit).toBe(0);
    const events = parseSse(run.stdout());
    const listed = await requestJson(`${server.url}/v1/sessions/${id}/events`);
    expect(events.map((e) => [e.id, e.event])).toEqual([
      ["1", "SESSION_EVENT_TYPE_CREATED"],
      ["2", "SESSION_EVENT_TYPE_MESSAGE_ADDED"],
      ["3", "SESSION_EVENT_TYPE_STARTED"],
      ["4", "SESSION_EVENT_TYPE_COMPLETED"],
    ]);
    expect(events.map((e) => e.data)).toEqual(listed.body.events);
  });

  it("sends new events live, and a reconnect with Last-Event-ID resumes after it, winning over after_sequence", async () => {
    const id = await createSession(server.url);
    const stream = await openStream("h1", server.url, `/v1/sessions/${id}/events:stream`, { accept: "text/event-stream" });
    await stream.waitFor((text) => parseSse(text).length === 1, "the CREATED event");
    await addUserMessage(server.url, id, "first");
    await stream.waitFor((text) => parseSse(text).length === 2, "the first message's event, live");
    stream.close();
    await addUserMessage(server.url, id, "second");
    await requestJson(`${server.url}/v1/sessions/${id}:cancel`, { body: {} });
    const resumed = await openStream("h1", server.url, `/v1/sessions/${id}/events:stream?after_sequence=0`, {
      accept: "text/event-stream",
      "last-event-id": "2",
    });
    const events = parseSse(await resumed.whole());
    expect(events.map((e) => [e.id, e.event])).toEqual([
      ["3", "SESSION_EVENT_TYPE_MESSAGE_ADDED"],
      ["4", "SESSION_EVENT_TYPE_CANCELLED"],
    ]);
    expect(events[0]!.data.message.content).toEqual([{ text: "second" }]);
  });

  it("streams NDJSON without Accept, sends heartbeats while idle, and answers errors before the start as REST errors", async () => {
    const id = await createSession(server.url);
    const stream = await openStream("h2", server.url, `/v1/sessions/${id}/events:stream`);
    expect([stream.status, stream.headers["content-type"], stream.headers["cache-control"]]).toEqual([200, "application/x-ndjson", "no-cache"]);
    const text = await stream.waitFor((t) => t.endsWith("\n\n"), "a heartbeat (an empty line) after the CREATED event");
    expect(JSON.parse(text.split("\n")[0]!)).toMatchObject({ session_id: id, sequence: "1", type: "SESSION_EVENT_TYPE_CREATED" });
    stream.close();

    const missing = await openStream("h1", server.url, "/v1/sessions/session_ffffffffffffffffffffffffffffffff/events:stream", { accept: "text/event-stream" });
    expect(missing.status).toBe(404);
    expect(JSON.parse(await missing.whole())).toEqual({ code: 5, message: "session session_ffffffffffffffffffffffffffffffff not found", details: [] });
    const badId = await openStream("h1", server.url, `/v1/sessions/${id}/events:stream`, { accept: "text/event-stream", "last-event-id": "x" });
    expect(badId.status).toBe(400);
    expect(JSON.parse(await badId.whole()).message).toBe(
      "invalid Last-Event-ID header: cannot decode field sessions.v1.StreamSessionEventsRequest.after_sequence from JSON: expected bigint (int64): x out of range",
    );
  });

  it("carries the request id and CORS headers, logs the call with its route and status once the stream ends, and counts it", async () => {
    const id = await createSession(server.url);
    await requestJson(`${server.url}/v1/sessions/${id}:cancel`, { body: {} });
    const stream = await openStream("h1", server.url, `/v1/sessions/${id}/events:stream`, {
      accept: "text/event-stream",
      "x-request-id": "sse-follower-1",
      origin: CONSOLE_ORIGIN,
    });
    expect(stream.headers["x-request-id"]).toBe("sse-follower-1");
    expect(stream.headers["access-control-allow-origin"]).toBe(CONSOLE_ORIGIN);
    expect(parseSse(await stream.whole())).toHaveLength(2);
    await until(() => server.logs.some((line) => line.requestId === "sse-follower-1"), "the request's log line");
    expect(server.logs.find((line) => line.requestId === "sse-follower-1")).toMatchObject({
      procedure: "/sessions.v1.SessionService/StreamSessionEvents",
      protocol: "rest",
      code: "ok",
      httpMethod: "GET",
      path: "/v1/sessions/{session_id}/events:stream",
      status: 200,
    });
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(/sessions_rpc_requests_total\{[^}]*procedure="\/sessions\.v1\.SessionService\/StreamSessionEvents"[^}]*protocol="rest"[^}]*code="ok"[^}]*\} [1-9]/);
  });

  it("counts SSE followers against the per-session stream cap (429 past it), and frees their places when they go", async () => {
    const id = await createSession(server.url);
    const followers = [
      await openStream("h1", server.url, `/v1/sessions/${id}/events:stream`, { accept: "text/event-stream" }),
      await openStream("h2", server.url, `/v1/sessions/${id}/events:stream`, { accept: "text/event-stream" }),
    ];
    const third = await openStream("h1", server.url, `/v1/sessions/${id}/events:stream`, { accept: "text/event-stream" });
    expect(third.status).toBe(429);
    expect(JSON.parse(await third.whole())).toEqual({
      code: 8,
      message: `too many watchers of session ${id}: at most 2 (--max-watchers-per-session)`,
      details: [],
    });
    for (const follower of followers) follower.close();
    await until(() => server.streams.size === 0, "the followers' places to be freed");
  });
});

describe("REST stream of a session's events with API keys", () => {
  let server: TestServer;
  let key: string;
  beforeAll(async () => {
    server = await startTestServer();
    key = (await insertTestKey(server.store, DEFAULT_ORG_ID)).key;
  });
  afterAll(() => server.close());

  it("refuses a follower without a key (401, WWW-Authenticate) and answers another organisation's session as not found", async () => {
    const id = await createSession(server.url, { authorization: `Bearer ${key}` });
    const anonymous = await openStream("h1", server.url, `/v1/sessions/${id}/events:stream`, { accept: "text/event-stream" });
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers["www-authenticate"]).toBe('Bearer realm="sessions"');
    expect(JSON.parse(await anonymous.whole())).toEqual({ code: 16, message: "missing API key: send Authorization: Bearer <key>", details: [] });

    const other = (await insertTestKey(server.store, "org_00000000000000000000000000000002")).key;
    const foreign = await openStream("h1", server.url, `/v1/sessions/${id}/events:stream`, { accept: "text/event-stream", authorization: `Bearer ${other}` });
    expect(foreign.status).toBe(404);

    const keyed = await openStream("h2", server.url, `/v1/sessions/${id}/events:stream`, { accept: "text/event-stream", authorization: `Bearer ${key}` });
    expect(keyed.status).toBe(200);
    await keyed.waitFor((text) => parseSse(text).length === 1, "the CREATED event");
    keyed.close();
  });
});

describe("REST stream of a session's events when the server stops", () => {
  it("ends an open SSE stream at once with an error event (unavailable), not at the shutdown timeout", async () => {
    const server = await startTestServer();
    try {
      const id = await createSession(server.url);
      const stream = await openStream("h1", server.url, `/v1/sessions/${id}/events:stream`, { accept: "text/event-stream" });
      await stream.waitFor((text) => parseSse(text).length === 1, "the CREATED event");
      const started = Date.now();
      const stopping = server.stop();
      const text = await stream.whole();
      expect(text.endsWith(`event: error\ndata: {"code":14,"message":"server is shutting down","details":[]}\n\n`)).toBe(true);
      await stopping;
      expect(Date.now() - started).toBeLessThan(1500);
    } finally {
      await server.close();
    }
  });
});
