import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { SQLITE_SETTINGS, SqliteStore } from "../../src/store/sqlite.js";
import { MIGRATIONS } from "../../src/store/migrations.js";

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "sessions-store-"));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function writeSome(store: SqliteStore): Promise<void> {
  for (let i = 0; i < 20; i++) {
    await store.insertAgent({
      id: `agent_${i.toString(16).padStart(32, "0")}`,
      orgId: "org_00000000000000000000000000000001",
      name: `agent ${i}`,
      defaultModelId: "",
      capabilities: [],
      createdAt: i,
      updatedAt: i,
      version: 1,
    });
  }
}

describe("SqliteStore", () => {
  it("sets the durability settings on every open, also on a file that exists", async () => {
    const path = join(tempDir(), "s.db");
    await new SqliteStore(path).close();
    const store = new SqliteStore(path, { busyTimeoutMs: 250 });
    try {
      expect({
        journalMode: store.db.pragma("journal_mode", { simple: true }),
        // 2 is FULL; better-sqlite3's build would default a reopened WAL database to 1 (NORMAL).
        synchronous: store.db.pragma("synchronous", { simple: true }),
        walAutocheckpoint: store.db.pragma("wal_autocheckpoint", { simple: true }),
        busyTimeout: store.db.pragma("busy_timeout", { simple: true }),
      }).toStrictEqual({ journalMode: "wal", synchronous: 2, walAutocheckpoint: SQLITE_SETTINGS.walAutocheckpointPages, busyTimeout: 250 });
    } finally {
      await store.close();
    }
  });

  it("on close folds the WAL into the file and leaves no -wal or -shm file", async () => {
    const path = join(tempDir(), "s.db");
    const store = new SqliteStore(path);
    await writeSome(store);
    expect(statSync(`${path}-wal`).size).toBeGreaterThan(0);
    await store.close();
    expect([existsSync(`${path}-wal`), existsSync(`${path}-shm`)]).toStrictEqual([false, false]);
    const db = new Database(path, { readonly: true });
    expect(db.prepare("SELECT count(*) FROM agents").pluck().get()).toBe(20);
    db.close();
  });

  it("on close folds the WAL in even while another connection keeps the file open (SQLite's own close would not)", async () => {
    const path = join(tempDir(), "s.db");
    const other = new Database(path);
    try {
      const store = new SqliteStore(path);
      await writeSome(store);
      // A reader that has seen the WAL, as the keys command would have.
      expect(other.prepare("SELECT count(*) FROM agents").pluck().get()).toBe(20);
      await store.close();
      // Still there, because `other` has the file open, but empty: everything is in the file.
      expect(statSync(`${path}-wal`).size).toBe(0);
      expect(other.prepare("SELECT count(*) FROM agents").pluck().get()).toBe(20);
    } finally {
      other.close();
    }
  });

  it("names the path when the file cannot be opened", () => {
    const dir = tempDir();
    expect(() => new SqliteStore(dir)).toThrow(`cannot open database ${dir}: unable to open database file`);
  });

  it("names the path and both versions when the file's schema is newer than the server", () => {
    const path = join(tempDir(), "s.db");
    const db = new Database(path);
    db.pragma(`user_version = ${MIGRATIONS.length + 1}`);
    db.close();
    expect(() => new SqliteStore(path)).toThrow(
      `cannot open database ${path}: the database has schema version ${MIGRATIONS.length + 1}, newer than this server's ${MIGRATIONS.length}`,
    );
  });
});
