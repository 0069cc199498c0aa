import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { MIGRATIONS } from "../../src/store/migrations.js";
import { SqliteStore } from "../../src/store/sqlite.js";
import type { IdempotencyKey, MessageRecord, SessionRecord, UsageRecord } from "../../src/store/store.js";

/**
 * The store's event log: every change appends one event in its own transaction, with
 * gapless per-session sequences; messages sit at their event's sequence; a delete takes
 * both; a database from before the log gets one CREATED event per session.
 */

const ORG_ID = "org_00000000000000000000000000000001";
const OTHER_ORG = "org_00000000000000000000000000000002";
const AGENT_ID = "agent_0123456789abcdef0123456789abcdef";
const ZERO: UsageRecord = { inputTokens: 0n, outputTokens: 0n, cacheReadTokens: 0n, cacheCreationTokens: 0n };

const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function tempPath(): string {
  const dir = mkdtempSync(join(tmpdir(), "sessions-event-log-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, "s.db");
}

async function open(path = tempPath()): Promise<SqliteStore> {
  const store = new SqliteStore(path);
  cleanups.push(() => store.close());
  await store.insertAgent({ id: AGENT_ID, orgId: ORG_ID, name: "agent", defaultModelId: "", capabilities: [], createdAt: 1, updatedAt: 1, version: 1 });
  return store;
}

let counter = 0;
const hex = (n: number) => n.toString(16).padStart(32, "0");

function session(overrides: Partial<SessionRecord> = {}): SessionRecord {
  counter++;
  return {
    id: `session_${hex(counter)}`,
    orgId: ORG_ID,
    agentId: AGENT_ID,
    modelId: "model_0123456789abcdef0123456789abcdef",
    capabilities: [{ capabilityId: "search", config: { depth: 2 } }],
    title: "t",
    tags: ["a"],
    state: "running",
    usage: ZERO,
    promptPreview: "",
    responsePreview: "",
    error: "",
    createdAt: 1_700_000_000_000 + counter,
    updatedAt: 1_700_000_000_000 + counter,
    startedAt: 1_700_000_000_000 + counter,
    finishedAt: undefined,
    version: 1,
    messageCount: 0,
    lastSequence: 1,
    ...overrides,
  };
}

function message(s: SessionRecord, overrides: Partial<MessageRecord> = {}): MessageRecord {
  counter++;
  return {
    id: `message_${hex(counter)}`,
    orgId: s.orgId,
    sessionId: s.id,
    role: "assistant",
    content: [
      { kind: "text", text: `reply ${counter}` },
      { kind: "tool_call", id: "call_1", name: "search", arguments: { q: "x", n: [1, { deep: true }] } },
      { kind: "tool_result", toolCallId: "call_1", output: undefined, isError: true },
    ],
    modelId: "",
    usage: { inputTokens: 1n, outputTokens: 2n, cacheReadTokens: 3n, cacheCreationTokens: 4n },
    createdAt: 1_700_000_100_000 + counter,
    sequence: 0,
    ...overrides,
  };
}

/** A session mutation that adds a message's usage, as the service's does. */
const addingUsage = (m: MessageRecord) => (current: SessionRecord): SessionRecord => ({
  ...current,
  usage: {
    inputTokens: current.usage.inputTokens + (m.usage?.inputTokens ?? 0n),
    outputTokens: current.usage.outputTokens + (m.usage?.outputTokens ?? 0n),
    cacheReadTokens: current.usage.cacheReadTokens + (m.usage?.cacheReadTokens ?? 0n),
    cacheCreationTokens: current.usage.cacheCreationTokens + (m.usage?.cacheCreationTokens ?? 0n),
  },
  updatedAt: m.createdAt,
});

async function allEvents(store: SqliteStore, s: SessionRecord) {
  return (await store.listSessionEvents(s.orgId, s.id, 0, 100_000)).records;
}

function rowCount(store: SqliteStore, table: string, sessionId: string): number {
  return Number(store.db.prepare(`SELECT count(*) FROM ${table} WHERE session_id = ?`).pluck().get(sessionId));
}

describe("session event log (SQLite store)", () => {
  it("gives concurrent changes of several sessions gapless sequences 1..N per session, messages at their event's", async () => {
    const store = await open();
    const sessions = [session(), session(), session()];
    for (const s of sessions) expect(await store.insertSession(s)).toBe(true);
    // 600 writes queued at once, across many group commits, interleaving the sessions and kinds.
    const writes: Array<Promise<unknown>> = [];
    for (let i = 0; i < 600; i++) {
      const s = sessions[i % 3]!;
      if (i % 5 === 0) {
        writes.push(store.mutateSession(s.orgId, s.id, { type: "updated" }, (current) => ({ ...current, title: `t${i}` })));
      } else {
        const m = message(s);
        writes.push(store.appendMessage(m, addingUsage(m)));
      }
    }
    await Promise.all(writes);
    for (const s of sessions) {
      const events = await allEvents(store, s);
      expect(events.map((e) => e.sequence)).toStrictEqual(Array.from({ length: 201 }, (_, i) => i + 1));
      expect(events[0]!.type).toBe("created");
      const stored = (await store.findSession(s.orgId, s.id))!;
      expect(stored.lastSequence).toBe(201);
      expect(stored.messageCount).toBe(160);
      expect(stored.usage).toStrictEqual({ inputTokens: 160n, outputTokens: 320n, cacheReadTokens: 480n, cacheCreationTokens: 640n });
      const messages = (await store.listMessages(s.orgId, s.id, 0, 1000)).records;
      expect(messages).toHaveLength(160);
      const added = events.filter((e) => e.type === "message_added");
      expect(added.map((e) => e.message)).toStrictEqual(messages);
      expect(added.map((e) => e.sequence)).toStrictEqual(messages.map((m) => m.sequence));
      // Each event's session is the session right after its change.
      for (const e of events) {
        expect(e.session.lastSequence).toBe(e.sequence);
        expect(e.session.version).toBe(e.sequence);
        expect(e.createdAt).toBe(e.session.updatedAt);
      }
      expect(events.at(-1)!.session).toStrictEqual(stored);
    }
  });

  it("keeps in each event the session right after its change, fixed fields from the session row", async () => {
    const store = await open();
    const s = session({ state: "pending", startedAt: undefined });
    await store.insertSession(s);
    await store.mutateSession(ORG_ID, s.id, { type: "started" }, (c) => ({ ...c, state: "running", startedAt: 5, updatedAt: 5 }));
    const delta = { inputTokens: 7n, outputTokens: 0n, cacheReadTokens: 0n, cacheCreationTokens: 1n };
    await store.mutateSession(ORG_ID, s.id, { type: "usage_recorded", usageDelta: delta }, (c) => ({
      ...c,
      usage: { ...c.usage, inputTokens: 7n, cacheCreationTokens: 1n },
      // A mutation cannot change what is fixed at create, nor the store's counters.
      modelId: "",
      capabilities: [],
      messageCount: 99,
      lastSequence: 99,
      updatedAt: 6,
    }));
    const m = message(s, { role: "user", usage: undefined, content: [{ kind: "text", text: "hi" }] });
    const appended = await store.appendMessage(m, (c) => ({ ...c, promptPreview: "hi", updatedAt: 7 }));
    expect(appended).toStrictEqual({
      outcome: "appended",
      message: { ...m, sequence: 4 },
      session: { ...s, state: "running", startedAt: 5, usage: { ...ZERO, inputTokens: 7n, cacheCreationTokens: 1n }, promptPreview: "hi", updatedAt: 7, version: 4, messageCount: 1, lastSequence: 4 },
    });
    await store.mutateSession(ORG_ID, s.id, { type: "completed" }, (c) => ({ ...c, state: "completed", finishedAt: 8, updatedAt: 8 }));

    const events = await allEvents(store, s);
    expect(events.map((e) => [e.sequence, e.type, e.createdAt])).toStrictEqual([
      [1, "created", s.updatedAt],
      [2, "started", 5],
      [3, "usage_recorded", 6],
      [4, "message_added", 7],
      [5, "completed", 8],
    ]);
    const v1 = { ...s, state: "pending" as const, startedAt: undefined };
    const v2 = { ...v1, state: "running" as const, startedAt: 5, updatedAt: 5, version: 2, lastSequence: 2 };
    const v3 = { ...v2, usage: { ...ZERO, inputTokens: 7n, cacheCreationTokens: 1n }, updatedAt: 6, version: 3, lastSequence: 3 };
    const v4 = { ...v3, promptPreview: "hi", updatedAt: 7, version: 4, messageCount: 1, lastSequence: 4 };
    const v5 = { ...v4, state: "completed" as const, finishedAt: 8, updatedAt: 8, version: 5, lastSequence: 5 };
    expect(events.map((e) => e.session)).toStrictEqual([v1, v2, v3, v4, v5]);
    expect(events.map((e) => e.usageDelta)).toStrictEqual([undefined, undefined, delta, undefined, undefined]);
    expect(events.map((e) => e.message)).toStrictEqual([undefined, undefined, undefined, { ...m, sequence: 4 }, undefined]);
    // Only what changes is stored per event: no copy of capabilities, model or agent.
    const columns = (store.db.prepare("SELECT name FROM pragma_table_info('session_events')").pluck().all() as string[]);
    expect(columns.filter((c) => ["capabilities", "model_id", "agent_id", "created_at"].includes(c))).toStrictEqual([]);
  });

  it("stores neither a change nor its event when the mutation throws, and the next change takes the next sequence", async () => {
    const store = await open();
    const s = session();
    await store.insertSession(s);
    const refused = new Error("refused");
    const m = message(s);
    const results = await Promise.allSettled([
      store.appendMessage(m, () => {
        throw refused;
      }),
      store.mutateSession(ORG_ID, s.id, { type: "updated" }, () => {
        throw refused;
      }),
    ]);
    expect(results.map((r) => (r.status === "rejected" ? r.reason : r.value))).toStrictEqual([refused, refused]);
    expect(await store.findMessage(ORG_ID, s.id, m.id)).toBeUndefined();
    expect(await store.findSession(ORG_ID, s.id)).toStrictEqual(s);
    expect((await allEvents(store, s)).map((e) => e.sequence)).toStrictEqual([1]);
    const next = message(s);
    const appended = await store.appendMessage(next, addingUsage(next));
    expect(appended?.outcome === "appended" && appended.message.sequence).toBe(2);
    expect((await allEvents(store, s)).map((e) => e.sequence)).toStrictEqual([1, 2]);
  });

  it("stores neither the session's change nor the event when the message's own insert fails", async () => {
    const store = await open();
    const s = session();
    await store.insertSession(s);
    const first = message(s);
    await store.appendMessage(first, addingUsage(first));
    const stored = await store.findSession(ORG_ID, s.id);
    // The same id again: the message's insert fails on messages_by_id, after the session's
    // UPDATE ran in the same savepoint.
    const again = { ...message(s), id: first.id };
    await expect(store.appendMessage(again, addingUsage(again))).rejects.toThrow(/UNIQUE constraint failed/);
    expect(await store.findSession(ORG_ID, s.id)).toStrictEqual(stored);
    expect((await allEvents(store, s)).map((e) => e.sequence)).toStrictEqual([1, 2]);
    expect(rowCount(store, "messages", s.id)).toBe(1);
  });

  it("keeps the log and the conversation across a close and reopen, and goes on from the last sequence", async () => {
    const path = tempPath();
    const first = await open(path);
    const s = session();
    await first.insertSession(s);
    for (let i = 0; i < 3; i++) await first.appendMessage(message(s), (c) => c);
    const events = await allEvents(first, s);
    const messages = (await first.listMessages(ORG_ID, s.id, 0, 100)).records;
    await first.close();
    const reopened = new SqliteStore(path);
    cleanups.push(() => reopened.close());
    expect(await allEvents(reopened, s)).toStrictEqual(events);
    expect((await reopened.listMessages(ORG_ID, s.id, 0, 100)).records).toStrictEqual(messages);
    const next = await reopened.mutateSession(ORG_ID, s.id, { type: "updated" }, (c) => ({ ...c, title: "after restart" }));
    expect(next?.lastSequence).toBe(5);
  });

  it("answers undefined for another organisation's session or a missing one, storing nothing", async () => {
    const store = await open();
    const s = session();
    await store.insertSession(s);
    const foreign = message(s, { orgId: OTHER_ORG });
    expect(await store.appendMessage(foreign, (c) => c)).toBeUndefined();
    expect(await store.mutateSession(OTHER_ORG, s.id, { type: "updated" }, (c) => c)).toBeUndefined();
    expect(await store.listSessionEvents(OTHER_ORG, s.id, 0, 10)).toStrictEqual({ records: [], more: false, bytes: 0 });
    const own = message(s);
    await store.appendMessage(own, (c) => c);
    expect(await store.findMessage(OTHER_ORG, s.id, own.id)).toBeUndefined();
    expect((await store.listMessages(OTHER_ORG, s.id, 0, 10)).records).toStrictEqual([]);
    expect(rowCount(store, "messages", s.id)).toBe(1);
    expect(rowCount(store, "session_events", s.id)).toBe(2);
  });

  it("replays an append under the same key without a second message or event, and refuses another request's", async () => {
    const store = await open();
    const s = session();
    await store.insertSession(s);
    const key: IdempotencyKey = { method: "sessions.v1.SessionService/AddMessage", requestId: "r1", requestHash: new Uint8Array([1]), expiredBefore: 0 };
    const first = message(s);
    const retry = message(s);
    const [a, b] = await Promise.all([store.appendMessage(first, addingUsage(first), key), store.appendMessage(retry, addingUsage(retry), key)]);
    expect(a).toStrictEqual({ outcome: "appended", message: { ...first, sequence: 2 }, session: expect.objectContaining({ lastSequence: 2 }) });
    expect(b).toStrictEqual({ outcome: "replayed", message: { ...first, sequence: 2 } });
    // A replay runs no mutation, so it succeeds on a session finished since.
    await store.mutateSession(ORG_ID, s.id, { type: "completed" }, (c) => ({ ...c, state: "completed" }));
    const late = await store.appendMessage(message(s), () => {
      throw new Error("not run for a replay");
    }, key);
    expect(late).toStrictEqual({ outcome: "replayed", message: { ...first, sequence: 2 } });
    const other = await store.appendMessage(message(s), (c) => c, { ...key, requestHash: new Uint8Array([2]) });
    expect(other).toStrictEqual({ outcome: "conflict" });
    expect(rowCount(store, "messages", s.id)).toBe(1);
    expect((await allEvents(store, s)).map((e) => e.type)).toStrictEqual(["created", "message_added", "completed"]);
  });

  it("deletes a session's messages and events with it, and only its own", async () => {
    const store = await open();
    const [gone, kept] = [session(), session()];
    for (const s of [gone, kept]) {
      await store.insertSession(s);
      for (let i = 0; i < 3; i++) await store.appendMessage(message(s), (c) => c);
    }
    expect(await store.deleteSession(ORG_ID, gone.id, () => {})).toBeDefined();
    expect(rowCount(store, "messages", gone.id)).toBe(0);
    expect(rowCount(store, "session_events", gone.id)).toBe(0);
    expect(rowCount(store, "messages", kept.id)).toBe(3);
    expect(rowCount(store, "session_events", kept.id)).toBe(4);
    // A session stored again under the same id would start its log from 1 (nothing left over).
    await store.insertSession({ ...gone, createdAt: gone.createdAt + 1 });
    expect((await allEvents(store, gone)).map((e) => [e.sequence, e.type])).toStrictEqual([[1, "created"]]);
  });

  it("pages messages and events by sequence, ending early at the byte budget", async () => {
    const store = await open();
    const s = session();
    await store.insertSession(s);
    const big = "x".repeat(10_000);
    for (let i = 0; i < 5; i++) {
      await store.appendMessage(message(s, { content: [{ kind: "text", text: big }], usage: undefined }), (c) => c);
    }
    const page = await store.listMessages(ORG_ID, s.id, 0, 3);
    expect(page.records.map((m) => m.sequence)).toStrictEqual([2, 3, 4]);
    expect(page.more).toBe(true);
    const rest = await store.listMessages(ORG_ID, s.id, 4, 3);
    expect(rest.records.map((m) => m.sequence)).toStrictEqual([5, 6]);
    expect(rest.more).toBe(false);
    // Each message is ~10 KB stored: a 25,000-byte budget holds two.
    const budgeted = await store.listMessages(ORG_ID, s.id, 0, 100, 25_000);
    expect(budgeted.records.map((m) => m.sequence)).toStrictEqual([2, 3]);
    expect(budgeted.more).toBe(true);
    const events = await store.listSessionEvents(ORG_ID, s.id, 1, 100, 25_000);
    expect(events.records.map((e) => e.sequence)).toStrictEqual([2, 3]);
    // The first record is read whatever its size.
    expect((await store.listSessionEvents(ORG_ID, s.id, 2, 100, 1)).records.map((e) => e.sequence)).toStrictEqual([3]);
  });

  it("gives each session of a database from before the log one CREATED event with its current state", async () => {
    const path = tempPath();
    const before = new Database(path);
    for (let version = 0; version < MIGRATIONS.length - 1; version++) {
      before.exec(MIGRATIONS[version]!);
      before.pragma(`user_version = ${version + 1}`);
    }
    before
      .prepare(
        `INSERT INTO sessions (id, org_id, agent_id, model_id, capabilities, title, tags, state, input_tokens,
           output_tokens, cache_read_tokens, cache_creation_tokens, prompt_preview, response_preview, created_at,
           updated_at, started_at, finished_at, error, version)
         VALUES (?, ?, ?, '', '[{"capability_id":"search"}]', 'old', '["x"]', 'completed', 5, 6, 7, 8, 'p', 'r', 100, 300, 200, 300, '', 4)`,
      )
      .run(`session_${hex(0xabc)}`, ORG_ID, AGENT_ID);
    before.close();

    const store = await open(path);
    const id = `session_${hex(0xabc)}`;
    const migrated = (await store.findSession(ORG_ID, id))!;
    expect(migrated).toStrictEqual({
      id, orgId: ORG_ID, agentId: AGENT_ID, modelId: "", capabilities: [{ capabilityId: "search", config: undefined }],
      title: "old", tags: ["x"], state: "completed",
      usage: { inputTokens: 5n, outputTokens: 6n, cacheReadTokens: 7n, cacheCreationTokens: 8n },
      promptPreview: "p", responsePreview: "r", error: "", createdAt: 100, updatedAt: 300, startedAt: 200, finishedAt: 300,
      version: 4, messageCount: 0, lastSequence: 1,
    });
    const events = await allEvents(store, migrated);
    expect(events).toStrictEqual([
      { orgId: ORG_ID, sessionId: id, sequence: 1, type: "created", createdAt: 300, message: undefined, usageDelta: undefined, session: migrated },
    ]);
    // The log goes on from there.
    const changed = await store.mutateSession(ORG_ID, id, { type: "updated" }, (c) => ({ ...c, title: "new" }));
    expect(changed?.lastSequence).toBe(2);
  });
});
