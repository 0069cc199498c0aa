import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { GROUP_COMMIT_MAX_WRITES, SqliteStore, type SqliteStoreOptions } from "../../src/store/sqlite.js";
import { StoreUnavailableError, type IdempotencyKey, type SessionChange, type SessionRecord } from "../../src/store/store.js";
import { readCommitted } from "../helpers/database-checks.js";
import { canMakeImmutable } from "../helpers/immutable-file.js";

/**
 * Group commit in SqliteStore (src/store/write-batcher.ts): the writes of one event-loop
 * turn share one transaction, each in its own savepoint. Commits are counted in the WAL
 * itself (one commit frame per COMMIT); what is kept is read on a second connection.
 */

const ORG_ID = "org_00000000000000000000000000000001";
const UPDATED: SessionChange = { type: "updated" };
const AGENT_ID = "agent_0123456789abcdef0123456789abcdef";

const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Fixture {
  readonly store: SqliteStore;
  readonly path: string;
  /** Commits in the WAL since the fixture was made. */
  commits(): number;
}

async function open(options: SqliteStoreOptions = {}): Promise<Fixture> {
  const dir = mkdtempSync(join(tmpdir(), "sessions-group-commit-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "s.db");
  const store = new SqliteStore(path, options);
  cleanups.push(() => store.close());
  // No checkpoint may reset the WAL while a test counts its commits.
  store.db.pragma("wal_autocheckpoint = 0");
  await store.insertAgent({ id: AGENT_ID, orgId: ORG_ID, name: "agent", defaultModelId: "", capabilities: [], createdAt: 1, updatedAt: 1, version: 1 });
  const before = walCommits(path);
  return { store, path, commits: () => walCommits(path) - before };
}

/**
 * The COMMITs in a WAL file: frames of the current WAL generation (their salts match the
 * header's) whose "database size after commit" field is set.
 */
function walCommits(path: string): number {
  const wal = readFileSync(`${path}-wal`);
  if (wal.length < 32) return 0;
  const pageSize = wal.readUInt32BE(8);
  const salts = [wal.readUInt32BE(16), wal.readUInt32BE(20)];
  let commits = 0;
  for (let offset = 32; offset + 24 + pageSize <= wal.length; offset += 24 + pageSize) {
    if (wal.readUInt32BE(offset + 8) !== salts[0] || wal.readUInt32BE(offset + 12) !== salts[1]) break;
    if (wal.readUInt32BE(offset + 4) !== 0) commits++;
  }
  return commits;
}

let sequence = 0;
function session(overrides: Partial<SessionRecord> = {}): SessionRecord {
  sequence++;
  return {
    id: `session_${sequence.toString(16).padStart(32, "0")}`,
    orgId: ORG_ID,
    agentId: AGENT_ID,
    modelId: "",
    capabilities: [],
    title: `session ${sequence}`,
    tags: ["a", "b"],
    state: "pending",
    usage: { inputTokens: 0n, outputTokens: 0n, cacheReadTokens: 0n, cacheCreationTokens: 0n },
    promptPreview: "",
    responsePreview: "",
    error: "",
    createdAt: 1_700_000_000_000 + sequence,
    updatedAt: 1_700_000_000_000 + sequence,
    startedAt: undefined,
    finishedAt: undefined,
    version: 1,
    messageCount: 0,
    lastSequence: 1,
    ...overrides,
  };
}

/** Each promise's outcome, in order, once all have settled. */
async function outcomes<T>(promises: ReadonlyArray<Promise<T>>) {
  return (await Promise.allSettled(promises)).map((r) => (r.status === "fulfilled" ? { ok: r.value } : { error: r.reason as unknown }));
}

const committedIds = (f: Fixture) => [...readCommitted(f.path).sessions.keys()].sort();

describe("group commit", () => {
  it("commits the writes of one event-loop turn in one transaction, answering each only after it", async () => {
    const f = await open();
    const sessions = Array.from({ length: 50 }, () => session());
    let answered = 0;
    const writes = sessions.map((s) => f.store.insertSession(s).then((inserted) => (answered++, inserted)));
    // Nothing runs before the turn ends: no commit, no answer, nothing another connection sees.
    expect({ commits: f.commits(), answered, committed: committedIds(f) }).toStrictEqual({ commits: 0, answered: 0, committed: [] });
    // A read in the same turn sees committed data only, so not the queued insert.
    expect(await f.store.findSession(ORG_ID, sessions[0]!.id)).toBeUndefined();
    expect(await Promise.all(writes)).toStrictEqual(sessions.map(() => true));
    expect(f.commits()).toBe(1);
    expect(committedIds(f)).toStrictEqual(sessions.map((s) => s.id).sort());
    const state = readCommitted(f.path);
    expect({ integrity: state.integrity, tagsWithoutRow: state.tagsWithoutRow, rowsWithoutTag: state.rowsWithoutTag }).toStrictEqual({
      integrity: "ok",
      tagsWithoutRow: 0,
      rowsWithoutTag: 0,
    });
  });

  it("mixes every kind of write in one transaction", async () => {
    const f = await open();
    const existing = session();
    await f.store.insertSession(existing);
    const before = f.commits();
    const key: IdempotencyKey = { method: "m", requestId: "r", requestHash: new Uint8Array([1]), expiredBefore: 0 };
    const fresh = session();
    const agent = { id: "agent_ffffffffffffffffffffffffffffffff", orgId: ORG_ID, name: "x", defaultModelId: "", capabilities: [], createdAt: 2, updatedAt: 2, version: 1 };
    const results = await Promise.all([
      f.store.insertSession(fresh, key),
      f.store.insertSession(session(), key), // the same key again: a retry, answered with the first
      f.store.mutateSession(ORG_ID, existing.id, UPDATED, (current) => ({ ...current, title: "changed" })),
      f.store.insertAgent(agent),
      f.store.mutateAgent(ORG_ID, agent.id, (current) => ({ ...current, name: "renamed" })),
      f.store.deleteSession(ORG_ID, fresh.id, () => {}),
    ]);
    expect(f.commits() - before).toBe(1);
    expect(results).toStrictEqual([
      { outcome: "inserted" },
      { outcome: "replayed", record: fresh },
      { ...existing, title: "changed", version: 2, lastSequence: 2 },
      undefined,
      { ...agent, name: "renamed", version: 2 },
      fresh,
    ]);
    expect(committedIds(f)).toStrictEqual([existing.id]);
  });

  it("commits each write on its own with groupCommit: false", async () => {
    const f = await open({ groupCommit: false });
    const sessions = Array.from({ length: 20 }, () => session());
    await Promise.all(sessions.map((s) => f.store.insertSession(s)));
    expect(f.commits()).toBe(20);
    expect(committedIds(f)).toStrictEqual(sessions.map((s) => s.id).sort());
  });
});

describe("a write that fails inside a batch", () => {
  it("rolls back to its savepoint and rejects alone; the rest of the batch commits", async () => {
    const f = await open();
    const existing = session({ title: "unchanged" });
    await f.store.insertSession(existing);
    const before = f.commits();
    const refused = new Error("the mutation refused");
    const first = session();
    // The session row goes in, then its second tag row breaks the tag table's primary key:
    // the savepoint must take the session row back out too.
    const halfWritten = session({ tags: ["same", "same"] });
    const duplicate = session({ id: first.id });
    const last = session();
    const results = await outcomes<unknown>([
      f.store.insertSession(first),
      f.store.mutateSession(ORG_ID, existing.id, UPDATED, () => {
        throw refused;
      }),
      f.store.insertSession(halfWritten),
      f.store.insertSession(duplicate),
      f.store.deleteSession(ORG_ID, existing.id, () => {
        throw refused;
      }),
      f.store.insertSession(session({ agentId: "agent_00000000000000000000000000000000" })), // declined: no such agent
      f.store.insertSession(last),
    ]);
    expect(results.map((r) => ("ok" in r ? r : { error: (r.error as Error).message }))).toStrictEqual([
      { ok: true },
      { error: "the mutation refused" },
      { error: "UNIQUE constraint failed: session_tags.org_id, session_tags.tag, session_tags.created_at, session_tags.session_id" },
      { error: "UNIQUE constraint failed: sessions.id" },
      { error: "the mutation refused" },
      { ok: false },
      { ok: true },
    ]);
    expect((results[1] as { error: unknown }).error).toBe(refused);
    expect(f.commits() - before).toBe(1);
    expect(committedIds(f)).toStrictEqual([existing.id, first.id, last.id].sort());
    const state = readCommitted(f.path);
    expect(state.sessions.get(existing.id)).toMatchObject({ title: "unchanged", version: 1n });
    expect(state.sessions.get(first.id)).toMatchObject({ title: first.title });
    expect({ integrity: state.integrity, tagsWithoutRow: state.tagsWithoutRow, rowsWithoutTag: state.rowsWithoutTag }).toStrictEqual({
      integrity: "ok",
      tagsWithoutRow: 0,
      rowsWithoutTag: 0,
    });
  });

  it("that takes the batch's transaction with it fails the whole batch, and nothing of the batch is kept", async () => {
    const f = await open();
    const existing = session({ title: "before" });
    await f.store.insertSession(existing);
    const before = f.commits();
    // What SQLite itself does on some full-disk and I/O errors: roll back the whole transaction.
    const lost = new Error("the transaction was rolled back");
    const agentId = "agent_eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee";
    const results = await outcomes<unknown>([
      f.store.insertSession(session()),
      f.store.insertAgent({ id: agentId, orgId: ORG_ID, name: "x", defaultModelId: "", capabilities: [], createdAt: 3, updatedAt: 3, version: 1 }),
      f.store.mutateSession(ORG_ID, existing.id, UPDATED, () => {
        f.store.db.exec("ROLLBACK");
        throw lost;
      }),
      f.store.insertSession(session()),
    ]);
    expect(results).toStrictEqual(Array(4).fill({ error: lost }));
    expect(f.commits() - before).toBe(0);
    expect(committedIds(f)).toStrictEqual([existing.id]);
    expect(await f.store.findAgent(ORG_ID, agentId)).toBeUndefined();
    expect(f.store.db.inTransaction).toBe(false);
    expect(await f.store.insertSession(session())).toBe(true);
  });
});

/**
 * A COMMIT that fails for real, through SQLite: a temporary trigger on the store's own
 * connection adds, for a session titled "poison", a row that breaks a deferred foreign key,
 * which SQLite checks only at COMMIT. Every statement of the batch succeeds; the COMMIT
 * does not.
 */
function poisonCommits(store: SqliteStore): () => void {
  store.db.exec(`
    CREATE TEMP TABLE poison_parent (id INTEGER PRIMARY KEY);
    CREATE TEMP TABLE poison_child (parent INTEGER REFERENCES poison_parent (id) DEFERRABLE INITIALLY DEFERRED);
    CREATE TEMP TRIGGER poison AFTER INSERT ON main.sessions WHEN NEW.title = 'poison'
      BEGIN INSERT INTO poison_child VALUES (1); END;`);
  return () => store.db.exec("DROP TRIGGER temp.poison");
}

describe("a COMMIT that fails", () => {
  it("rejects every write of the batch with the COMMIT's error, keeps nothing of it, and the store goes on", async () => {
    const f = await open();
    const existing = session({ title: "before" });
    await f.store.insertSession(existing);
    poisonCommits(f.store);
    const before = f.commits();
    const batch = [
      f.store.insertSession(session()),
      f.store.mutateSession(ORG_ID, existing.id, UPDATED, (current) => ({ ...current, title: "changed in the failed batch" })),
      f.store.insertSession(session({ title: "poison" })),
      f.store.deleteSession(ORG_ID, existing.id, () => {}),
    ];
    const results = await outcomes<unknown>(batch);
    const errors = results.map((r) => ("error" in r ? r.error : r));
    expect(errors.map((e) => (e as { code?: string }).code)).toStrictEqual(Array(4).fill("SQLITE_CONSTRAINT_FOREIGNKEY"));
    expect(new Set(errors).size).toBe(1); // one error: the COMMIT's
    expect(f.commits() - before).toBe(0);
    expect(f.store.db.inTransaction).toBe(false);
    expect(committedIds(f)).toStrictEqual([existing.id]);
    expect(readCommitted(f.path).sessions.get(existing.id)).toMatchObject({ title: "before", version: 1n });

    // The next batch, without the poison, commits.
    const after = session();
    expect(
      await Promise.all([
        f.store.insertSession(after),
        f.store.mutateSession(ORG_ID, existing.id, UPDATED, (current) => ({ ...current, title: "after" })),
      ]),
    ).toMatchObject([true, { title: "after", version: 2 }]);
    expect(f.commits() - before).toBe(1);
    expect(committedIds(f)).toStrictEqual([existing.id, after.id].sort());
  });

  it("rejects the batch with BEGIN's error when another connection holds the write lock (busy)", async () => {
    const f = await open({ busyTimeoutMs: 50 });
    const other = new Database(f.path);
    cleanups.push(() => void other.close());
    other.exec("BEGIN IMMEDIATE");
    const results = await outcomes([f.store.insertSession(session()), f.store.insertSession(session())]);
    other.exec("ROLLBACK");
    expect(results.map((r) => ("error" in r ? [(r.error as StoreUnavailableError).name, (r.error as StoreUnavailableError).reason] : r))).toStrictEqual([
      ["StoreUnavailableError", "busy"],
      ["StoreUnavailableError", "busy"],
    ]);
    expect(committedIds(f)).toStrictEqual([]);
    expect(await f.store.insertSession(session())).toBe(true);
  });

  it.runIf(canMakeImmutable())(
    "on an I/O error (the WAL made immutable) rejects every write of the batch as unavailable, keeps nothing, and recovers",
    async () => {
      const f = await open();
      const existing = session();
      await f.store.insertSession(existing);
      const before = f.commits();
      const wal = `${f.path}-wal`;
      execFileSync("chattr", ["+i", wal]);
      let immutable = true;
      const release = () => {
        if (immutable) execFileSync("chattr", ["-i", wal]);
        immutable = false;
      };
      cleanups.push(release);
      const results = await outcomes<unknown>([
        f.store.insertSession(session()),
        f.store.mutateSession(ORG_ID, existing.id, UPDATED, (current) => ({ ...current, title: "lost" })),
        f.store.insertSession(session()),
      ]);
      release();
      expect(results.map((r) => ("error" in r ? [(r.error as StoreUnavailableError).name, (r.error as StoreUnavailableError).reason] : r))).toStrictEqual(
        Array(3).fill(["StoreUnavailableError", "io"]),
      );
      expect(f.commits() - before).toBe(0);
      expect(committedIds(f)).toStrictEqual([existing.id]);
      expect(readCommitted(f.path).integrity).toBe("ok");
      const again = session();
      expect(await Promise.all([f.store.insertSession(again), f.store.findSession(ORG_ID, existing.id)])).toMatchObject([true, { title: existing.title }]);
      expect(committedIds(f)).toStrictEqual([existing.id, again.id].sort());
    },
  );
});

describe("order within a batch", () => {
  it("applies writes to one record in arrival order, each seeing the one before", async () => {
    const f = await open();
    const created = session();
    const seen: number[] = [];
    const results = await Promise.all([
      f.store.insertSession(created),
      // Queued after the insert in the same turn: it finds the row the insert wrote.
      ...Array.from({ length: 100 }, (_, i) =>
        f.store.mutateSession(ORG_ID, created.id, UPDATED, (current) => {
          seen.push(Number(current.usage.inputTokens));
          return { ...current, usage: { ...current.usage, inputTokens: current.usage.inputTokens + BigInt(i + 1) } };
        }),
      ),
      f.store.deleteSession(ORG_ID, created.id, () => {}),
      f.store.mutateSession(ORG_ID, created.id, UPDATED, (current) => current), // after the delete: no such session
    ]);
    expect(f.commits()).toBe(1);
    expect(seen).toStrictEqual(Array.from({ length: 100 }, (_, i) => (i * (i + 1)) / 2));
    const mutated = results.slice(1, 101) as SessionRecord[];
    expect(mutated.map((s) => [s.version, Number(s.usage.inputTokens)])).toStrictEqual(
      Array.from({ length: 100 }, (_, i) => [i + 2, ((i + 1) * (i + 2)) / 2]),
    );
    expect((results[101] as SessionRecord).version).toBe(101);
    expect(results[102]).toBeUndefined();
  });

  it("lets exactly one of many conflicting moves in one batch win", async () => {
    const f = await open();
    const created = session();
    await f.store.insertSession(created);
    const moves = ["running", "cancelled", "running", "failed"] as const;
    const results = await outcomes(
      moves.map((state) =>
        f.store.mutateSession(ORG_ID, created.id, UPDATED, (current) => {
          if (current.state !== "pending") throw new Error(`cannot move a ${current.state} session`);
          return { ...current, state };
        }),
      ),
    );
    expect(results.map((r) => ("ok" in r ? r.ok!.state : (r.error as Error).message))).toStrictEqual([
      "running",
      "cannot move a running session",
      "cannot move a running session",
      "cannot move a running session",
    ]);
  });
});

describe("the batch bound", () => {
  it("puts at most groupCommitMaxWrites writes in one transaction; the rest follow in order, after the first batch is answered", async () => {
    const f = await open({ groupCommitMaxWrites: 10 });
    const sessions = Array.from({ length: 25 }, () => session());
    let seenAtFirstAnswer: string[] | undefined;
    const writes = sessions.map((s) => f.store.insertSession(s));
    void writes[0]!.then(() => (seenAtFirstAnswer = committedIds(f)));
    await Promise.all(writes);
    expect(f.commits()).toBe(3);
    expect(seenAtFirstAnswer).toStrictEqual(sessions.slice(0, 10).map((s) => s.id).sort());
    expect(committedIds(f)).toStrictEqual(sessions.map((s) => s.id).sort());
  });

  it(`defaults to ${GROUP_COMMIT_MAX_WRITES} writes`, async () => {
    const f = await open();
    const writes = Array.from({ length: GROUP_COMMIT_MAX_WRITES * 2 + 1 }, () => f.store.insertSession(session({ tags: [] })));
    await Promise.all(writes);
    expect(f.commits()).toBe(3);
  });
});

describe("close", () => {
  it("commits and answers the writes still queued before the connection closes", async () => {
    const f = await open();
    const s = session();
    const write = f.store.insertSession(s);
    await f.store.close();
    expect(await write).toBe(true);
    expect(committedIds(f)).toStrictEqual([s.id]);
  });
});

