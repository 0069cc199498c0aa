import { copyFileSync, mkdtempSync, renameSync, rmSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterEach, describe, expect, it } from "vitest";
import { SessionService } from "../gen/sessions/v1/session_service_pb.js";
import { SqliteStore } from "../src/store/sqlite.js";
import { AGENT_ID, requestJson, startTestServer, type TestServer } from "./helpers/server.js";
import { readCommitted } from "./helpers/database-checks.js";
import { runKeysCommand } from "./helpers/keys.js";
import { spawnServer, type ServerProcess } from "./helpers/process.js";
import { until } from "./helpers/until.js";

/**
 * A WAL or database file deleted or replaced under the running server is noticed within
 * seconds, by comparing each path's (device, inode) with the file the server opened: the
 * server logs an error naming the file and refuses every write with `unavailable` until it
 * restarts, rather than answering writes that only a deleted file holds. Reads go on.
 */

const REFUSED = "storage was replaced or removed while in use; writes are refused until the server restarts";
const FAULT_LOG = "storage file replaced or removed: writes are refused until the server restarts";
const LEAK = /SQLITE|database|disk|sessions\.db|\/tmp|sessions-replaced/i;

const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function start(): Promise<{ server: TestServer; dbPath: string }> {
  const dir = mkdtempSync(join(tmpdir(), "sessions-replaced-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const dbPath = join(dir, "sessions.db");
  const server = await startTestServer({ store: new SqliteStore(dbPath), dbPath, seedAgent: true });
  cleanups.push(() => server.close());
  return { server, dbPath };
}

const faultLogs = (server: TestServer) => server.logs.filter((line) => line.msg === FAULT_LOG);

async function expectWritesRefused(server: TestServer, sessionId: string): Promise<void> {
  const created = await requestJson(`${server.url}/v1/sessions`, { body: { agent_id: AGENT_ID, title: "refused" } });
  expect({ status: created.status, body: created.body }).toStrictEqual({
    status: 503,
    body: { code: Code.Unavailable, message: REFUSED, details: [] },
  });
  const usage = await requestJson(`${server.url}/v1/sessions/${sessionId}:recordUsage`, { body: { input_tokens: "5" } });
  expect(usage.status).toBe(503);
  const client = createClient(SessionService, createGrpcTransport({ baseUrl: server.url }));
  const error = await client.createSession({ agentId: AGENT_ID, title: "refused over gRPC" }).then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(ConnectError);
  expect({ code: (error as ConnectError).code, message: (error as ConnectError).rawMessage }).toStrictEqual({
    code: Code.Unavailable,
    message: REFUSED,
  });
  expect(JSON.stringify(created.body) + [...created.headers].join("\n")).not.toMatch(LEAK);
}

describe("the WAL deleted under the running server", () => {
  it("is logged within seconds with no write needed, then writes answer 503 and reads and /healthz go on, /readyz says why", async () => {
    const { server, dbPath } = await start();
    const created = await requestJson(`${server.url}/v1/sessions`, { body: { agent_id: AGENT_ID, title: "before" } });
    expect(created.status).toBe(201);

    unlinkSync(`${dbPath}-wal`);
    await until(() => faultLogs(server).length > 0, "the fault to be logged", 5000);
    expect(faultLogs(server)).toMatchObject([{ level: 50, file: `${dbPath}-wal`, change: "removed" }]);

    await expectWritesRefused(server, created.body.id);
    const got = await requestJson(`${server.url}/v1/sessions/${created.body.id}`);
    expect({ status: got.status, body: got.body }).toStrictEqual({ status: 200, body: created.body });
    const ready = await fetch(`${server.url}/readyz`);
    expect({ status: ready.status, body: await ready.json() }).toStrictEqual({
      status: 503,
      body: { status: "unavailable", reason: REFUSED },
    });
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    // Logged once, not once per check.
    await new Promise((resolve) => setTimeout(resolve, 1200));
    expect(faultLogs(server)).toHaveLength(1);
  });
});

describe("the database file replaced by a copy under the running server", () => {
  it("is noticed at the next write, which is refused, and logged naming the file", async () => {
    const { server, dbPath } = await start();
    const created = await requestJson(`${server.url}/v1/sessions`, { body: { agent_id: AGENT_ID, title: "before" } });
    copyFileSync(dbPath, `${dbPath}.copy`);
    renameSync(`${dbPath}.copy`, dbPath);
    // Past the write path's throttle of its file checks.
    await new Promise((resolve) => setTimeout(resolve, 100));
    await expectWritesRefused(server, created.body.id);
    expect(faultLogs(server)).toMatchObject([{ level: 50, file: dbPath, change: "replaced" }]);
  });
});

describe("a second process on the live file (the keys command)", () => {
  it("is no fault: its open and close leave the server's files in place, and writes go on", async () => {
    const { server, dbPath } = await start();
    const keys = await runKeysCommand(["list", "--db", dbPath]);
    expect(keys.code).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 1200));
    expect((await requestJson(`${server.url}/v1/sessions`, { body: { agent_id: AGENT_ID } })).status).toBe(201);
    expect(faultLogs(server)).toStrictEqual([]);
  });
});

describe("npm start, the WAL deleted during writes, then kill -9", () => {
  it("refuses writes within seconds, and every write it answered is still there after a restart", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sessions-replaced-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const dbPath = join(dir, "sessions.db");
    let server: ServerProcess = await spawnServer(["--port", "0", "--db", dbPath]);
    cleanups.push(() => void (server.child.exitCode === null && process.kill(-server.child.pid!, "SIGKILL")));
    const agent = await requestJson(`${server.url}/v1/agents`, { body: { name: "a", default_model_id: "model_fedcba9876543210fedcba9876543210" } });
    expect(agent.status).toBe(201);
    const target = await requestJson(`${server.url}/v1/sessions`, { body: { agent_id: agent.body.id } });

    const answered: string[] = [];
    let tokens = 0n;
    let deletedAt = 0;
    let refusedAt = 0;
    // Sixteen writers at a time until writes are refused (or 8 s have passed).
    const writer = async () => {
      while (refusedAt === 0 && Date.now() - (deletedAt || Date.now()) < 8000) {
        const [created, usage] = await Promise.all([
          requestJson(`${server.url}/v1/sessions`, { body: { agent_id: agent.body.id } }),
          requestJson(`${server.url}/v1/sessions/${target.body.id}:recordUsage`, { body: { input_tokens: "1" } }),
        ]);
        if (created.status === 201) answered.push(created.body.id);
        if (usage.status === 200) tokens += 1n;
        if (created.status === 503 || usage.status === 503) refusedAt ||= Date.now();
      }
    };
    const writers = Array.from({ length: 16 }, writer);
    await until(() => answered.length >= 50, "some writes before the deletion", 10_000);
    unlinkSync(`${dbPath}-wal`);
    deletedAt = Date.now();
    await Promise.all(writers);
    expect(refusedAt, "writes were still answered 8 s after the WAL was deleted").toBeGreaterThan(0);
    expect(refusedAt - deletedAt).toBeLessThan(3000);
    expect(server.stderr()).toContain(FAULT_LOG);
    expect(server.stderr()).toContain(`"file":"${dbPath}-wal"`);

    process.kill(-server.child.pid!, "SIGKILL");
    await server.exited;
    server = await spawnServer(["--port", "0", "--db", dbPath]);
    const ready = await fetch(`${server.url}/readyz`);
    expect(ready.status).toBe(200);
    process.kill(-server.child.pid!, "SIGTERM");
    await server.exited;
    const state = readCommitted(dbPath);
    const missing = answered.filter((id) => !state.sessions.has(id));
    expect({ missing, integrity: state.integrity }).toStrictEqual({ missing: [], integrity: "ok" });
    expect(state.sessions.get(target.body.id)!.inputTokens).toBeGreaterThanOrEqual(tokens);
  }, 30_000);
});
