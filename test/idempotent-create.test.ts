import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SessionService } from "../gen/sessions/v1/session_service_pb.js";
import { AgentService } from "../gen/sessions/v1/agent_service_pb.js";
import { BadRequestSchema } from "../gen/google/rpc/error_details_pb.js";
import { startServer, type RunningServer } from "../src/server.js";
import { SqliteStore } from "../src/store/sqlite.js";
import type { IdempotencyKey, SessionRecord } from "../src/store/store.js";
import { generateApiKey } from "../src/auth/api-key.js";
import { AGENT_ID, MODEL_ID, requestJson, seedTestAgent, SESSION_ID_PATTERN } from "./helpers/server.js";
import { storedSession } from "./helpers/stored-session.js";

const DAY_MS = 24 * 60 * 60 * 1000;
const START = Date.parse("2030-01-01T00:00:00.000Z");
const BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest";
const REQUEST_ID_FORM = "request_id must be a UUID (8-4-4-4-12 hex digits, e.g. 0190f3a2-7c41-7b2e-9d4f-3a5b6c7d8e9f) or empty";

/** A fresh UUID per call, so that tests sharing a server never share a request_id by accident. */
const uuid = () => crypto.randomUUID();

const conflictMessage = (requestId: string, kind: "session" | "agent") =>
  `request_id ${requestId} was already used within the last 24 hours by a different request to create ` +
  `${kind === "agent" ? "an" : "a"} ${kind}; a retry must repeat the original request exactly, and a new ${kind} needs a new request_id`;

/** A real server whose services read a clock the test moves; the database is a temporary file. */
interface ClockedServer extends RunningServer {
  readonly store: SqliteStore;
  /** The services' current time, Unix milliseconds. */
  nowMs: number;
  count(table: "sessions" | "agents" | "idempotency_keys"): number;
  close(): Promise<void>;
}

async function startClockedServer(): Promise<ClockedServer> {
  const dir = mkdtempSync(join(tmpdir(), "idempotent-create-"));
  const store = new SqliteStore(join(dir, "sessions.db"));
  await seedTestAgent(store);
  const logger = pino({ level: "silent" });
  const clocked = { nowMs: START };
  const server = await startServer({ host: "127.0.0.1", port: 0, store, logger, shutdownTimeoutMs: 2000, now: () => clocked.nowMs });
  return Object.assign(clocked, {
    ...server,
    store,
    count: (table: string) => store.db.prepare(`SELECT count(*) FROM ${table}`).pluck().get() as number,
    async close() {
      await server.stop();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  });
}

async function rpcError(promise: Promise<unknown>): Promise<ConnectError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof ConnectError) return error;
    throw error;
  }
  throw new Error("expected the call to fail");
}

describe("CreateSession with request_id", () => {
  let server: ClockedServer;
  let grpc: Client<typeof SessionService>;
  const createOverRest = (body: Record<string, unknown>) => requestJson(`${server.url}/v1/sessions`, { body });

  beforeAll(async () => {
    server = await startClockedServer();
    grpc = createClient(SessionService, createGrpcTransport({ baseUrl: server.url }));
  });
  afterAll(async () => {
    await server?.close();
  });

  it("answers a REST retry with 201, the same Location and the same body, and stores nothing more", async () => {
    const request_id = uuid();
    const body = {
      agent_id: AGENT_ID,
      title: "nightly",
      tags: ["ci"],
      capabilities: [{ capability_id: "web.search", config: { max_results: 5 } }],
      request_id,
    };
    const sessions = server.count("sessions");
    const first = await createOverRest(body);
    expect(first.status).toBe(201);
    expect(first.body.id).toMatch(SESSION_ID_PATTERN);
    server.nowMs += 1000;
    for (let i = 0; i < 3; i++) {
      const retry = await createOverRest(body);
      expect(retry.status).toBe(201);
      expect(retry.headers.get("location")).toBe(`/v1/sessions/${first.body.id}`);
      expect(retry.body).toEqual(first.body);
    }
    expect(server.count("sessions")).toBe(sessions + 1);
    const listed = await requestJson(`${server.url}/v1/sessions?page_size=1000`);
    expect(listed.body.sessions.filter((s: { title: string }) => s.title === "nightly")).toHaveLength(1);
  });

  it("answers a gRPC retry with the same session, also across protocols", async () => {
    const requestId = uuid();
    const sessions = server.count("sessions");
    const first = await grpc.createSession({ agentId: AGENT_ID, title: "over gRPC", requestId });
    const retry = await grpc.createSession({ agentId: AGENT_ID, title: "over gRPC", requestId });
    expect(retry).toStrictEqual(first);
    const overRest = await createOverRest({ agent_id: AGENT_ID, title: "over gRPC", request_id: requestId });
    expect(overRest.status).toBe(201);
    expect(overRest.body.id).toBe(first.id);
    expect(server.count("sessions")).toBe(sessions + 1);
  });

  it("treats a request_id in upper case, reordered config keys and explicit defaults as the same retry", async () => {
    const requestId = uuid();
    const first = await createOverRest({
      agent_id: AGENT_ID,
      capabilities: [{ capability_id: "shell", config: { a: 1, b: { c: [1, 2], d: "x" } } }],
      request_id: requestId,
    });
    const retry = await createOverRest({
      agentId: AGENT_ID,
      capabilities: [{ capabilityId: "shell", config: { b: { d: "x", c: [1, 2] }, a: 1 } }],
      title: "",
      tags: [],
      model_id: "",
      requestId: requestId.toUpperCase(),
    });
    expect(retry.status).toBe(201);
    expect(retry.body).toEqual(first.body);
  });

  it("answers a retry with the session as it is now, not as it was first answered", async () => {
    const request_id = uuid();
    const first = await createOverRest({ agent_id: AGENT_ID, request_id });
    server.nowMs += 5000;
    const started = await requestJson(`${server.url}/v1/sessions/${first.body.id}:start`, { body: {} });
    expect(started.status).toBe(200);
    const retry = await createOverRest({ agent_id: AGENT_ID, request_id });
    expect(retry.status).toBe(201);
    expect(retry.body).toEqual(started.body);
    expect(retry.body).toMatchObject({ id: first.body.id, status: "SESSION_STATUS_RUNNING", etag: "session-v2" });
  });

  it("answers 409 with code 6 for the same request_id with a different body, and stores nothing", async () => {
    const request_id = uuid();
    const first = await createOverRest({ agent_id: AGENT_ID, title: "one", request_id });
    expect(first.status).toBe(201);
    const sessions = server.count("sessions");
    for (const changed of [{ title: "two" }, { tags: ["x"] }, { model_id: MODEL_ID }, { capabilities: [{ capability_id: "shell" }] }]) {
      const res = await createOverRest({ agent_id: AGENT_ID, title: "one", request_id, ...changed });
      expect(res.status).toBe(409);
      expect(res.body).toEqual({ code: 6, message: conflictMessage(request_id, "session"), details: [] });
    }
    const error = await rpcError(grpc.createSession({ agentId: AGENT_ID, title: "three", requestId: request_id }));
    expect(error.code).toBe(Code.AlreadyExists);
    expect(error.rawMessage).toBe(conflictMessage(request_id, "session"));
    expect(server.count("sessions")).toBe(sessions);
  });

  it.each([
    ["not-a-uuid"],
    ["0190f3a27c417b2e9d4f3a5b6c7d8e9f"],
    ["{0190f3a2-7c41-7b2e-9d4f-3a5b6c7d8e9f}"],
    ["urn:uuid:0190f3a2-7c41-7b2e-9d4f-3a5b6c7d8e9f"],
    [" 0190f3a2-7c41-7b2e-9d4f-3a5b6c7d8e9f"],
    ["0190f3a2-7c41-7b2e-9d4f-3a5b6c7d8e9g"],
    ["0190f3a2-7c41-7b2e-9d4f-3a5b6c7d8e9f0"],
  ])("answers 400 naming request_id for the malformed request_id %j", async (request_id) => {
    const sessions = server.count("sessions");
    const res = await createOverRest({ agent_id: AGENT_ID, request_id });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({
      code: 3,
      message: REQUEST_ID_FORM,
      details: [{ "@type": BAD_REQUEST, field_violations: [{ field: "request_id", description: REQUEST_ID_FORM }] }],
    });
    expect(server.count("sessions")).toBe(sessions);
  });

  it("answers invalid_argument naming request_id over gRPC", async () => {
    const error = await rpcError(grpc.createSession({ agentId: AGENT_ID, requestId: "not-a-uuid" }));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.findDetails(BadRequestSchema)[0]!.fieldViolations.map((v) => [v.field, v.description])).toEqual([
      ["request_id", REQUEST_ID_FORM],
    ]);
  });

  it("accepts a UUID of any version, the nil UUID included", async () => {
    for (const requestId of ["00000000-0000-0000-0000-000000000000", "6ba7b810-9dad-11d1-80b4-00c04fd430c8", uuid()]) {
      const res = await createOverRest({ agent_id: AGENT_ID, request_id: requestId });
      expect(res.status).toBe(201);
    }
  });

  it("creates one session per request_id, and one per request without any", async () => {
    const sessions = server.count("sessions");
    const keyed = await Promise.all([uuid(), uuid(), uuid()].map((request_id) => createOverRest({ agent_id: AGENT_ID, request_id })));
    const unkeyed = await Promise.all([1, 2].map(() => createOverRest({ agent_id: AGENT_ID, request_id: "" })));
    const ids = [...keyed, ...unkeyed].map((res) => res.body.id);
    expect(new Set(ids).size).toBe(5);
    expect(server.count("sessions")).toBe(sessions + 5);
  });

  it("answers 50 racing retries over REST and gRPC with one session", async () => {
    const requestId = uuid();
    const sessions = server.count("sessions");
    const calls = Array.from({ length: 50 }, (_, i) =>
      i % 2 === 0
        ? createOverRest({ agent_id: AGENT_ID, title: "race", request_id: requestId }).then((res) => {
            expect(res.status).toBe(201);
            return res.body.id as string;
          })
        : grpc.createSession({ agentId: AGENT_ID, title: "race", requestId }).then((session) => session.id),
    );
    const ids = await Promise.all(calls);
    expect(new Set(ids).size).toBe(1);
    expect(ids[0]).toMatch(SESSION_ID_PATTERN);
    expect(server.count("sessions")).toBe(sessions + 1);
  });

  it("lets 50 racing requests with one request_id and two bodies create one session: the rest are retries or 409", async () => {
    const request_id = uuid();
    const sessions = server.count("sessions");
    const answers = await Promise.all(
      Array.from({ length: 50 }, (_, i) => createOverRest({ agent_id: AGENT_ID, title: i % 2 === 0 ? "even" : "odd", request_id })),
    );
    const created = answers.filter((res) => res.status === 201);
    expect(new Set(created.map((res) => res.body.id)).size).toBe(1);
    expect(new Set(created.map((res) => res.body.title)).size).toBe(1);
    expect(answers.filter((res) => res.status === 409)).toHaveLength(50 - created.length);
    expect(created.length).toBe(25);
    expect(server.count("sessions")).toBe(sessions + 1);
  });

  it("replays until the key is 24 hours old and creates anew after that", async () => {
    const request_id = uuid();
    const created = server.nowMs;
    const first = await createOverRest({ agent_id: AGENT_ID, request_id });
    server.nowMs = created + DAY_MS;
    expect((await createOverRest({ agent_id: AGENT_ID, request_id })).body.id).toBe(first.body.id);
    server.nowMs = created + DAY_MS + 1;
    const sessions = server.count("sessions");
    const fresh = await createOverRest({ agent_id: AGENT_ID, request_id });
    expect(fresh.status).toBe(201);
    expect(fresh.body.id).not.toBe(first.body.id);
    expect(server.count("sessions")).toBe(sessions + 1);
    // The key now names the new session, for another 24 hours; a different body is no longer a conflict with the old one.
    expect((await createOverRest({ agent_id: AGENT_ID, request_id })).body.id).toBe(fresh.body.id);
  });

  it("answers 404 for a retry whose session was deleted since, and does not create it again", async () => {
    const request_id = uuid();
    const first = await createOverRest({ agent_id: AGENT_ID, request_id });
    expect((await requestJson(`${server.url}/v1/sessions/${first.body.id}`, { method: "DELETE" })).status).toBe(200);
    const sessions = server.count("sessions");
    const retry = await createOverRest({ agent_id: AGENT_ID, request_id });
    expect(retry.status).toBe(404);
    expect(retry.body).toEqual({
      code: 5,
      message: `session ${first.body.id}, created earlier with request_id ${request_id}, has since been deleted`,
      details: [],
    });
    expect(server.count("sessions")).toBe(sessions);
  });

  it("records no key when the agent does not exist, so a retry after creating the agent succeeds", async () => {
    const request_id = uuid();
    const missing = "agent_ffffffffffffffffffffffffffffffff";
    const keys = server.count("idempotency_keys");
    const res = await createOverRest({ agent_id: missing, request_id });
    expect(res.status).toBe(400);
    expect(server.count("idempotency_keys")).toBe(keys);
    await seedTestAgent(server.store, missing);
    const retry = await createOverRest({ agent_id: missing, request_id });
    expect(retry.status).toBe(201);
  });
});

describe("CreateAgent with request_id", () => {
  let server: ClockedServer;
  let grpc: Client<typeof AgentService>;
  const createOverRest = (body: Record<string, unknown>) => requestJson(`${server.url}/v1/agents`, { body });

  beforeAll(async () => {
    server = await startClockedServer();
    grpc = createClient(AgentService, createGrpcTransport({ baseUrl: server.url }));
  });
  afterAll(async () => {
    await server?.close();
  });

  it("answers a retry with 201, the same Location and body; a changed body with 409; a bad id with 400", async () => {
    const request_id = uuid();
    const agents = server.count("agents");
    const body = { name: "planner", default_model_id: MODEL_ID, capabilities: [{ capability_id: "shell", config: { x: 1 } }], request_id };
    const first = await createOverRest(body);
    expect(first.status).toBe(201);
    const retry = await createOverRest(body);
    expect(retry.status).toBe(201);
    expect(retry.headers.get("location")).toBe(`/v1/agents/${first.body.id}`);
    expect(retry.body).toEqual(first.body);
    const changed = await createOverRest({ ...body, name: "reviewer" });
    expect(changed.status).toBe(409);
    expect(changed.body).toEqual({ code: 6, message: conflictMessage(request_id, "agent"), details: [] });
    const malformed = await createOverRest({ ...body, request_id: "42" });
    expect(malformed.status).toBe(400);
    expect(malformed.body.details[0].field_violations).toEqual([{ field: "request_id", description: REQUEST_ID_FORM }]);
    expect(server.count("agents")).toBe(agents + 1);
  });

  it("answers 50 racing retries over REST and gRPC with one agent", async () => {
    const requestId = uuid();
    const agents = server.count("agents");
    const ids = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        i % 2 === 0
          ? createOverRest({ name: "racer", default_model_id: MODEL_ID, request_id: requestId }).then((res) => res.body.id as string)
          : grpc.createAgent({ name: "racer", defaultModelId: MODEL_ID, requestId }).then((agent) => agent.id),
      ),
    );
    expect(new Set(ids).size).toBe(1);
    expect(server.count("agents")).toBe(agents + 1);
  });

  it("keeps request_ids of CreateAgent and CreateSession apart", async () => {
    const request_id = uuid();
    const agent = await createOverRest({ name: "shared id", default_model_id: MODEL_ID, request_id });
    expect(agent.status).toBe(201);
    const session = await requestJson(`${server.url}/v1/sessions`, { body: { agent_id: agent.body.id, request_id } });
    expect(session.status).toBe(201);
    expect(session.body.id).toMatch(SESSION_ID_PATTERN);
  });

  it("creates anew once the key is more than 24 hours old", async () => {
    const request_id = uuid();
    const first = await createOverRest({ name: "aging", default_model_id: MODEL_ID, request_id });
    server.nowMs += DAY_MS + 1;
    const fresh = await createOverRest({ name: "aging", default_model_id: MODEL_ID, request_id });
    expect(fresh.status).toBe(201);
    expect(fresh.body.id).not.toBe(first.body.id);
  });
});

describe("request_id across organisations", () => {
  const ORG_A = "org_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
  const ORG_B = "org_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
  const AGENT_A = "agent_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
  const AGENT_B = "agent_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
  let server: ClockedServer;
  let keyA: string;
  let keyB: string;

  beforeAll(async () => {
    server = await startClockedServer();
    await seedTestAgent(server.store, AGENT_A, ORG_A);
    await seedTestAgent(server.store, AGENT_B, ORG_B);
    for (const [org, set] of [[ORG_A, (k: string) => (keyA = k)], [ORG_B, (k: string) => (keyB = k)]] as const) {
      const { record, key } = generateApiKey(org, "idempotency test", Date.now());
      await server.store.insertKey(record);
      set(key);
    }
  });
  afterAll(async () => {
    await server?.close();
  });

  const create = (key: string, body: Record<string, unknown>) =>
    requestJson(`${server.url}/v1/sessions`, { body, headers: { authorization: `Bearer ${key}` } });

  it("keeps the same request_id of two organisations independent, even with different bodies", async () => {
    const request_id = uuid();
    const a = await create(keyA, { agent_id: AGENT_A, title: "a", request_id });
    const b = await create(keyB, { agent_id: AGENT_B, title: "b", request_id });
    expect(a.status).toBe(201);
    expect(b.status).toBe(201);
    expect(b.body.id).not.toBe(a.body.id);
    expect(b.body.org_id).toBe(ORG_B);
    expect((await create(keyA, { agent_id: AGENT_A, title: "a", request_id })).body.id).toBe(a.body.id);
    expect((await create(keyB, { agent_id: AGENT_B, title: "b", request_id })).body.id).toBe(b.body.id);
  });

  it("does not let another organisation's retry reveal or return a session", async () => {
    const request_id = uuid();
    const a = await create(keyA, { agent_id: AGENT_A, request_id });
    // The same body from B names A's agent, which B cannot see: not a replay of A's session.
    const b = await create(keyB, { agent_id: AGENT_A, request_id });
    expect(b.status).toBe(400);
    expect(b.body.message).toBe(`Invalid agent ID: agent ${AGENT_A} does not exist`);
    expect(JSON.stringify(b.body)).not.toContain(a.body.id);
  });
});

describe("SqliteStore: idempotency keys", () => {
  let dir: string;
  let store: SqliteStore;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "idempotency-store-"));
    store = new SqliteStore(join(dir, "sessions.db"));
  });
  afterAll(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const session = (id: string, orgId: string, agentId: string, createdAt: number): SessionRecord =>
    storedSession(id, createdAt, { orgId, agentId });
  const key = (requestId: string, hash: number, expiredBefore: number): IdempotencyKey => ({
    method: "sessions.v1.SessionService/CreateSession",
    requestId,
    requestHash: new Uint8Array(32).fill(hash),
    expiredBefore,
  });

  it("inserts, replays, refuses a different hash, and keys each organisation apart", async () => {
    await seedTestAgent(store, AGENT_ID, "org_1");
    await seedTestAgent(store, "agent_00000000000000000000000000000002", "org_2");
    const id = (n: number) => `session_${n.toString(16).padStart(32, "0")}`;
    const requestId = uuid();
    expect(await store.insertSession(session(id(1), "org_1", AGENT_ID, 1000), key(requestId, 1, 0))).toEqual({ outcome: "inserted" });
    const replay = await store.insertSession(session(id(2), "org_1", AGENT_ID, 2000), key(requestId, 1, 0));
    expect(replay).toMatchObject({ outcome: "replayed", record: { id: id(1), createdAt: 1000 } });
    expect(await store.insertSession(session(id(3), "org_1", AGENT_ID, 3000), key(requestId, 2, 0))).toEqual({ outcome: "conflict" });
    expect(
      await store.insertSession(session(id(4), "org_2", "agent_00000000000000000000000000000002", 4000), key(requestId, 2, 0)),
    ).toEqual({ outcome: "inserted" });
    expect(await store.findSession("org_1", id(2))).toBeUndefined();
    expect(await store.findSession("org_1", id(3))).toBeUndefined();
    // Expired (created before expiredBefore): replaced in place by a new insert, whatever its hash.
    expect(await store.insertSession(session(id(5), "org_1", AGENT_ID, 5000), key(requestId, 3, 1001))).toEqual({ outcome: "inserted" });
    expect(await store.insertSession(session(id(6), "org_1", AGENT_ID, 6000), key(requestId, 3, 1001))).toMatchObject({
      outcome: "replayed",
      record: { id: id(5) },
    });
    expect(store.db.prepare("SELECT count(*) FROM idempotency_keys WHERE request_id = ?").pluck().get(requestId)).toBe(2);
  });
});
