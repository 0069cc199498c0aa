import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SessionService } from "../gen/sessions/v1/session_service_pb.js";
import { AgentService } from "../gen/sessions/v1/agent_service_pb.js";
import { MessageRole } from "../gen/sessions/v1/message_pb.js";
import type { SqliteStore } from "../src/store/sqlite.js";
import { MODEL_ID, requestJson, startTestServer, type TestServer } from "./helpers/server.js";
import { insertTestKey, type TestKey } from "./helpers/keys.js";

/**
 * Two organisations on one server, each with its own key. Everything of A's is invisible
 * to B: each call B makes on A's session or agent answers exactly what it answers for an
 * id that exists nowhere, lists never show A's records, and A's data is unchanged after.
 */

const ORG_A = "org_" + "a".repeat(32);
const ORG_B = "org_" + "b".repeat(32);
/** Well-formed ids that no organisation has. */
const NOWHERE_SESSION_ID = "session_" + "0".repeat(32);
const NOWHERE_AGENT_ID = "agent_" + "0".repeat(32);
/** The message A adds to its running session (its id is set in beforeAll). */
let messageOfA = "message_" + "0".repeat(32);

type Json = Record<string, any>;

/** A REST answer in full, minus Date: what a caller could compare byte for byte. */
interface RawAnswer {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly text: string;
}

async function raw(url: string, key: TestKey, method: string, body: unknown): Promise<RawAnswer> {
  const response = await fetch(url, {
    method,
    headers: { authorization: `Bearer ${key.key}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  // The date and the request id differ from one answer to the next whatever the id asked for.
  const headers = Object.fromEntries([...response.headers].filter(([name]) => name !== "date" && name !== "x-request-id"));
  return { status: response.status, headers, text: await response.text() };
}

/** The same answer with an id replaced, to compare answers about two different ids. */
const withIdAs = (answer: RawAnswer, id: string, placeholder: string): RawAnswer => ({
  ...answer,
  headers: Object.fromEntries(Object.entries(answer.headers).map(([name, value]) => [name, value.replaceAll(id, placeholder)])),
  text: answer.text.replaceAll(id, placeholder),
});

/** Every REST call that names one session, as [what it is, method, path, body]. */
const SESSION_CALLS: ReadonlyArray<[string, string, (id: string) => string, unknown]> = [
  ["GET (GetSession)", "GET", (id) => `/v1/sessions/${id}`, undefined],
  ["PATCH (UpdateSession)", "PATCH", (id) => `/v1/sessions/${id}`, { title: "taken over" }],
  ["PATCH with etag session-v1 (UpdateSession)", "PATCH", (id) => `/v1/sessions/${id}`, { title: "taken over", etag: "session-v1" }],
  ["PATCH with a stale etag (UpdateSession)", "PATCH", (id) => `/v1/sessions/${id}`, { title: "taken over", etag: "session-v9" }],
  ["DELETE (DeleteSession)", "DELETE", (id) => `/v1/sessions/${id}`, undefined],
  ["DELETE with a stale etag (DeleteSession)", "DELETE", (id) => `/v1/sessions/${id}?etag=session-v9`, undefined],
  ["POST :start (StartSession)", "POST", (id) => `/v1/sessions/${id}:start`, {}],
  ["POST :complete (CompleteSession), which A's pending session could not do either", "POST", (id) => `/v1/sessions/${id}:complete`, {}],
  ["POST :fail (FailSession)", "POST", (id) => `/v1/sessions/${id}:fail`, { error: "sabotage" }],
  ["POST :cancel (CancelSession)", "POST", (id) => `/v1/sessions/${id}:cancel`, {}],
  ["POST :recordUsage (RecordUsage)", "POST", (id) => `/v1/sessions/${id}:recordUsage`, { input_tokens: "1000", prompt_preview: "x" }],
  ["GET /runtime (GetRuntimeAgent)", "GET", (id) => `/v1/sessions/${id}/runtime`, undefined],
  ["POST /messages (AddMessage)", "POST", (id) => `/v1/sessions/${id}/messages`, { role: "MESSAGE_ROLE_USER", content: [{ text: "hijack" }] }],
  ["GET /messages (ListMessages)", "GET", (id) => `/v1/sessions/${id}/messages`, undefined],
  ["GET /messages/{id} of A's message (GetMessage)", "GET", (id) => `/v1/sessions/${id}/messages/${messageOfA}`, undefined],
  ["GET /events (ListSessionEvents)", "GET", (id) => `/v1/sessions/${id}/events`, undefined],
];

/** Every REST call that names one agent. */
const AGENT_CALLS: ReadonlyArray<[string, string, (id: string) => string, unknown]> = [
  ["GET (GetAgent)", "GET", (id) => `/v1/agents/${id}`, undefined],
  ["PATCH (UpdateAgent)", "PATCH", (id) => `/v1/agents/${id}`, { name: "taken over" }],
  ["PATCH with A's agent's current etag (UpdateAgent)", "PATCH", (id) => `/v1/agents/${id}`, { name: "taken over", etag: "agent-v1" }],
  ["DELETE (DeleteAgent)", "DELETE", (id) => `/v1/agents/${id}`, undefined],
  ["DELETE with a stale etag (DeleteAgent)", "DELETE", (id) => `/v1/agents/${id}?etag=agent-v9`, undefined],
];

async function failure(call: Promise<unknown>): Promise<ConnectError> {
  return call.then(
    (response) => {
      throw new Error(`expected the call to fail, got ${JSON.stringify(response, (_, v) => (typeof v === "bigint" ? String(v) : v))}`);
    },
    (error: unknown) => ConnectError.from(error),
  );
}

describe("organisations are isolated", () => {
  let server: TestServer;
  let keyA: TestKey;
  let keyB: TestKey;
  let grpcA: Client<typeof SessionService>;
  let grpcB: Client<typeof SessionService>;
  let agentsB: Client<typeof AgentService>;
  /** A's agent and its sessions, as A last read them. */
  let agentA: Json;
  let pendingA: Json;
  let runningA: Json;
  let agentB: Json;
  let sessionB: Json;

  const asA = (path: string, init: { method?: string; body?: unknown } = {}) =>
    requestJson(`${server.url}${path}`, { ...init, headers: { authorization: `Bearer ${keyA.key}` } });
  const asB = (path: string, init: { method?: string; body?: unknown } = {}) =>
    requestJson(`${server.url}${path}`, { ...init, headers: { authorization: `Bearer ${keyB.key}` } });

  /** A's agent and sessions as A reads them now, over REST and from the store. */
  async function stateOfA(): Promise<unknown> {
    const read = async (path: string) => {
      const res = await asA(path);
      expect(res.status).toBe(200);
      return res.body;
    };
    return {
      agent: await read(`/v1/agents/${agentA.id}`),
      pending: await read(`/v1/sessions/${pendingA.id}`),
      running: await read(`/v1/sessions/${runningA.id}`),
      sessions: (await read("/v1/sessions")).sessions,
      agents: (await read("/v1/agents")).agents,
      messages: (await read(`/v1/sessions/${runningA.id}/messages`)).messages,
      events: (await read(`/v1/sessions/${runningA.id}/events`)).events,
      stored: [
        await server.store.findAgent(ORG_A, agentA.id),
        await server.store.findSession(ORG_A, pendingA.id),
        await server.store.findSession(ORG_A, runningA.id),
      ],
    };
  }
  let before: unknown;

  beforeAll(async () => {
    server = await startTestServer({ seedAgent: false });
    keyA = await insertTestKey(server.store, ORG_A, "A");
    keyB = await insertTestKey(server.store, ORG_B, "B");
    grpcA = createClient(SessionService, createGrpcTransport({ baseUrl: server.url }));
    const grpcTransportB = createGrpcTransport({
      baseUrl: server.url,
      interceptors: [(next) => (request) => (request.header.set("authorization", `Bearer ${keyB.key}`), next(request))],
    });
    grpcB = createClient(SessionService, grpcTransportB);
    agentsB = createClient(AgentService, grpcTransportB);

    const agent = await asA("/v1/agents", { body: { name: "A's agent", default_model_id: MODEL_ID, capabilities: [{ capability_id: "web.search" }] } });
    expect(agent.status).toBe(201);
    const pending = await asA("/v1/sessions", { body: { agent_id: agent.body.id, title: "A's secret plan", tags: ["a-only"] } });
    expect(pending.status).toBe(201);
    const running = await asA("/v1/sessions", { body: { agent_id: agent.body.id, title: "A at work", tags: ["a-only"] } });
    expect(running.status).toBe(201);
    expect((await asA(`/v1/sessions/${running.body.id}:start`, { body: {} })).status).toBe(200);
    agentA = agent.body;
    pendingA = pending.body;
    const added = await asA(`/v1/sessions/${running.body.id}/messages`, { body: { role: "MESSAGE_ROLE_USER", content: [{ text: "A's prompt" }] } });
    expect(added.status).toBe(201);
    messageOfA = added.body.id;
    runningA = (await asA(`/v1/sessions/${running.body.id}`)).body;

    const ownAgent = await asB("/v1/agents", { body: { name: "B's agent", default_model_id: MODEL_ID } });
    expect(ownAgent.status).toBe(201);
    agentB = ownAgent.body;
    const ownSession = await asB("/v1/sessions", { body: { agent_id: agentB.id, tags: ["a-only"] } });
    expect(ownSession.status).toBe(201);
    sessionB = ownSession.body;
    before = await stateOfA();
  });
  afterAll(async () => {
    await server?.close();
  });

  it("serves each organisation's records with its own org_id", () => {
    expect([agentA.org_id, pendingA.org_id, runningA.org_id]).toEqual([ORG_A, ORG_A, ORG_A]);
    expect([agentB.org_id, sessionB.org_id]).toEqual([ORG_B, ORG_B]);
  });

  describe.each(SESSION_CALLS)("B's %s on A's session", (_, method, path, body) => {
    it.each(["pending", "running"] as const)("is 404 not_found, as for a session that exists nowhere (A's %s session)", async (which) => {
      const id = which === "pending" ? pendingA.id : runningA.id;
      const foreign = await raw(`${server.url}${path(id)}`, keyB, method, body);
      expect(foreign.status).toBe(404);
      expect(JSON.parse(foreign.text)).toEqual({ code: 5, message: `session ${id} not found`, details: [] });
      const nowhere = await raw(`${server.url}${path(NOWHERE_SESSION_ID)}`, keyB, method, body);
      expect(withIdAs(foreign, id, "<id>")).toEqual(withIdAs(nowhere, NOWHERE_SESSION_ID, "<id>"));
      expect(await stateOfA()).toEqual(before);
    });
  });

  describe.each(AGENT_CALLS)("B's %s on A's agent", (_, method, path, body) => {
    it("is 404 not_found, as for an agent that exists nowhere", async () => {
      const foreign = await raw(`${server.url}${path(agentA.id)}`, keyB, method, body);
      expect(foreign.status).toBe(404);
      expect(JSON.parse(foreign.text)).toEqual({ code: 5, message: `agent ${agentA.id} not found`, details: [] });
      const nowhere = await raw(`${server.url}${path(NOWHERE_AGENT_ID)}`, keyB, method, body);
      expect(withIdAs(foreign, agentA.id, "<id>")).toEqual(withIdAs(nowhere, NOWHERE_AGENT_ID, "<id>"));
      expect(await stateOfA()).toEqual(before);
    });
  });

  it("answers B over gRPC with not_found and the same message as for a session that exists nowhere, on every session RPC", async () => {
    const calls: Array<[string, (id: string) => Promise<unknown>]> = [
      ["GetSession", (id) => grpcB.getSession({ id })],
      ["UpdateSession", (id) => grpcB.updateSession({ session: { id, title: "taken over" }, updateMask: { paths: ["title"] } })],
      ["DeleteSession", (id) => grpcB.deleteSession({ id })],
      ["StartSession", (id) => grpcB.startSession({ id })],
      ["CompleteSession", (id) => grpcB.completeSession({ id })],
      ["FailSession", (id) => grpcB.failSession({ id, error: "sabotage" })],
      ["CancelSession", (id) => grpcB.cancelSession({ id })],
      ["RecordUsage", (id) => grpcB.recordUsage({ id, inputTokens: 1000n })],
      ["GetRuntimeAgent", (id) => grpcB.getRuntimeAgent({ id })],
      ["AddMessage", (id) => grpcB.addMessage({ sessionId: id, message: { role: MessageRole.USER, content: [{ part: { case: "text", value: "hijack" } }] } })],
      ["GetMessage", (id) => grpcB.getMessage({ sessionId: id, id: messageOfA })],
      ["ListMessages", (id) => grpcB.listMessages({ sessionId: id })],
      ["ListSessionEvents", (id) => grpcB.listSessionEvents({ sessionId: id })],
    ];
    for (const [name, call] of calls) {
      const foreign = await failure(call(runningA.id));
      const nowhere = await failure(call(NOWHERE_SESSION_ID));
      expect([name, foreign.code, foreign.rawMessage]).toEqual([name, Code.NotFound, `session ${runningA.id} not found`]);
      expect([name, nowhere.code, nowhere.rawMessage.replace(NOWHERE_SESSION_ID, runningA.id)]).toEqual([name, foreign.code, foreign.rawMessage]);
    }
    expect(await stateOfA()).toEqual(before);
  });

  it("ends B's WatchSession of A's session with not_found before sending anything, while A's own watch sees it", async () => {
    const received: unknown[] = [];
    const watchB = async (id: string) => {
      for await (const message of grpcB.watchSession({ id })) received.push(message);
    };
    const foreign = await failure(watchB(runningA.id));
    const nowhere = await failure(watchB(NOWHERE_SESSION_ID));
    expect([foreign.code, foreign.rawMessage]).toEqual([Code.NotFound, `session ${runningA.id} not found`]);
    expect([nowhere.code, nowhere.rawMessage]).toEqual([Code.NotFound, `session ${NOWHERE_SESSION_ID} not found`]);
    expect(received).toEqual([]);
    expect(server.events.watchers(ORG_A, runningA.id)).toBe(0);
    expect(server.events.watchers(ORG_B, runningA.id)).toBe(0);

    for await (const first of grpcA.watchSession({ id: runningA.id }, { headers: { authorization: `Bearer ${keyA.key}` } })) {
      expect([first.id, first.orgId, first.title]).toEqual([runningA.id, ORG_A, "A at work"]);
      break;
    }
  });

  it("answers B's GetAgent, UpdateAgent and DeleteAgent on A's agent over gRPC with not_found", async () => {
    const calls: Array<[string, (id: string) => Promise<unknown>]> = [
      ["GetAgent", (id) => agentsB.getAgent({ id })],
      ["UpdateAgent", (id) => agentsB.updateAgent({ agent: { id, name: "taken over" }, updateMask: { paths: ["name"] } })],
      ["DeleteAgent", (id) => agentsB.deleteAgent({ id })],
    ];
    for (const [name, call] of calls) {
      const error = await failure(call(agentA.id));
      expect([name, error.code, error.rawMessage]).toEqual([name, Code.NotFound, `agent ${agentA.id} not found`]);
    }
    expect(await stateOfA()).toEqual(before);
  });

  it("never lists A's sessions to B, whatever the filter", async () => {
    const queries = [
      "",
      `agent_id=${agentA.id}`,
      "tag=a-only",
      "status=SESSION_STATUS_PENDING&status=SESSION_STATUS_RUNNING",
      "status=SESSION_STATUS_RUNNING",
      `agent_id=${agentA.id}&status=SESSION_STATUS_PENDING&tag=a-only`,
      "created_after=2000-01-01T00:00:00Z",
      "page_size=1000",
    ];
    const expected = new Map<string, string[]>([
      ["", [sessionB.id]],
      ["tag=a-only", [sessionB.id]],
      ["status=SESSION_STATUS_PENDING&status=SESSION_STATUS_RUNNING", [sessionB.id]],
      ["created_after=2000-01-01T00:00:00Z", [sessionB.id]],
      ["page_size=1000", [sessionB.id]],
    ]);
    for (const query of queries) {
      const res = await asB(`/v1/sessions${query === "" ? "" : "?" + query}`);
      expect([query, res.status, res.body.sessions.map((s: Json) => s.id), res.body.next_page_token]).toEqual([
        query,
        200,
        expected.get(query) ?? [],
        "",
      ]);
    }
    const overGrpc = await grpcB.listSessions({ agentId: agentA.id });
    expect(overGrpc.sessions).toEqual([]);
    expect((await grpcB.listSessions({})).sessions.map((s) => s.id)).toEqual([sessionB.id]);
    // A, with the same filter, does see its own.
    const ownList = await asA(`/v1/sessions?agent_id=${agentA.id}`);
    expect(ownList.body.sessions.map((s: Json) => s.id)).toEqual([runningA.id, pendingA.id]);
  });

  it("never lists A's sessions to B on a later page, not even with a page token of A's", async () => {
    const first = await asA(`/v1/sessions?page_size=1&agent_id=${agentA.id}`);
    expect(first.body.sessions.map((s: Json) => s.id)).toEqual([runningA.id]);
    const next = await asB(`/v1/sessions?page_size=1&agent_id=${agentA.id}&page_token=${first.body.next_page_token}`);
    expect([next.status, next.body]).toEqual([200, { sessions: [], next_page_token: "" }]);
  });

  it("never lists A's agents to B", async () => {
    const rest = await asB("/v1/agents?page_size=1000");
    expect([rest.status, rest.body]).toEqual([200, { agents: [agentB], next_page_token: "" }]);
    expect((await agentsB.listAgents({})).agents.map((a) => a.id)).toEqual([agentB.id]);
  });

  it("refuses B a session on A's agent exactly as on an agent that exists nowhere (400), and stores none", async () => {
    const count = () => (server.store as SqliteStore).db.prepare("SELECT count(*) FROM sessions").pluck().get();
    const sessionsBefore = count();
    const message = `Invalid agent ID: agent ${agentA.id} does not exist`;
    const res = await asB("/v1/sessions", { body: { agent_id: agentA.id } });
    expect([res.status, res.body]).toEqual([
      400,
      {
        code: 3,
        message,
        details: [{ "@type": "type.googleapis.com/google.rpc.BadRequest", field_violations: [{ field: "agent_id", description: message }] }],
      },
    ]);
    const nowhere = await asB("/v1/sessions", { body: { agent_id: NOWHERE_AGENT_ID } });
    expect(JSON.stringify(nowhere.body).replaceAll(NOWHERE_AGENT_ID, agentA.id)).toBe(JSON.stringify(res.body));
    const overGrpc = await failure(grpcB.createSession({ agentId: agentA.id }));
    expect([overGrpc.code, overGrpc.rawMessage]).toEqual([Code.InvalidArgument, message]);
    expect(count()).toBe(sessionsBefore);
    expect(await stateOfA()).toEqual(before);
  });

  it("keeps request_id (idempotent create) per organisation: B's retry of A's request_id creates B's own records", async () => {
    const requestId = "7c0d1a4e-5b6f-4c3d-9e8f-0a1b2c3d4e5f";
    const agentOfA = await asA("/v1/agents", { body: { name: "keyed", default_model_id: MODEL_ID, request_id: requestId } });
    expect([agentOfA.status, agentOfA.body.org_id]).toEqual([201, ORG_A]);
    const agentOfB = await asB("/v1/agents", { body: { name: "keyed", default_model_id: MODEL_ID, request_id: requestId } });
    expect([agentOfB.status, agentOfB.body.org_id]).toEqual([201, ORG_B]);
    expect(agentOfB.body.id).not.toBe(agentOfA.body.id);

    const sessionOfA = await asA("/v1/sessions", { body: { agent_id: agentA.id, request_id: requestId } });
    expect([sessionOfA.status, sessionOfA.body.org_id]).toEqual([201, ORG_A]);
    const sessionOfB = await asB("/v1/sessions", { body: { agent_id: agentB.id, request_id: requestId } });
    expect([sessionOfB.status, sessionOfB.body.org_id, sessionOfB.body.agent_id]).toEqual([201, ORG_B, agentB.id]);
    expect(sessionOfB.body.id).not.toBe(sessionOfA.body.id);
    // Cleaned up, so that the lists A and B see are as before.
    for (const [as, path] of [
      [asA, `/v1/sessions/${sessionOfA.body.id}`],
      [asB, `/v1/sessions/${sessionOfB.body.id}`],
      [asA, `/v1/agents/${agentOfA.body.id}`],
      [asB, `/v1/agents/${agentOfB.body.id}`],
    ] as const) {
      expect((await as(path, { method: "DELETE" })).status).toBe(200);
    }
  });

  it("answers a foreign id exactly as it answers the same id once it exists nowhere", async () => {
    const doomed = await asA("/v1/sessions", { body: { agent_id: agentA.id } });
    const probes = async () => {
      const answers: RawAnswer[] = [];
      for (const [, method, path, body] of SESSION_CALLS) answers.push(await raw(`${server.url}${path(doomed.body.id)}`, keyB, method, body));
      return answers;
    };
    const whileItExists = await probes();
    expect((await asA(`/v1/sessions/${doomed.body.id}`, { method: "DELETE" })).status).toBe(200);
    expect(await probes()).toEqual(whileItExists);
  });

  it("leaves A's agent and sessions exactly as they were after all of B's attempts", async () => {
    expect(await stateOfA()).toEqual(before);
    const agent = await asA(`/v1/agents/${agentA.id}`);
    expect([agent.body.name, agent.body.etag]).toEqual(["A's agent", "agent-v1"]);
    const running = await asA(`/v1/sessions/${runningA.id}`);
    expect([running.body.status, running.body.title, running.body.usage.input_tokens]).toEqual(["SESSION_STATUS_RUNNING", "A at work", "0"]);
    expect((await grpcA.getSession({ id: pendingA.id }, { headers: { authorization: `Bearer ${keyA.key}` } })).title).toBe("A's secret plan");
  });
});
