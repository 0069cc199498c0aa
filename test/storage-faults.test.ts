import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterEach, describe, expect, it } from "vitest";
import { SessionService } from "../gen/sessions/v1/session_service_pb.js";
import { SqliteStore } from "../src/store/sqlite.js";
import { AGENT_ID, requestJson, startTestServer, type TestServer } from "./helpers/server.js";
import { readCommitted } from "./helpers/database-checks.js";
import { canMakeImmutable } from "./helpers/immutable-file.js";

/**
 * Storage faults caused for real with SQLite itself (max_page_count, query_only, a lock
 * held by a second connection) or the file system (an immutable WAL), then removed: the
 * server answers `unavailable` with a clean message while the fault lasts, and recovers
 * once it is gone.
 */

const MESSAGES = {
  full: "storage is full; try again later",
  readOnly: "storage is read-only; try again later",
  io: "storage could not read or write; try again later",
  busy: "storage is busy; try again later",
} as const;

/** Anything of the real error in what a client sees: SQLite's words, SQL, a path. */
const LEAK = /SQLITE|database|disk|locked|readonly|I\/O|INSERT|UPDATE|\/tmp|sessions-faults/i;

const BUSY_TIMEOUT_MS = 100;
const TAGS = Array.from({ length: 32 }, (_, i) => `tag-${String(i).padStart(2, "0")}`.padEnd(64, "x"));

interface Fixture {
  readonly server: TestServer;
  /** The server's own connection, to cause faults on. */
  readonly db: Database.Database;
  readonly dbPath: string;
  readonly client: Client<typeof SessionService>;
}

const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function start(): Promise<Fixture> {
  const dir = mkdtempSync(join(tmpdir(), "sessions-faults-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const dbPath = join(dir, "sessions.db");
  const store = new SqliteStore(dbPath, { busyTimeoutMs: BUSY_TIMEOUT_MS });
  const server = await startTestServer({ store, dbPath, seedAgent: true });
  cleanups.push(() => server.close());
  const client = createClient(SessionService, createGrpcTransport({ baseUrl: server.url }));
  return { server, db: store.db, dbPath, client };
}

function createOverRest(f: Fixture, title: string, tags: readonly string[] = TAGS) {
  return requestJson(`${f.server.url}/v1/sessions`, { body: { agent_id: AGENT_ID, title, tags } });
}

function recordUsageOverRest(f: Fixture, id: string, inputTokens: number) {
  return requestJson(`${f.server.url}/v1/sessions/${id}:recordUsage`, { body: { input_tokens: String(inputTokens) } });
}

function expect503(response: { status: number; body: unknown; headers: Headers }, message: string): void {
  expect({ status: response.status, body: response.body }).toStrictEqual({
    status: 503,
    body: { code: Code.Unavailable, message, details: [] },
  });
  expect([...response.headers].join("\n")).not.toMatch(LEAK);
}

async function expectRpcUnavailable(call: Promise<unknown>, message: string): Promise<void> {
  const error = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ConnectError);
  const { code, rawMessage, details, metadata } = error as ConnectError;
  expect({ code, rawMessage, details }).toStrictEqual({ code: Code.Unavailable, rawMessage: message, details: [] });
  expect([...metadata].join("\n")).not.toMatch(LEAK);
}

/** The server's log lines about unavailable storage since `from`. */
function unavailableLogs(f: Fixture, from: number) {
  return f.server.logs.slice(from).filter((line) => line.msg === "storage unavailable");
}

/** Sessions in the file, with tag rows that match them and a sound file. */
function expectCommittedIds(f: Fixture, ids: readonly string[]): void {
  const state = readCommitted(f.dbPath);
  expect([...state.sessions.keys()].sort()).toStrictEqual([...ids].sort());
  expect({ integrity: state.integrity, tagsWithoutRow: state.tagsWithoutRow, rowsWithoutTag: state.rowsWithoutTag }).toStrictEqual({
    integrity: "ok",
    tagsWithoutRow: 0,
    rowsWithoutTag: 0,
  });
}

describe("a full disk (max_page_count at the file's size)", () => {
  it("refuses creates with unavailable over REST and gRPC, keeps reads working, half-writes nothing, and creates again once there is room", async () => {
    const f = await start();
    const first = await createOverRest(f, "before the disk fills");
    expect(first.status).toBe(201);
    const ids = [first.body.id as string];

    const unlimited = f.db.pragma("max_page_count", { simple: true }) as number;
    f.db.pragma(`max_page_count = ${f.db.pragma("page_count", { simple: true }) as number}`);
    const logsBefore = f.server.logs.length;
    // Leaf pages still have room for a few rows: fill them until a create needs a new page.
    let refused: Awaited<ReturnType<typeof createOverRest>> | undefined;
    for (let i = 0; i < 200 && !refused; i++) {
      const response = await createOverRest(f, `filling ${i} `.padEnd(256, "."));
      if (response.status === 201) ids.push(response.body.id as string);
      else refused = response;
    }
    expect(refused, "no create was refused in 200 tries").toBeDefined();
    expect503(refused!, MESSAGES.full);
    await expectRpcUnavailable(f.client.createSession({ agentId: AGENT_ID, title: "refused over gRPC", tags: TAGS }), MESSAGES.full);

    // The real error reaches the log, once per refusal, with SQLite's own words.
    const logged = unavailableLogs(f, logsBefore);
    expect(logged).toHaveLength(2);
    expect(logged[0]).toMatchObject({
      level: 50,
      procedure: "/sessions.v1.SessionService/CreateSession",
      err: {
        type: "StoreUnavailableError",
        reason: "full",
        message: `${MESSAGES.full}: database or disk is full`,
        stack: expect.stringContaining("caused by: SqliteError: database or disk is full"),
      },
    });

    // Reads go on, over both.
    const got = await requestJson(`${f.server.url}/v1/sessions/${first.body.id}`);
    expect({ status: got.status, body: got.body }).toStrictEqual({ status: 200, body: first.body });
    expect((await requestJson(`${f.server.url}/v1/sessions?page_size=5`)).status).toBe(200);
    expect((await f.client.getSession({ id: first.body.id })).title).toBe("before the disk fills");

    // Nothing of the refused creates is in the file: no session row, no tag row.
    expectCommittedIds(f, ids);

    f.db.pragma(`max_page_count = ${unlimited}`);
    const again = await createOverRest(f, "after room was made");
    expect(again.status).toBe(201);
    const overRpc = await f.client.createSession({ agentId: AGENT_ID, title: "after room was made, over gRPC", tags: TAGS });
    expectCommittedIds(f, [...ids, again.body.id, overRpc.id]);
  });
});

describe("a read-only database (query_only)", () => {
  it("refuses every write with unavailable, serves reads unchanged, and applies writes again once writable", async () => {
    const f = await start();
    const created = await createOverRest(f, "read-only soon", ["a", "b"]);
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    const counted = await recordUsageOverRest(f, id, 10);
    expect(counted.status).toBe(200);

    f.db.pragma("query_only = ON");
    expect503(await createOverRest(f, "refused", ["a"]), MESSAGES.readOnly);
    expect503(await recordUsageOverRest(f, id, 1000), MESSAGES.readOnly);
    await expectRpcUnavailable(f.client.recordUsage({ id, inputTokens: 1000n }), MESSAGES.readOnly);
    await expectRpcUnavailable(f.client.createSession({ agentId: AGENT_ID, title: "refused" }), MESSAGES.readOnly);
    await expectRpcUnavailable(f.client.cancelSession({ id }), MESSAGES.readOnly);

    const got = await requestJson(`${f.server.url}/v1/sessions/${id}`);
    expect({ status: got.status, body: got.body }).toStrictEqual({ status: 200, body: counted.body });
    const listed = await requestJson(`${f.server.url}/v1/sessions`);
    expect(listed.status).toBe(200);
    expect(listed.body.sessions).toStrictEqual([counted.body]);
    expect((await f.client.getSession({ id })).usage?.inputTokens).toBe(10n);

    f.db.pragma("query_only = OFF");
    const after = await recordUsageOverRest(f, id, 5);
    expect(after.status).toBe(200);
    // The refused deltas added nothing.
    expect(after.body.usage.input_tokens).toBe("15");
    expect((await f.client.cancelSession({ id })).status).toBeDefined();
    expect((await createOverRest(f, "writable again", ["a"])).status).toBe(201);
    const state = readCommitted(f.dbPath);
    expect(state.sessions.size).toBe(2);
    expect(state.sessions.get(id)!.inputTokens).toBe(15n);
  });
});

describe("a busy database (another connection holds the write lock past busy_timeout)", () => {
  it("refuses writes with unavailable after the timeout, serves reads meanwhile, and writes once the lock is released", async () => {
    const f = await start();
    const created = await createOverRest(f, "busy soon", ["a"]);
    const id = created.body.id as string;

    const other = new Database(f.dbPath);
    cleanups.push(() => void other.close());
    other.exec("BEGIN IMMEDIATE");
    other.prepare("UPDATE sessions SET title = 'uncommitted' WHERE id = ?").run(id);
    try {
      const started = performance.now();
      expect503(await createOverRest(f, "refused", ["a"]), MESSAGES.busy);
      expect(performance.now() - started).toBeGreaterThanOrEqual(BUSY_TIMEOUT_MS * 0.9);
      expect503(await recordUsageOverRest(f, id, 3), MESSAGES.busy);
      await expectRpcUnavailable(f.client.recordUsage({ id, inputTokens: 3n }), MESSAGES.busy);

      // WAL: readers do not wait for a writer, and see only what is committed.
      const got = await requestJson(`${f.server.url}/v1/sessions/${id}`);
      expect({ status: got.status, body: got.body }).toStrictEqual({ status: 200, body: created.body });
      expect((await f.client.getSession({ id })).title).toBe("busy soon");
    } finally {
      other.exec("ROLLBACK");
    }

    const after = await recordUsageOverRest(f, id, 4);
    expect(after.status).toBe(200);
    expect(after.body.usage.input_tokens).toBe("4");
    expect(after.body.title).toBe("busy soon");
    expect((await f.client.createSession({ agentId: AGENT_ID, title: "after the lock" })).title).toBe("after the lock");
    expect(readCommitted(f.dbPath).sessions.size).toBe(2);
  });
});


describe.runIf(canMakeImmutable())("I/O errors (the WAL file made immutable: every write to it fails with EPERM)", () => {
  it("refuses writes with unavailable, serves reads, half-writes nothing, and writes again once the file is writable", async () => {
    const f = await start();
    const created = await createOverRest(f, "before the I/O errors");
    const id = created.body.id as string;
    const wal = `${f.dbPath}-wal`;
    execFileSync("chattr", ["+i", wal]);
    let immutable = true;
    const release = () => {
      if (immutable) execFileSync("chattr", ["-i", wal]);
      immutable = false;
    };
    cleanups.push(release);
    const logsBefore = f.server.logs.length;

    expect503(await createOverRest(f, "refused"), MESSAGES.io);
    expect503(await recordUsageOverRest(f, id, 9), MESSAGES.io);
    await expectRpcUnavailable(f.client.createSession({ agentId: AGENT_ID, title: "refused", tags: TAGS }), MESSAGES.io);
    expect(unavailableLogs(f, logsBefore)[0]).toMatchObject({
      err: { type: "StoreUnavailableError", reason: "io", message: `${MESSAGES.io}: disk I/O error` },
    });
    const got = await requestJson(`${f.server.url}/v1/sessions/${id}`);
    expect({ status: got.status, body: got.body }).toStrictEqual({ status: 200, body: created.body });

    release();
    expectCommittedIds(f, [id]);
    expect((await recordUsageOverRest(f, id, 2)).body.usage.input_tokens).toBe("2");
    const again = await createOverRest(f, "after the I/O errors");
    expect(again.status).toBe(201);
    expectCommittedIds(f, [id, again.body.id]);
  });
});

describe.runIf(canMakeImmutable())("a group commit whose COMMIT fails (I/O errors on the WAL)", () => {
  it("answers every write of the batch unavailable over REST and gRPC, keeps none of them, and commits the next batch", async () => {
    const f = await start();
    const created = await createOverRest(f, "before the failed batch", ["a"]);
    const id = created.body.id as string;
    const wal = `${f.dbPath}-wal`;
    execFileSync("chattr", ["+i", wal]);
    let immutable = true;
    const release = () => {
      if (immutable) execFileSync("chattr", ["-i", wal]);
      immutable = false;
    };
    cleanups.push(release);

    // Sent together, so that they arrive in few event-loop turns and share commits.
    const rest = [
      ...Array.from({ length: 8 }, (_, i) => createOverRest(f, `refused ${i}`, ["a"])),
      ...Array.from({ length: 8 }, () => recordUsageOverRest(f, id, 1)),
    ];
    const rpc = [
      ...Array.from({ length: 8 }, (_, i) => f.client.createSession({ agentId: AGENT_ID, title: `refused over gRPC ${i}` })),
      ...Array.from({ length: 8 }, () => f.client.recordUsage({ id, inputTokens: 1n })),
    ];
    await Promise.all([
      ...rest.map(async (response) => expect503(await response, MESSAGES.io)),
      ...rpc.map((call) => expectRpcUnavailable(call, MESSAGES.io)),
    ]);

    release();
    expectCommittedIds(f, [id]);
    expect(readCommitted(f.dbPath).sessions.get(id)!.inputTokens).toBe(0n);
    const again = await Promise.all([createOverRest(f, "after the failed batch"), recordUsageOverRest(f, id, 2)]);
    expect(again.map((r) => r.status)).toStrictEqual([201, 200]);
    expect(again[1].body.usage.input_tokens).toBe("2");
    expectCommittedIds(f, [id, again[0].body.id]);
  });
});

describe("other SQLite errors", () => {
  it("stay internal with a bare message (a table gone missing), and pass once the table is back", async () => {
    const f = await start();
    f.db.exec("ALTER TABLE session_tags RENAME TO session_tags_elsewhere");
    const logsBefore = f.server.logs.length;
    const refused = await createOverRest(f, "needs the tag table", ["a"]);
    expect({ status: refused.status, body: refused.body }).toStrictEqual({
      status: 500,
      body: { code: Code.Internal, message: "internal error", details: [] },
    });
    expect(f.server.logs.slice(logsBefore).filter((line) => line.msg !== "request")).toMatchObject([
      { msg: "internal error", err: { type: "SqliteError", message: "no such table: session_tags" } },
    ]);

    f.db.exec("ALTER TABLE session_tags_elsewhere RENAME TO session_tags");
    const again = await createOverRest(f, "needs the tag table", ["a"]);
    expect(again.status).toBe(201);
    expectCommittedIds(f, [again.body.id]);
  });
});

describe("a transaction left open on the server's connection", () => {
  it("is rolled back before the next call, so a write answered 201 is committed, not nested in it", async () => {
    const f = await start();
    // What a failed ROLLBACK or COMMIT can leave behind. Without the rollback, the next
    // write would run as a SAVEPOINT inside it: answered, but never committed.
    f.db.exec("BEGIN");
    f.db.prepare("UPDATE agents SET name = 'never committed'").run();
    const created = await createOverRest(f, "committed", ["a"]);
    expect(created.status).toBe(201);
    expect(f.db.inTransaction).toBe(false);
    expectCommittedIds(f, [created.body.id]);
    expect((await requestJson(`${f.server.url}/v1/agents/${AGENT_ID}`)).body.name).toBe("test agent");
  });
});
