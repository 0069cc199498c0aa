import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { toJson, type JsonObject } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterEach, describe, expect, it } from "vitest";
import { SessionService } from "../gen/sessions/v1/session_service_pb.js";
import { SessionSchema, type Session } from "../gen/sessions/v1/session_pb.js";
import { createAgentOverRest, requestJson } from "./helpers/server.js";
import { spawnServer, type ServerProcess } from "./helpers/process.js";
import { readCommitted } from "./helpers/database-checks.js";

/**
 * kill -9 of `npm start` in the middle of concurrent creates and recordUsage calls, over
 * REST and gRPC, then a restart on the same file.
 *
 * Each recordUsage call on a session owns one bit k (0–59): it adds 2^k input tokens,
 * 2^k cache-creation tokens, 1 output token and k+1 cache-read tokens. A session's stored
 * input tokens are then the set of calls that committed, and the other three columns must
 * agree with that set (a row is never half-updated). For every session whose create was
 * answered, the test asserts after the restart:
 * - it exists with the values it was answered with (id, agent, title, tags, create time);
 * - every usage call answered with success is in the stored set;
 * - every answered snapshot is a subset of the stored set (so each stored sum is ≥ it);
 * - the stored set holds nothing but answered calls and calls sent whose answer never
 *   came (committed before the kill, answer lost): input tokens = the sum of the answered
 *   deltas + the sum of some of the unanswered ones;
 * - the other three usage columns match the stored set.
 * And for the file: integrity_check is ok, every session's tags match its session_tags
 * rows, and every stored session is one that was sent. Creates carry a request_id; after
 * the restart each unanswered create is retried with it, and afterwards every create sent
 * exists exactly once.
 */

const WORKERS = 12;
/** The kill comes once the load has run this long and this much was answered (a busy machine is slower)… */
const MIN_LOAD_MS = 1500;
const MIN_ANSWERED = { creates: 60, usage: 150 };
/** …or at the latest after this long, and then the test fails for too little load. */
const MAX_LOAD_MS = 20_000;
const USAGE_BITS = 60;

interface AnsweredCreate {
  readonly json: JsonObject;
  readonly via: "rest" | "grpc";
}

interface UsageCalls {
  nextBit: number;
  answered: bigint;
  unanswered: bigint;
  /** Input tokens of each answered snapshot. */
  readonly snapshots: bigint[];
}

const dirs: string[] = [];
const running: ServerProcess[] = [];
afterEach(() => {
  for (const p of running.splice(0)) {
    if (p.child.exitCode !== null || p.child.signalCode !== null) continue;
    try {
      process.kill(-p.child.pid!, "SIGKILL");
    } catch {
      // the group ended between the check and the kill
    }
  }
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function start(db: string): Promise<ServerProcess> {
  const p = await spawnServer(["--port", "0", "--db", db]);
  running.push(p);
  return p;
}

const sessionJson = (session: Session) =>
  toJson(SessionSchema, session, { useProtoFieldName: true, alwaysEmitImplicit: true }) as JsonObject;
const popcount = (n: bigint) => n.toString(2).replaceAll("0", "").length;
const bits = (n: bigint) => [...n.toString(2)].reverse().flatMap((b, k) => (b === "1" ? [k] : []));

describe("kill -9 under load", () => {
  it("keeps every answered create and usage call, half-writes nothing, and leaves a sound file", { timeout: 90_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "sessions-crash-"));
    dirs.push(dir);
    const db = join(dir, "crash.db");
    const first = await start(db);
    const agentId = await createAgentOverRest(first.url);
    const grpc = createClient(SessionService, createGrpcTransport({ baseUrl: first.url }));

    const sentCreates = new Map<string, { requestId: string; title: string; tags: string[] }>();
    const answeredCreates = new Map<string, AnsweredCreate>(); // by title
    const usage = new Map<string, UsageCalls>(); // by session id, for answered creates only
    const counts = { creates: 0, createsAnswered: 0, usageCalls: 0, usageAnswered: 0, failedBeforeKill: 0, failedAfterKill: 0 };
    const failuresBeforeKill: string[] = [];
    let killed = false;
    let inFlight = 0;
    let inFlightAtKill = 0;

    const failed = (what: string, error: unknown) => {
      if (killed) counts.failedAfterKill++;
      else {
        counts.failedBeforeKill++;
        failuresBeforeKill.push(`${what}: ${error instanceof Error ? error.message : String(error)}`);
      }
    };

    async function create(worker: number, n: number, via: "rest" | "grpc"): Promise<void> {
      const title = `w${worker} n${n} via ${via}`;
      const tags = [`worker-${worker}`, `n-${n % 4}`, via];
      const requestId = crypto.randomUUID();
      sentCreates.set(title, { requestId, title, tags });
      counts.creates++;
      let json: JsonObject;
      if (via === "rest") {
        const res = await requestJson(`${first.url}/v1/sessions`, { body: { agent_id: agentId, title, tags, request_id: requestId } });
        if (res.status !== 201) throw new Error(`create answered ${res.status}: ${JSON.stringify(res.body)}`);
        json = res.body as JsonObject;
      } else {
        json = sessionJson(await grpc.createSession({ agentId, title, tags, requestId }));
      }
      counts.createsAnswered++;
      answeredCreates.set(title, { json, via });
      usage.set(json.id as string, { nextBit: 0, answered: 0n, unanswered: 0n, snapshots: [] });
    }

    async function recordUsage(id: string, calls: UsageCalls, via: "rest" | "grpc"): Promise<void> {
      const k = calls.nextBit++;
      const bit = 1n << BigInt(k);
      calls.unanswered |= bit;
      counts.usageCalls++;
      const delta = { inputTokens: bit, outputTokens: 1n, cacheReadTokens: BigInt(k + 1), cacheCreationTokens: bit };
      let inputTokens: bigint;
      if (via === "rest") {
        const res = await requestJson(`${first.url}/v1/sessions/${id}:recordUsage`, {
          body: {
            input_tokens: String(delta.inputTokens),
            output_tokens: String(delta.outputTokens),
            cache_read_tokens: String(delta.cacheReadTokens),
            cache_creation_tokens: String(delta.cacheCreationTokens),
          },
        });
        if (res.status !== 200) throw new Error(`recordUsage answered ${res.status}: ${JSON.stringify(res.body)}`);
        inputTokens = BigInt(res.body.usage.input_tokens);
      } else {
        inputTokens = (await grpc.recordUsage({ id, ...delta })).usage!.inputTokens;
      }
      counts.usageAnswered++;
      calls.unanswered &= ~bit;
      calls.answered |= bit;
      calls.snapshots.push(inputTokens);
    }

    async function worker(w: number): Promise<void> {
      for (let n = 0; !killed; n++) {
        const via = (w + n) % 2 === 0 ? "rest" : "grpc";
        const open = [...usage].filter(([, calls]) => calls.nextBit < USAGE_BITS);
        inFlight++;
        try {
          if (open.length === 0 || n % 3 === 0) await create(w, n, via);
          else {
            const [id, calls] = open[Math.floor(Math.random() * open.length)]!;
            await recordUsage(id, calls, via);
          }
        } catch (error) {
          failed(`worker ${w} request ${n} (${via})`, error);
        } finally {
          inFlight--;
        }
      }
    }

    const workers = Array.from({ length: WORKERS }, (_, w) => worker(w));
    const loadStart = performance.now();
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, 10 + Math.random() * 40));
      const elapsed = performance.now() - loadStart;
      const enough = counts.createsAnswered >= MIN_ANSWERED.creates && counts.usageAnswered >= MIN_ANSWERED.usage;
      if ((enough && elapsed >= MIN_LOAD_MS) || elapsed >= MAX_LOAD_MS) break;
    }
    const loadMs = Math.round(performance.now() - loadStart);
    inFlightAtKill = inFlight;
    killed = true;
    process.kill(-first.child.pid!, "SIGKILL");
    expect(await first.exited).toBe("SIGKILL");
    await Promise.all(workers);
    expect(failuresBeforeKill).toStrictEqual([]);

    const second = await start(db);
    const state = readCommitted(db);
    expect({ integrity: state.integrity, tagsWithoutRow: state.tagsWithoutRow, rowsWithoutTag: state.rowsWithoutTag }).toStrictEqual({
      integrity: "ok",
      tagsWithoutRow: 0,
      rowsWithoutTag: 0,
    });

    // Every answered create, read back over REST from the restarted server.
    let found = 0;
    let committedUnanswered = 0;
    const answered = [...answeredCreates.values()];
    for (let i = 0; i < answered.length; i += 16) {
      await Promise.all(
        answered.slice(i, i + 16).map(async ({ json }) => {
          const id = json.id as string;
          const got = await requestJson(`${second.url}/v1/sessions/${id}`);
          expect(got.status, `session ${id}`).toBe(200);
          found++;
          const { agent_id, title, tags, create_time, model_id, capabilities } = got.body;
          expect({ id: got.body.id, agent_id, title, tags, create_time, model_id, capabilities }).toStrictEqual({
            id,
            agent_id: json.agent_id,
            title: json.title,
            tags: json.tags,
            create_time: json.create_time,
            model_id: json.model_id,
            capabilities: json.capabilities,
          });

          const calls = usage.get(id)!;
          const stored = {
            input: BigInt(got.body.usage.input_tokens),
            output: BigInt(got.body.usage.output_tokens),
            cacheRead: BigInt(got.body.usage.cache_read_tokens),
            cacheCreation: BigInt(got.body.usage.cache_creation_tokens),
          };
          const context = `usage of ${id}: stored ${stored.input.toString(2)}, answered ${calls.answered.toString(2)}, unanswered ${calls.unanswered.toString(2)}`;
          expect(stored.input & calls.answered, context).toBe(calls.answered);
          expect(stored.input & ~(calls.answered | calls.unanswered), context).toBe(0n);
          for (const snapshot of calls.snapshots) expect(snapshot & ~stored.input, context).toBe(0n);
          expect(stored, context).toStrictEqual({
            input: stored.input,
            output: BigInt(popcount(stored.input)),
            cacheRead: bits(stored.input).reduce((sum, k) => sum + BigInt(k + 1), 0n),
            cacheCreation: stored.input,
          });
          committedUnanswered += popcount(stored.input & calls.unanswered);
          expect(state.sessions.get(id)?.inputTokens).toBe(stored.input);
        }),
      );
    }

    // Every stored session was sent; those whose answer was lost were in flight at the kill.
    const storedTitles = [...state.sessions.values()].map((s) => s.title);
    expect(storedTitles.filter((title) => !sentCreates.has(title))).toStrictEqual([]);
    const createsCommittedUnanswered = storedTitles.filter((title) => !answeredCreates.has(title)).length;
    expect(createsCommittedUnanswered + committedUnanswered).toBeLessThanOrEqual(inFlightAtKill);

    // Retrying each unanswered create with its request_id finds the committed one or makes it now, once.
    const unanswered = [...sentCreates.values()].filter((c) => !answeredCreates.has(c.title));
    for (const c of unanswered) {
      const res = await requestJson(`${second.url}/v1/sessions`, {
        body: { agent_id: agentId, title: c.title, tags: c.tags, request_id: c.requestId },
      });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      const before = [...state.sessions.values()].find((s) => s.title === c.title);
      if (before) expect(res.body.id).toBe(before.id);
    }
    const after = readCommitted(db);
    const titles = [...after.sessions.values()].map((s) => s.title).sort();
    expect(titles).toStrictEqual([...sentCreates.keys()].sort());

    console.log(
      [
        `crash test: ${WORKERS} workers for ${loadMs} ms, kill -9 with ${inFlightAtKill} requests in flight`,
        `  creates:   sent ${counts.creates}, answered ${counts.createsAnswered}, answered found after restart ${found}, ` +
          `committed but unanswered ${createsCommittedUnanswered}`,
        `  usage:     sent ${counts.usageCalls}, answered ${counts.usageAnswered}, every answered one found in the stored sums, ` +
          `committed but unanswered ${committedUnanswered}`,
        `  requests:  sent ${counts.creates + counts.usageCalls}, answered ${counts.createsAnswered + counts.usageAnswered}, ` +
          `failed by the kill ${counts.failedAfterKill}`,
        `  sessions in the file after restart: ${state.sessions.size}; integrity_check ${state.integrity}`,
      ].join("\n"),
    );
    expect(found).toBe(counts.createsAnswered);
    expect(counts.createsAnswered).toBeGreaterThanOrEqual(MIN_ANSWERED.creates);
    expect(counts.usageAnswered).toBeGreaterThanOrEqual(MIN_ANSWERED.usage);

    process.kill(-second.child.pid!, "SIGTERM");
    expect(await second.exited).toBe(0);
  });
});
