import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { SqliteStore } from "../src/store/sqlite.js";
import { DEFAULT_ORG_ID, MODEL_ID, requestJson } from "./helpers/server.js";
import { runServerCommand, spawnServer, type ServerProcess } from "./helpers/process.js";
import { insertTestKey, type TestKey } from "./helpers/keys.js";

/**
 * Open mode through `npm start`: with no API keys the server serves everyone as the
 * default organisation, so it starts so only on a loopback address unless told
 * --insecure-open. Servers bound to 0.0.0.0 are reached on 127.0.0.1 only.
 */

const ORG_ID = "org_" + "f".repeat(32);
const REFUSAL_0000 =
  "error: refusing to listen on 0.0.0.0 with no API keys: anyone who can reach it would act as the default organisation. " +
  "Create a key (npm run keys -- create --org org_<32 hex>), listen on 127.0.0.1, or pass --insecure-open";
const INSECURE_WARNING = "warning: --insecure-open: serving without API keys on a network address";
/** Keeps a value of INSECURE_OPEN in the test runner's own environment out of the server's. */
const NOT_INSECURE = { INSECURE_OPEN: "false" };

const dirs: string[] = [];
const running: ServerProcess[] = [];

function tempDb(): string {
  const dir = mkdtempSync(join(tmpdir(), "sessions-open-"));
  dirs.push(dir);
  return join(dir, "sessions.db");
}

async function start(args: string[], env: Record<string, string> = NOT_INSECURE): Promise<ServerProcess> {
  const server = await spawnServer(args, env);
  running.push(server);
  return server;
}

/** Stops a server as an operator would and expects a clean exit. */
async function stop(server: ServerProcess): Promise<void> {
  process.kill(-server.child.pid!, "SIGTERM");
  expect(await server.exited).toBe(0);
}

/** The server's address on this machine's loopback interface, whatever it was bound to. */
const loopbackUrl = (server: ServerProcess) => `http://127.0.0.1:${new URL(server.url).port}`;

async function keysIn(db: string): Promise<number> {
  const store = new SqliteStore(db);
  try {
    return (await store.listKeys()).length;
  } finally {
    await store.close();
  }
}

async function withKey(db: string): Promise<TestKey> {
  const store = new SqliteStore(db);
  try {
    return await insertTestKey(store, ORG_ID, "open-mode test");
  } finally {
    await store.close();
  }
}

/** Creates an agent as the caller the headers make; answers its status and org_id. */
async function createAgent(server: ServerProcess, headers: Record<string, string> = {}): Promise<[number, string | undefined]> {
  const res = await requestJson(`${loopbackUrl(server)}/v1/agents`, { body: { name: "open", default_model_id: MODEL_ID }, headers });
  return [res.status, res.body.org_id];
}

const stderrLines = (text: string) => text.split("\n").filter((line) => line !== "");
/** Lines of stderr that are not pino's JSON log lines. */
const plainStderr = (text: string) => stderrLines(text).filter((line) => !line.startsWith("{"));

afterEach(() => {
  for (const server of running.splice(0)) {
    if (server.child.exitCode !== null || server.child.signalCode !== null) continue;
    try {
      process.kill(-server.child.pid!, "SIGKILL");
    } catch {
      // the group ended between the check and the kill
    }
  }
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe("open mode through npm start", () => {
  it("refuses --host 0.0.0.0 with no API keys: exit 2, one line saying why, nothing listening", async () => {
    const db = tempDb();
    const result = await runServerCommand(["--host", "0.0.0.0", "--port", "0", "--db", db], NOT_INSECURE);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe("");
    expect(stderrLines(result.stderr)[0]).toBe(REFUSAL_0000);
    expect(stderrLines(result.stderr)).toEqual([REFUSAL_0000]);
    expect(await keysIn(db)).toBe(0);
  });

  it("refuses every other non-loopback address too, naming it", async () => {
    for (const host of ["::", "localhost.example"]) {
      const result = await runServerCommand(["--host", host, "--port", "0", "--db", tempDb()], NOT_INSECURE);
      expect([host, result.code, stderrLines(result.stderr)[0]?.startsWith(`error: refusing to listen on ${host} with no API keys:`)]).toEqual([
        host,
        2,
        true,
      ]);
    }
  });

  it("starts on 0.0.0.0 with --insecure-open, warns on stderr, and serves everyone as the default organisation", async () => {
    const server = await start(["--host", "0.0.0.0", "--port", "0", "--db", tempDb(), "--insecure-open"]);
    expect(server.url).toMatch(/^http:\/\/0\.0\.0\.0:\d+$/);
    expect(plainStderr(server.stderr())).toEqual([INSECURE_WARNING]);
    expect(await createAgent(server)).toEqual([201, DEFAULT_ORG_ID]);
    expect(await createAgent(server, { authorization: "Bearer garbage" })).toEqual([201, DEFAULT_ORG_ID]);
    await stop(server);
  });

  it("starts on 0.0.0.0 with INSECURE_OPEN=true in the environment, with the same warning", async () => {
    const server = await start(["--host", "0.0.0.0", "--port", "0", "--db", tempDb()], { INSECURE_OPEN: "true" });
    expect(plainStderr(server.stderr())).toEqual([INSECURE_WARNING]);
    expect(await createAgent(server)).toEqual([201, DEFAULT_ORG_ID]);
    await stop(server);
  });

  it("starts on 0.0.0.0 without the flag once the database holds a key, and then requires it", async () => {
    const db = tempDb();
    const key = await withKey(db);
    const server = await start(["--host", "0.0.0.0", "--port", "0", "--db", db]);
    expect(plainStderr(server.stderr())).toEqual([]);
    const refused = await requestJson(`${loopbackUrl(server)}/v1/agents`);
    expect([refused.status, refused.headers.get("www-authenticate"), refused.body]).toEqual([
      401,
      'Bearer realm="sessions"',
      { code: 16, message: "missing API key: send Authorization: Bearer <key>", details: [] },
    ]);
    expect(await createAgent(server, { authorization: `Bearer ${key.key}` })).toEqual([201, ORG_ID]);
    await stop(server);
  });

  it("starts in open mode on 127.0.0.1 with no keys, without a warning", async () => {
    const server = await start(["--host", "127.0.0.1", "--port", "0", "--db", tempDb()]);
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(plainStderr(server.stderr())).toEqual([]);
    expect(await createAgent(server)).toEqual([201, DEFAULT_ORG_ID]);
    expect(await createAgent(server, { authorization: "Bearer garbage" })).toEqual([201, DEFAULT_ORG_ID]);
    await stop(server);
  });
});
