import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { SqliteStore } from "../src/store/sqlite.js";
import { AGENT_ID, requestJson, startTestServer, type TestServer } from "./helpers/server.js";
import { canMakeImmutable } from "./helpers/immutable-file.js";

/**
 * /readyz says unready when writes fail, not only when reads do: a full disk (a real tmpfs
 * filled up), an immutable WAL (EPERM on every write), a read-only connection. It learns
 * that from the store's recent write transactions, or, when none ran lately, from one small
 * write of its own; once writes work again it says ready.
 */

const TAGS = Array.from({ length: 32 }, (_, i) => `tag-${String(i).padStart(2, "0")}`.padEnd(64, "x"));
const READY = { status: 200, body: { status: "ready" } };
const unready = (reason: string) => ({ status: 503, body: { status: "unavailable", reason } });

const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Fixture {
  readonly server: TestServer;
  readonly db: Database.Database;
  readonly dbPath: string;
}

async function start(dir = mkdtempSync(join(tmpdir(), "sessions-readiness-"))): Promise<Fixture> {
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const dbPath = join(dir, "sessions.db");
  const store = new SqliteStore(dbPath, { busyTimeoutMs: 100 });
  const server = await startTestServer({ store, dbPath, seedAgent: true });
  cleanups.push(() => server.close());
  return { server, db: store.db, dbPath };
}

async function readyz(f: Fixture): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${f.server.url}/readyz`);
  return { status: res.status, body: await res.json() };
}

async function untilReadiness(f: Fixture, expected: { status: number; body: unknown }, what: string): Promise<void> {
  let last: unknown;
  const deadline = Date.now() + 5000;
  for (;;) {
    last = await readyz(f);
    if (JSON.stringify(last) === JSON.stringify(expected)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last answer ${JSON.stringify(last)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const create = (f: Fixture, title: string) => requestJson(`${f.server.url}/v1/sessions`, { body: { agent_id: AGENT_ID, title } });

function canMountTmpfs(): boolean {
  const dir = mkdtempSync(join(tmpdir(), "sessions-tmpfs-probe-"));
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", dir], { stdio: "ignore" });
    execFileSync("umount", [dir], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe.runIf(canMountTmpfs())("a full disk (a 2 MiB tmpfs filled up)", () => {
  it("turns /readyz unready with the clean reason while creates answer 503, and ready again once there is room", async () => {
    const mountPoint = mkdtempSync(join(tmpdir(), "sessions-full-disk-"));
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=2m", "tmpfs", mountPoint]);
    cleanups.push(() => {
      execFileSync("umount", [mountPoint]);
      rmSync(mountPoint, { recursive: true, force: true });
    });
    const dir = join(mountPoint, "data");
    mkdirSync(dir);
    const f = await start(dir);
    expect((await create(f, "before the disk fills")).status).toBe(201);
    expect(await readyz(f)).toStrictEqual(READY);

    // Fill what is left, then write until SQLite needs a page it cannot have.
    const filler = join(mountPoint, "filler");
    try {
      writeFileSync(filler, Buffer.alloc(2 * 1024 * 1024));
    } catch (error) {
      expect((error as NodeJS.ErrnoException).code).toBe("ENOSPC");
    }
    let refused: Awaited<ReturnType<typeof create>> | undefined;
    for (let i = 0; i < 500 && !refused; i++) {
      const response = await requestJson(`${f.server.url}/v1/sessions`, { body: { agent_id: AGENT_ID, title: `filling ${i} `.padEnd(256, "."), tags: TAGS } });
      if (response.status !== 201) refused = response;
    }
    expect(refused?.body).toStrictEqual({ code: 14, message: "storage is full; try again later", details: [] });
    expect(await readyz(f)).toStrictEqual(unready("storage is full; try again later"));
    expect((await fetch(`${f.server.url}/healthz`)).status).toBe(200);
    // Reads go on.
    expect((await requestJson(`${f.server.url}/v1/sessions?page_size=1`)).status).toBe(200);

    rmSync(filler);
    // No write is needed to find out: the probe sees that there is room again.
    await untilReadiness(f, READY, "/readyz to be ready once the disk has room");
    expect((await create(f, "after room was made")).status).toBe(201);
  });
});

describe("a read-only connection (query_only) on an idle server", () => {
  it("turns /readyz unready without any client write, and ready again once writable", async () => {
    const f = await start();
    expect(await readyz(f)).toStrictEqual(READY);
    f.db.pragma("query_only = ON");
    // No write was attempted by a client: /readyz finds out with a write of its own.
    await untilReadiness(f, unready("storage is read-only; try again later"), "/readyz to see the read-only storage");
    expect((await requestJson(`${f.server.url}/v1/sessions`)).status).toBe(200);
    f.db.pragma("query_only = OFF");
    await untilReadiness(f, READY, "/readyz to be ready once writable");
  });
});

describe.runIf(canMakeImmutable())("an immutable WAL (every write fails with EPERM)", () => {
  it("turns /readyz unready with the I/O reason, and ready again once the file is writable", async () => {
    const f = await start();
    expect((await create(f, "before")).status).toBe(201);
    const wal = `${f.dbPath}-wal`;
    execFileSync("chattr", ["+i", wal]);
    let immutable = true;
    const release = () => {
      if (immutable) execFileSync("chattr", ["-i", wal]);
      immutable = false;
    };
    cleanups.push(release);
    await untilReadiness(f, unready("storage could not read or write; try again later"), "/readyz to see the I/O errors");
    release();
    await untilReadiness(f, READY, "/readyz to be ready once the WAL is writable");
    expect((await create(f, "after")).status).toBe(201);
  });
});

describe("the cost of /readyz", () => {
  it("writes at most one probe for 50 polls in a row on an idle server, and none while writes succeed", async () => {
    const f = await start();
    const changes = f.db.prepare("SELECT total_changes()").pluck();
    const before = changes.get() as number;
    const started = performance.now();
    for (let i = 0; i < 50; i++) expect(await readyz(f)).toStrictEqual(READY);
    // One probe per 5 s at most (the polls take well under that unless the machine is loaded).
    const allowed = 1 + Math.floor((performance.now() - started) / 5000);
    expect((changes.get() as number) - before).toBeLessThanOrEqual(allowed);

    // With writes going on, their outcomes are fresh: no probe at all.
    for (let i = 0; i < 20; i++) {
      expect((await create(f, `busy ${i}`)).status).toBe(201);
      const mark = changes.get() as number;
      expect(await readyz(f)).toStrictEqual(READY);
      expect(changes.get()).toBe(mark);
    }
  });
});
