import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { SqliteStore } from "../../src/store/sqlite.js";
import type { SessionRecord } from "../../src/store/store.js";
import { createIdGenerator } from "../../src/ids.js";
import { DEFAULT_ORG_ID } from "../../src/auth/authenticator.js";
import { generateApiKey } from "../../src/auth/api-key.js";
import { startServerProcess, type ServerProcess } from "../server-process.js";

/**
 * The server the memory attacks (large pages, pipelining, non-reading clients, bodies
 * never sent) are aimed at: `node --import tsx src/main.ts` of the worktree in
 * ATTACK_TREE (default: this one, so that main's code can be measured from a checkout of
 * it), on a database seeded here, with its peak RSS read from /proc (VmHWM).
 */
export interface Target {
  readonly server: ServerProcess;
  readonly url: string;
  readonly port: number;
  /** A valid key when the target was started keyed. */
  readonly key: string | undefined;
  /** Peak and current resident set of the serving process, in MB. */
  rss(): { peakMb: number; nowMb: number };
  close(): Promise<void>;
}

export const AGENT_ID = "agent_0123456789abcdef0123456789abcdef";

export async function startTarget(options: {
  sessions: number;
  /** Stored size of each session's capability config, bytes. */
  sessionBytes: number;
  keyed?: boolean;
  args?: readonly string[];
}): Promise<Target> {
  const dir = mkdtempSync(join(tmpdir(), "attack-"));
  const db = join(dir, "sessions.db");
  const store = new SqliteStore(db);
  const now = Date.now() - 3_600_000;
  await store.insertAgent({ id: AGENT_ID, orgId: DEFAULT_ORG_ID, name: "a", defaultModelId: "model_fedcba9876543210fedcba9876543210", capabilities: [], createdAt: now, updatedAt: now, version: 1 });
  const newId = createIdGenerator(() => now);
  // Up to 64 capabilities of up to 60 KiB each, as the field rules allow.
  const perCapability = Math.min(60 * 1024, options.sessionBytes);
  const capabilities = Array.from({ length: Math.max(1, Math.round(options.sessionBytes / perCapability)) }, (_, i) => ({
    capabilityId: `cap-${i}`,
    config: { blob: "x".repeat(perCapability) },
  }));
  const writes: Promise<unknown>[] = [];
  for (let i = 0; i < options.sessions; i++) {
    writes.push(store.insertSession(session(newId("session"), now + i, options.sessionBytes > 0 ? capabilities : [])));
    if (writes.length >= 50) await Promise.all(writes.splice(0));
  }
  await Promise.all(writes);
  let key: string | undefined;
  if (options.keyed) {
    const generated = generateApiKey(DEFAULT_ORG_ID, "attack", Date.now());
    await store.insertKey(generated.record);
    key = generated.key;
  }
  await store.close();
  const tree = resolve(process.env.ATTACK_TREE ?? ".");
  const server = await startServerProcess({
    command: process.execPath,
    args: ["--import", "tsx", "src/main.ts", "--port", "0", "--db", db, "--log-level", "warn", ...(options.args ?? [])],
    cwd: tree,
  });
  const url = server.url;
  return {
    server,
    url,
    port: Number(new URL(url).port),
    key,
    rss: () => {
      const status = readFileSync(`/proc/${server.servingPid}/status`, "utf8");
      const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)![1]);
      return { peakMb: Math.round(kb("VmHWM") / 1024), nowMb: Math.round(kb("VmRSS") / 1024) };
    },
    close: async () => {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Seconds since `start`, to one decimal. */
export const since = (start: number) => Math.round((performance.now() - start) / 100) / 10;

/** GET /healthz on a fresh connection: its latency in ms, or the error. */
export async function probe(url: string, timeoutMs = 2000): Promise<string> {
  const start = performance.now();
  try {
    const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(timeoutMs) });
    return `${res.status} in ${Math.round(performance.now() - start)} ms`;
  } catch (err) {
    return `no answer (${(err as Error).name})`;
  }
}

function session(id: string, createdAt: number, capabilities: SessionRecord["capabilities"]): SessionRecord {
  return {
    id, orgId: DEFAULT_ORG_ID, agentId: AGENT_ID, modelId: "", capabilities, title: "attack", tags: [], state: "pending",
    usage: { inputTokens: 0n, outputTokens: 0n, cacheReadTokens: 0n, cacheCreationTokens: 0n },
    promptPreview: "", responsePreview: "", error: "", createdAt, updatedAt: createdAt, startedAt: undefined, finishedAt: undefined, version: 1, messageCount: 0, lastSequence: 1,
  };
}
