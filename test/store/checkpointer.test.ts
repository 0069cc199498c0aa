import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { SQLITE_SETTINGS, SqliteStore } from "../../src/store/sqlite.js";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
function dbPath(): string {
  const dir = mkdtempSync(join(tmpdir(), "sessions-checkpoint-"));
  dirs.push(dir);
  return join(dir, "s.db");
}

async function insertAgents(store: SqliteStore, count: number): Promise<void> {
  await Promise.all(
    Array.from({ length: count }, (_, i) =>
      store.insertAgent({
        id: `agent_${i.toString(16).padStart(32, "0")}`,
        orgId: "org_00000000000000000000000000000001",
        name: `agent ${i} ${"x".repeat(200)}`,
        defaultModelId: "",
        capabilities: [],
        createdAt: i,
        updatedAt: i,
        version: 1,
      }),
    ),
  );
}

/** In WAL mode only a checkpoint writes to the database file itself. */
async function fileGrowsWithin(path: string, before: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (statSync(path).size > before) return true;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return statSync(path).size > before;
}

describe("WAL checkpoints", () => {
  it("are run by the worker thread, well before the serving connection's backstop would", async () => {
    const path = dbPath();
    const store = new SqliteStore(path);
    try {
      expect(store.db.pragma("wal_autocheckpoint", { simple: true })).toBe(SQLITE_SETTINGS.walAutocheckpointPages);
      const before = statSync(path).size;
      await insertAgents(store, 400);
      expect(await fileGrowsWithin(path, before, 2_000)).toBe(true);
    } finally {
      await store.close();
    }
  });

  it("do not happen in the background without the worker (the same writes stay in the WAL)", async () => {
    const path = dbPath();
    const store = new SqliteStore(path, { checkpointInWorker: false });
    try {
      const before = statSync(path).size;
      await insertAgents(store, 400);
      expect(await fileGrowsWithin(path, before, 500)).toBe(false);
    } finally {
      await store.close();
    }
  });

  it("leave one self-contained file after close, with every write in it", async () => {
    const path = dbPath();
    const store = new SqliteStore(path);
    await insertAgents(store, 50);
    await store.close();
    expect(statSync(`${path}-wal`, { throwIfNoEntry: false })?.size ?? 0).toBe(0);
    const reopened = new SqliteStore(path);
    try {
      expect(reopened.db.prepare("SELECT count(*) FROM agents").pluck().get()).toBe(50);
    } finally {
      await reopened.close();
    }
  });
});
