/**
 * Micro-benchmark of the SQLite store's write path, without any server: `rows` calls of
 * insertSession through SqliteStore, `concurrency` of them in flight at a time, with group
 * commit on and off. Prints rows/s and per-call latency. Not a test; the full benchmark is
 * `npm run bench`.
 *
 *   node --import tsx bench/store-micro.ts [--rows 10000] [--concurrency 1,16,64,256,all] [--modes on,off]
 *
 * Each run gets a fresh database in a temporary folder, on the same file system as tmpdir()
 * (set TMPDIR to measure another disk); the durability settings are the server's own.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { createIdGenerator } from "../src/ids.js";
import { SqliteStore } from "../src/store/sqlite.js";
import type { SessionRecord } from "../src/store/store.js";

const ORG_ID = "org_00000000000000000000000000000001";
const AGENT_ID = "agent_0123456789abcdef0123456789abcdef";

const { values } = parseArgs({
  options: {
    rows: { type: "string", default: "10000" },
    concurrency: { type: "string", default: "1,16,64,256,all" },
    modes: { type: "string", default: "on,off" },
  },
});
const rows = Number(values.rows);
const concurrencies = values.concurrency.split(",").map((c) => (c === "all" ? rows : Number(c)));
const modes = values.modes.split(",").map((m) => m === "on");

interface Result {
  readonly groupCommit: boolean;
  readonly concurrency: number;
  readonly rowsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /**
   * The longest the event loop was blocked, as monitorEventLoopDelay saw it; null when the
   * loop never turned (without group commit every insert commits inside the call, and the
   * workers' awaits on settled promises never yield to it).
   */
  readonly maxLoopStallMs: number | null;
}

async function run(groupCommit: boolean, concurrency: number): Promise<Result> {
  const dir = mkdtempSync(join(tmpdir(), "store-micro-"));
  const store = new SqliteStore(join(dir, "micro.db"), { groupCommit });
  try {
    const now = Date.now();
    await store.insertAgent({
      id: AGENT_ID, orgId: ORG_ID, name: "bench", defaultModelId: "", capabilities: [], createdAt: now, updatedAt: now, version: 1,
    });
    const newId = createIdGenerator();
    const latencies = new Float64Array(rows);
    let next = 0;
    const worker = async () => {
      while (next < rows) {
        const i = next++;
        const started = performance.now();
        if (!(await store.insertSession(session(newId("session"), i)))) throw new Error("the agent is missing");
        latencies[i] = performance.now() - started;
      }
    };
    const loop = monitorEventLoopDelay({ resolution: 1 });
    loop.enable();
    const started = performance.now();
    await Promise.all(Array.from({ length: Math.min(concurrency, rows) }, worker));
    const elapsed = performance.now() - started;
    loop.disable();
    latencies.sort();
    return {
      groupCommit,
      concurrency,
      rowsPerSecond: Math.round(rows / (elapsed / 1000)),
      p50Ms: round(latencies[Math.floor(rows * 0.5)]!),
      p99Ms: round(latencies[Math.floor(rows * 0.99)]!),
      maxMs: round(latencies[rows - 1]!),
      maxLoopStallMs: loop.count === 0 ? null : round(loop.max / 1e6),
    };
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A session as CreateSession stores it, with two tags (so three rows per insert). */
function session(id: string, i: number): SessionRecord {
  const now = Date.now();
  return {
    id, orgId: ORG_ID, agentId: AGENT_ID, modelId: "", capabilities: [],
    title: `bench session ${i}`, tags: ["bench", `shard-${i % 8}`], state: "pending",
    usage: { inputTokens: 0n, outputTokens: 0n, cacheReadTokens: 0n, cacheCreationTokens: 0n },
    promptPreview: "", responsePreview: "", error: "",
    createdAt: now, updatedAt: now, startedAt: undefined, finishedAt: undefined, version: 1, messageCount: 0, lastSequence: 1,
  };
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}

const results: Result[] = [];
for (const groupCommit of modes) {
  for (const concurrency of concurrencies) {
    const result = await run(groupCommit, concurrency);
    results.push(result);
    console.log(
      `group commit ${groupCommit ? "on " : "off"}  concurrency ${String(concurrency).padStart(6)}  ` +
        `${String(result.rowsPerSecond).padStart(7)} rows/s  p50 ${result.p50Ms} ms  p99 ${result.p99Ms} ms  ` +
        `max ${result.maxMs} ms  longest loop stall ${result.maxLoopStallMs === null ? "n/a" : `${result.maxLoopStallMs} ms`}`,
    );
  }
}
console.log(JSON.stringify({ rows, node: process.version, tmpdir: tmpdir(), results }));
