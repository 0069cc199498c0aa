import Database from "better-sqlite3";
import { closeSync, fsyncSync, openSync } from "node:fs";
import { SqliteStore } from "../src/store/sqlite.js";
import { sessionToRow } from "../src/store/sqlite-rows.js";
import type { SessionRecord, SessionState } from "../src/store/store.js";
import { createIdGenerator, ID_PATTERN } from "../src/ids.js";
import { DEFAULT_ORG_ID } from "../src/auth/authenticator.js";

/**
 * Fills a database with `count` sessions before a server opens it, fast: the schema and
 * the first agents come from the store itself (so they are whatever the server expects),
 * and the sessions go in as raw INSERTs in large transactions with synchronous=OFF. That
 * setting lives only on this connection, for the fill: the server sets its own (FULL)
 * when it opens the file. Rows are encoded by the store's own sessionToRow, so a change
 * of row format in src/store reaches the fill too.
 *
 * Sessions are spread evenly over the `spanDays` before `endMs`, with the service's
 * UUIDv7 ids for their creation times, so ids and created_at grow together as in real
 * use; every session has 0–2 tags, with their session_tags rows.
 */
export interface PreloadResult {
  readonly sessions: number;
  readonly tagRows: number;
  readonly seconds: number;
  readonly sessionsPerSecond: number;
  readonly agentIds: readonly string[];
}

const TAGS = ["ci", "prod", "nightly", "eval", "staging"];
const STATES: readonly SessionState[] = ["completed", "completed", "completed", "completed", "completed", "completed", "completed", "failed", "cancelled", "running"];
const AGENTS = 10;
const BATCH = 50_000;

export async function preloadSessions(
  path: string,
  count: number,
  options: { endMs?: number; spanDays?: number; log?: (line: string) => void } = {},
): Promise<PreloadResult> {
  const started = performance.now();
  const endMs = options.endMs ?? Date.now() - 3_600_000; // an hour ago: every later create is newer
  const spanMs = (options.spanDays ?? 30) * 86_400_000;
  const startMs = endMs - spanMs;

  // Schema and agents through the store.
  const store = new SqliteStore(path);
  const nextAgentId = createIdGenerator(() => startMs - 1000);
  const agentIds = Array.from({ length: AGENTS }, () => nextAgentId("agent"));
  for (const [i, id] of agentIds.entries()) {
    await store.insertAgent({
      id, orgId: DEFAULT_ORG_ID, name: `preloaded agent ${i}`, defaultModelId: "model_0123456789abcdef0123456789abcdef",
      capabilities: [], createdAt: startMs - 1000, updatedAt: startMs - 1000, version: 1,
    });
  }
  await store.close();

  const db = new Database(path);
  // No journal while filling (a failed fill is thrown away, not recovered); WAL again after.
  db.pragma(`journal_mode = ${process.env.PJ ?? "OFF"}`);
  db.pragma("synchronous = OFF");
  db.pragma("cache_size = -262144"); // 256 MiB: the indexes being appended to stay in memory
  const sessionColumns = insertableColumns(db, "sessions", Object.keys(sessionToRow(sampleSession(agentIds[0]!, startMs, "x"))));
  const insertSession = db.prepare(
    `INSERT INTO sessions (${sessionColumns.join(", ")}) VALUES (${sessionColumns.map((c) => "@" + c).join(", ")})`,
  );
  const tagColumns = insertableColumns(db, "session_tags", ["org_id", "tag", "created_at", "session_id"]);
  if (tagColumns.length !== 4) throw new Error("session_tags no longer has (org_id, tag, created_at, session_id): update bench/preload.ts");
  const insertTag = db.prepare("INSERT INTO session_tags (org_id, tag, created_at, session_id) VALUES (?, ?, ?, ?)");

  const nextSessionId = timeOrderedIds();
  let tagRows = 0;
  const fill = db.transaction((from: number, to: number) => {
    for (let i = from; i < to; i++) {
      const createdAt = startMs + Math.floor((i * spanMs) / count);
      const session = sampleSession(agentIds[i % AGENTS]!, createdAt, nextSessionId(createdAt), i);
      const row = sessionToRow(session) as unknown as Record<string, unknown>;
      insertSession.run(Object.fromEntries(sessionColumns.map((c) => [c, row[c]])));
      for (const tag of session.tags) insertTag.run(session.orgId, tag, BigInt(session.createdAt), session.id);
      tagRows += session.tags.length;
    }
  });
  let reportedTenths = 0;
  for (let from = 0; from < count; from += BATCH) {
    const to = Math.min(count, from + BATCH);
    fill(from, to);
    const tenths = Math.floor((10 * to) / count);
    if (options.log && tenths > reportedTenths && count >= 10 * BATCH) {
      reportedTenths = tenths;
      const rate = Math.round(to / ((performance.now() - started) / 1000));
      options.log(`preload: ${to.toLocaleString("en")} sessions, ${rate.toLocaleString("en")}/s`);
    }
  }
  db.pragma("journal_mode = WAL");
  db.close();
  // Written with synchronous=OFF, the file is mostly dirty page cache still: flush it now,
  // or the kernel writes it back during the first measurements and slows their fsyncs.
  const fd = openSync(path, "r+");
  fsyncSync(fd);
  closeSync(fd);
  const seconds = (performance.now() - started) / 1000;
  return { sessions: count, tagRows, seconds, sessionsPerSecond: count / seconds, agentIds };
}

/**
 * Session ids in the service's form (UUIDv7: 48 bits of milliseconds, version 7, a 12-bit
 * counter, variant, random bits), strictly increasing. Not src/ids.ts: its generator
 * draws fresh random bits through the crypto module at every new millisecond, which was
 * a third of the fill's time; uniqueness here needs only the counter.
 */
function timeOrderedIds(): (ms: number) => string {
  let lastMs = -1;
  let counter = 0;
  return (ms) => {
    if (ms > lastMs) {
      lastMs = ms;
      counter = 0;
    } else if (++counter > 0xfff) {
      lastMs++;
      counter = 0;
    }
    const random = Math.floor(Math.random() * 2 ** 30).toString(16).padStart(8, "0").slice(-8);
    const id = `session_${lastMs.toString(16).padStart(12, "0")}7${counter.toString(16).padStart(3, "0")}8${random.slice(1)}${Math.floor(Math.random() * 2 ** 32).toString(16).padStart(8, "0")}`;
    if (!ID_PATTERN.session.test(id)) throw new Error(`preload made a malformed id ${id}`);
    return id;
  };
}

/** A finished session of the kind a platform accumulates; `i` varies state, tags and usage. */
function sampleSession(agentId: string, createdAt: number, id: string, i = 0): SessionRecord {
  const state = STATES[i % STATES.length]!;
  const finished = state === "completed" || state === "failed" || state === "cancelled";
  const tagCount = i % 3;
  return {
    id, orgId: DEFAULT_ORG_ID, agentId, modelId: "", capabilities: [],
    title: `preloaded session ${i}`,
    tags: Array.from({ length: tagCount }, (_, k) => TAGS[(i + k) % TAGS.length]!),
    state,
    usage: { inputTokens: BigInt(i % 5000), outputTokens: BigInt(i % 900), cacheReadTokens: 0n, cacheCreationTokens: 0n },
    promptPreview: "Review the pull request", responsePreview: finished ? "Done." : "",
    error: state === "failed" ? "tool timed out" : "",
    createdAt, updatedAt: createdAt + 1000,
    startedAt: state === "pending" ? undefined : createdAt + 10,
    finishedAt: finished ? createdAt + 1000 : undefined,
    version: finished ? 4 : 2,
    messageCount: 0,
    lastSequence: 1,
  };
}

/**
 * The columns of `table` to fill: those the row mapping provides. A column it does not
 * know is left to its default, or stops the fill, naming it, if it has none.
 */
function insertableColumns(db: Database.Database, table: string, known: readonly string[]): string[] {
  const columns = db.pragma(`table_info(${table})`) as Array<{ name: string; notnull: number; dflt_value: unknown; pk: number }>;
  for (const c of columns) {
    if (!known.includes(c.name) && c.notnull && c.dflt_value === null) {
      throw new Error(`preload: ${table}.${c.name} is NOT NULL without a default and unknown to the row mapping: update bench/preload.ts`);
    }
  }
  return columns.map((c) => c.name).filter((name) => known.includes(name));
}
