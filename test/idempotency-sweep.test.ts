import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../src/server.js";
import { SqliteStore, type SqliteStoreOptions } from "../src/store/sqlite.js";
import type { AgentRecord, IdempotencyKey } from "../src/store/store.js";
import { AGENT_ID, MODEL_ID, requestJson, seedTestAgent } from "./helpers/server.js";
import { until } from "./helpers/until.js";

/**
 * The idempotency table is swept of expired keys by a timer, with no keyed create needed to
 * trigger it, and holds at most a bounded number of keys per organisation: past the bound
 * the oldest keys of that organisation are dropped (their retry window ends early), never
 * another organisation's.
 */

const DAY_MS = 24 * 60 * 60 * 1000;
const START = Date.parse("2030-01-01T00:00:00.000Z");
const OTHER_ORG = "org_0000000000000000000000000000000b";
const uuid = () => crypto.randomUUID();

interface ClockedServer extends RunningServer {
  readonly store: SqliteStore;
  nowMs: number;
  keys(orgId?: string): number;
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function startClockedServer(storeOptions: SqliteStoreOptions = {}, sweepIntervalMs = 50): Promise<ClockedServer> {
  const dir = mkdtempSync(join(tmpdir(), "idempotency-sweep-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const store = new SqliteStore(join(dir, "sessions.db"), storeOptions);
  cleanups.push(() => store.close());
  await seedTestAgent(store);
  const clocked = { nowMs: START };
  const server = await startServer({
    host: "127.0.0.1",
    port: 0,
    store,
    logger: pino({ level: "silent" }),
    shutdownTimeoutMs: 2000,
    now: () => clocked.nowMs,
    idempotencySweepIntervalMs: sweepIntervalMs,
  });
  cleanups.push(() => server.stop());
  const count = store.db.prepare("SELECT count(*) FROM idempotency_keys WHERE @org IS NULL OR org_id = @org").pluck();
  return Object.assign(clocked, { ...server, store, keys: (orgId?: string) => count.get({ org: orgId ?? null }) as number });
}

function agentKey(requestId: string, nowMs: number): IdempotencyKey {
  return {
    method: "sessions.v1.AgentService/CreateAgent",
    requestId,
    requestHash: new Uint8Array(32),
    expiredBefore: nowMs - DAY_MS,
  };
}

function agentRecord(orgId: string, i: number, nowMs: number): AgentRecord {
  const id = `agent_${String(i).padStart(32, "0")}`;
  return { id, orgId, name: `agent ${i}`, defaultModelId: MODEL_ID, capabilities: [], createdAt: nowMs, updatedAt: nowMs, version: 1 };
}

describe("the sweep timer", () => {
  it("deletes expired keys with no keyed create to trigger it, and keeps live ones, which still replay", async () => {
    const server = await startClockedServer();
    const create = (body: Record<string, unknown>) => requestJson(`${server.url}/v1/sessions`, { body });
    const old = [uuid(), uuid(), uuid()];
    for (const request_id of old) expect((await create({ agent_id: AGENT_ID, request_id })).status).toBe(201);
    server.nowMs += DAY_MS / 2;
    const liveRequest = { agent_id: AGENT_ID, request_id: uuid() };
    const live = await create(liveRequest);
    expect(server.keys()).toBe(4);

    server.nowMs = START + DAY_MS + 1;
    await until(() => server.keys() === 1, "the expired keys to be swept", 3000);
    const replay = await create(liveRequest);
    expect({ status: replay.status, id: replay.body.id }).toStrictEqual({ status: 201, id: live.body.id });
    expect(server.store.db.prepare("SELECT request_id FROM idempotency_keys").pluck().all()).toStrictEqual([liveRequest.request_id]);
  });

  it("drains a large backlog in bounded transactions, a few per tick, without blocking requests", async () => {
    const server = await startClockedServer();
    const insert = server.store.db.prepare(
      "INSERT INTO idempotency_keys (org_id, method, request_id, request_hash, resource_id, created_at) VALUES (?, 'm', ?, zeroblob(32), 'session_x', ?)",
    );
    server.store.db.transaction(() => {
      for (let i = 0; i < 5000; i++) insert.run(`org_backlog_${i % 3}`, uuid(), START - DAY_MS - 1 - i);
    })();
    expect(server.keys()).toBe(5000);
    await until(() => server.keys() === 0, "the backlog to be swept", 5000);
  });

  it("sweeps through the store at most `limit` rows at a time, oldest first", async () => {
    const dir = mkdtempSync(join(tmpdir(), "idempotency-sweep-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const store = new SqliteStore(join(dir, "sessions.db"));
    cleanups.push(() => store.close());
    for (let i = 0; i < 25; i++) await store.insertAgent(agentRecord(OTHER_ORG, i, START + i), agentKey(uuid(), START + i));
    expect(await store.sweepIdempotencyKeys(START + 20, 8)).toBe(8);
    expect(await store.sweepIdempotencyKeys(START + 20, 8)).toBe(8);
    expect(await store.sweepIdempotencyKeys(START + 20, 8)).toBe(4);
    expect(await store.sweepIdempotencyKeys(START + 20, 8)).toBe(0);
    expect(store.db.prepare("SELECT min(created_at) FROM idempotency_keys").pluck().get()).toBe(START + 20);
  });
});

describe("the bound on keys per organisation", () => {
  it("keeps the newest keys of an organisation that creates and deletes in a loop, and leaves other organisations' keys alone", async () => {
    const server = await startClockedServer({ idempotencyKeysPerOrg: 20 });
    const theirs = [uuid(), uuid(), uuid()];
    for (const [i, requestId] of theirs.entries()) {
      await server.store.insertAgent(agentRecord(OTHER_ORG, i + 1, server.nowMs), agentKey(requestId, server.nowMs));
    }

    const requestIds: string[] = [];
    for (let i = 0; i < 100; i++) {
      server.nowMs += 1000;
      const request_id = uuid();
      requestIds.push(request_id);
      const created = await requestJson(`${server.url}/v1/sessions`, { body: { agent_id: AGENT_ID, request_id } });
      expect(created.status).toBe(201);
      expect((await requestJson(`${server.url}/v1/sessions/${created.body.id}`, { method: "DELETE" })).status).toBe(200);
    }
    const ours = server.store.db.prepare("SELECT org_id FROM sessions").pluck().all();
    expect({ ours: server.keys("org_00000000000000000000000000000001"), theirs: server.keys(OTHER_ORG), sessions: ours }).toStrictEqual({
      ours: 20,
      theirs: 3,
      sessions: [],
    });

    // The newest 20 are remembered (their sessions were deleted: 404), the older ones forgotten (created anew).
    const retry = (request_id: string) => requestJson(`${server.url}/v1/sessions`, { body: { agent_id: AGENT_ID, request_id } });
    expect((await retry(requestIds[99]!)).status).toBe(404);
    expect((await retry(requestIds[80]!)).status).toBe(404);
    expect((await retry(requestIds[79]!)).status).toBe(201);
    // Still the other organisation's retries replay.
    const replay = await server.store.insertAgent(agentRecord(OTHER_ORG, 99, server.nowMs), agentKey(theirs[0]!, server.nowMs));
    expect(replay.outcome).toBe("replayed");
    expect(server.keys("org_00000000000000000000000000000001")).toBe(20);
  });
});
