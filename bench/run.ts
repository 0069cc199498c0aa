import Database from "better-sqlite3";
import { mkdirSync, mkdtempSync, readlinkSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, delimiter, dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { SqliteStore } from "../src/store/sqlite.js";
import { ensureLoadTools, toolVersions, type LoadResult } from "./load-tools.js";
import { startServerProcess, type ServerProcess } from "./server-process.js";
import { memoryOf, resetPeak } from "./memory.js";
import { startInterferenceAccount } from "./interference.js";
import {
  buildRequest, CONVERSATION_READS, MESSAGE_USAGE, OPERATION_NAMES, OPERATIONS, PROTOCOLS, USAGE_DELTA, type Operation, type Protocol,
  type Targets,
} from "./requests.js";
import { checkRequest } from "./check-request.js";
import { conversationProof, drive, measure, sessionRowsProof, toolFor, usageProof, waitUntilQuiet, type LoadSettings } from "./measure.js";
import { createAgent, createSession, deepPageToken, type DeepPage } from "./fixtures.js";
import { openFloorStore } from "./floors/floor-store.js";
import { preloadSessions, type PreloadResult } from "./preload.js";
import { openWatchers } from "./watchers.js";
import { createFollowedSessions, openFollowers, type FollowerProtocol, type FollowerShape } from "./followers.js";
import { fillConversation, messagesPageToken, type Conversation } from "./conversation.js";
import { DEFAULT_MESSAGES_PER_SESSION } from "../src/service/conversation.js";
import { DEFAULT_STREAM_LIMITS } from "../src/service/stream-caps.js";
import { findMainThreadProfile, profileMarkdown, summariseProfile, type TimeWindow } from "./profile.js";
import { cpuBusyPercent, formatTable, freshPath, gitState, machine, packageVersions, today, type Row } from "./report.js";

/**
 * `npm run bench`: the real server (through `npm start`, on a temporary database) driven
 * by wrk and h2load on loopback, beside two hand-written floors measured in the same run;
 * a table on standard output and a JSON file in bench/results/. See bench/README.md.
 */

const REPO = fileURLToPath(new URL("..", import.meta.url));
const FLOOR_OF: Record<Protocol, "node-http-floor" | "grpc-js-floor"> = {
  rest: "node-http-floor",
  "connect-json": "grpc-js-floor",
  "connect-proto": "grpc-js-floor",
  grpc: "grpc-js-floor",
  "grpc-web": "grpc-js-floor",
};

interface Options {
  readonly load: Omit<LoadSettings, "workDir">;
  readonly pageSize: number;
  readonly deepPages: number;
  readonly preload: number;
  readonly watchers: number;
  readonly followers: number;
  readonly followerShapes: readonly FollowerShape[];
  readonly followerProtocols: readonly FollowerProtocol[];
  readonly profile: boolean;
  readonly protocols: readonly Protocol[];
  readonly operations: readonly Operation[];
  readonly out: string;
  readonly keep: boolean;
}

const USAGE = `npm run bench -- [options]
  --duration S      seconds per measurement (default 5)
  --warmup S        seconds of warm-up before each measurement (default 1)
  --connections N   wrk connections for REST and the node:http floor (default 32)
  --wrk-threads N   wrk threads (default 1: the server needs the other core)
  --h2-clients N    h2load connections for gRPC, Connect, gRPC-Web and the grpc-js floor (default 4)
  --h2-streams N    h2load concurrent streams per connection (default 16)
  --page-size N     ListSessions page size (default 50)
  --deep-pages N    how many pages deep the deep page is, at most (default 10000)
  --preload N       also measure a server whose database holds N sessions (default 0: skip)
  --watchers N      also measure creates with N WatchSession streams open (default 0: skip)
  --followers N     also measure creates with N StreamSessionEvents streams open (default 0: skip)
  --follower-shapes LIST  per-session (one follower per session), one-session (all on one
                    session, at most 1000: the per-session stream cap), or both (the default)
  --follower-protocols LIST  grpc (100 streams per HTTP/2 connection), sse (REST
                    Server-Sent Events, a connection each), or both (the default)
  --profile         also CPU-profile the server under REST create load
  --protocols LIST  comma-separated subset of ${PROTOCOLS.join(",")}
  --operations LIST comma-separated subset of ${OPERATIONS.join(",")}
  --out DIR         results folder (default bench/results)
  --wait-quiet      before each measurement, wait until other processes leave the CPUs idle
  --keep            keep the temporary folder (databases, tool logs)`;

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      duration: { type: "string", default: "5" },
      warmup: { type: "string", default: "1" },
      connections: { type: "string", default: "32" },
      "wrk-threads": { type: "string", default: "1" },
      "h2-clients": { type: "string", default: "4" },
      "h2-streams": { type: "string", default: "16" },
      "page-size": { type: "string", default: "50" },
      "deep-pages": { type: "string", default: "10000" },
      preload: { type: "string", default: "0" },
      watchers: { type: "string", default: "0" },
      followers: { type: "string", default: "0" },
      "follower-shapes": { type: "string", default: "per-session,one-session" },
      "follower-protocols": { type: "string", default: "grpc,sse" },
      profile: { type: "boolean", default: false },
      protocols: { type: "string", default: PROTOCOLS.join(",") },
      operations: { type: "string", default: OPERATIONS.join(",") },
      out: { type: "string", default: join(REPO, "bench", "results") },
      keep: { type: "boolean", default: false },
      "wait-quiet": { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE + "\n");
    process.exit(0);
  }
  const count = (name: keyof typeof values, min: number) => {
    const n = Number(values[name]);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be a whole number of at least ${min}, got ${values[name]}`);
    return n;
  };
  const subset = <T extends string>(name: string, text: string, all: readonly T[]): T[] => {
    const chosen = text.split(",").filter((s) => s !== "");
    for (const c of chosen) if (!all.includes(c as T)) throw new Error(`--${name}: unknown ${c}; choose from ${all.join(", ")}`);
    return all.filter((a) => chosen.includes(a));
  };
  const followerShapes = subset("follower-shapes", values["follower-shapes"]!, ["per-session", "one-session"] as const);
  if (followerShapes.includes("one-session") && count("followers", 0) > DEFAULT_STREAM_LIMITS.perSession) {
    throw new Error(
      `--followers ${values.followers} on one session is past the server's cap of ${DEFAULT_STREAM_LIMITS.perSession} streams per session: ` +
        "use --follower-shapes per-session, or fewer followers",
    );
  }
  return {
    load: {
      seconds: count("duration", 1),
      warmupSeconds: count("warmup", 0),
      connections: count("connections", 1),
      wrkThreads: count("wrk-threads", 1),
      h2Clients: count("h2-clients", 1),
      h2Streams: count("h2-streams", 1),
      waitQuiet: values["wait-quiet"]!,
    },
    pageSize: count("page-size", 1),
    deepPages: count("deep-pages", 1),
    preload: count("preload", 0),
    watchers: count("watchers", 0),
    followers: count("followers", 0),
    followerShapes,
    followerProtocols: subset("follower-protocols", values["follower-protocols"]!, ["grpc", "sse"] as const),
    profile: values.profile!,
    protocols: subset("protocols", values.protocols!, PROTOCOLS),
    operations: subset("operations", values.operations!, OPERATIONS),
    out: values.out!,
    keep: values.keep!,
  };
}

const log = (line: string) => process.stdout.write(`· ${line}\n`);
const mib = (n: number) => `${n.toFixed(0)} MiB`;

/** `npm start -- --port 0 --db <path>`: the path a user starts the server by. */
function startOurServer(dbPath: string): Promise<ServerProcess> {
  return startServerProcess({
    command: "npm",
    args: ["start", "--", "--port", "0", "--db", dbPath],
    cwd: REPO,
    env: withThisNodeFirst(),
    servingCommandLine: /dist\/main\.js/,
  });
}

/**
 * npm start runs the `node` first on PATH; putting this process's own first makes the
 * server run on the Node the floors and the report name, whichever binary started the bench.
 */
function withThisNodeFirst(): NodeJS.ProcessEnv {
  return { ...process.env, PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ""}` };
}

function startFloor(name: "node-http-floor" | "grpc-js-floor", dbPath: string): Promise<ServerProcess> {
  return startServerProcess({
    command: process.execPath,
    args: ["--import", "tsx", join(REPO, "bench", "floors", `${name}.ts`), "--port", "0", "--db", dbPath],
    cwd: REPO,
  });
}

async function stopChecked(server: ServerProcess, what: string): Promise<void> {
  const code = await server.stop();
  if (code !== 0) throw new Error(`${what} exited ${code} on SIGTERM:\n${server.stderr().slice(-4000)}`);
}

/** Beyond these, what other processes did during a measurement makes its figure suspect, and the row says so. */
const NOISY = { cores: 0.15, diskWriteMiBps: 2 };

function row(protocol: string, operation: string, result: LoadResult, floorRps?: number, note?: string): Row {
  const cores = result.otherCpuCores ?? 0;
  const disk = result.otherDiskWriteMiBps ?? 0;
  const notes = [
    note ?? "",
    cores > NOISY.cores ? `other processes used ${cores.toFixed(2)} cores` : "",
    disk > NOISY.diskWriteMiBps ? `other processes wrote ${disk.toFixed(1)} MiB/s` : "",
  ].filter((n) => n !== "");
  const round = (n: number | undefined) => (n === undefined ? undefined : Math.round(n * 100) / 100);
  return {
    protocol, operation, tool: result.tool, rps: result.rps, p50Ms: result.p50Ms, p99Ms: result.p99Ms,
    ...(floorRps ? { ratio: result.rps / floorRps } : {}),
    bytesPerResponse: result.bytesPerResponse,
    ...(notes.length > 0 ? { note: notes.join("; ") } : {}),
    otherCpuCores: round(result.otherCpuCores),
    otherDiskWriteMiBps: round(result.otherDiskWriteMiBps),
  };
}

/** Measures a floor's CreateSession in its own process on its own database. */
async function measureFloor(name: "node-http-floor" | "grpc-js-floor", agentId: string, s: LoadSettings): Promise<LoadResult> {
  const dbPath = join(s.workDir, `${name}.db`);
  const floor = await startFloor(name, dbPath);
  try {
    const protocol = name === "node-http-floor" ? "rest" : "grpc";
    const request = buildRequest(protocol, "create", { agentId, sessionId: "", deepPageToken: "", pageSize: 0 });
    const proof = sessionRowsProof(dbPath, Date.now());
    try {
      return await measure({ what: `${name} CreateSession`, baseUrl: floor.url, serverPid: floor.servingPid, protocol, request, proof }, s);
    } finally {
      proof.close();
    }
  } finally {
    await stopChecked(floor, name);
  }
}

/** The settings a server connection runs with, read back from a connection opened by the store's own code. */
async function serverSqliteSettings(dbPath: string) {
  const store = new SqliteStore(dbPath);
  const pragma = (name: string) => store.db.pragma(name, { simple: true });
  const settings = {
    sqlite_version: store.db.prepare("SELECT sqlite_version()").pluck().get(),
    journal_mode: pragma("journal_mode"),
    synchronous: ["OFF", "NORMAL", "FULL", "EXTRA"][pragma("synchronous") as number],
    wal_autocheckpoint: pragma("wal_autocheckpoint"),
    busy_timeout: pragma("busy_timeout"),
    cache_size: pragma("cache_size"),
    mmap_size: pragma("mmap_size"),
    page_size: pragma("page_size"),
  };
  await store.close();
  return settings;
}

function floorSqliteSettings(dbPath: string) {
  const { db } = openFloorStore(dbPath);
  const settings = {
    journal_mode: db.pragma("journal_mode", { simple: true }),
    synchronous: ["OFF", "NORMAL", "FULL", "EXTRA"][db.pragma("synchronous", { simple: true }) as number],
  };
  db.close();
  return settings;
}

function countSessions(dbPath: string): number {
  const db = new Database(dbPath, { readonly: true });
  try {
    return db.prepare("SELECT count(*) FROM sessions").pluck().get() as number;
  } finally {
    db.close();
  }
}

/** Sends one request of each kind and fails loudly on any error, before any load. */
async function checkEveryRequest(url: string, targets: Targets, o: Options, operations: readonly Operation[]): Promise<void> {
  for (const protocol of o.protocols) {
    for (const operation of operations) await checkRequest(url, protocol, buildRequest(protocol, operation, targets));
  }
}

/** CreateSession on every protocol and both floors, the floors right before their first counterpart. */
async function measureCreates(server: ServerProcess, dbPath: string, targets: Targets, o: Options, s: LoadSettings) {
  const rows: Row[] = [];
  const results: Record<string, LoadResult> = {};
  const floors: Partial<Record<"node-http-floor" | "grpc-js-floor", LoadResult>> = {};
  const peakReset = resetPeak(server.servingPid);
  for (const protocol of o.protocols) {
    const floorName = FLOOR_OF[protocol];
    if (!floors[floorName]) {
      log(`${floorName}: CreateSession (${toolFor(floorName)})`);
      floors[floorName] = await measureFloor(floorName, targets.agentId, s);
      rows.push(row(floorName, "CreateSession", floors[floorName]!, undefined, "floor"));
    }
    log(`${protocol}: CreateSession (${toolFor(protocol)})`);
    const proof = sessionRowsProof(dbPath, Date.now());
    try {
      results[protocol] = await measure(
        { what: `${protocol} CreateSession`, baseUrl: server.url, serverPid: server.servingPid, protocol, request: buildRequest(protocol, "create", targets), proof },
        s,
      );
    } finally {
      proof.close();
    }
    rows.push(row(protocol, "CreateSession", results[protocol]!, floors[floorName]!.rps));
  }
  return { rows, results, floors, peakMiB: memoryOf(server.servingPid).peakMiB, peakReset };
}

/**
 * Latency at half the measured peak rate, the load a service is sized for: h2load at a
 * fixed rate per connection (--rps; REST through --h1, since wrk has no rate limit).
 */
async function measureHalfRate(server: ServerProcess, targets: Targets, peaks: Record<string, LoadResult>, o: Options, s: LoadSettings) {
  const rows: Row[] = [];
  for (const protocol of (["rest", "grpc"] as const).filter((p) => peaks[p])) {
    const tool = toolFor(protocol);
    const connections = tool === "wrk" ? s.connections : s.h2Clients;
    const perConnection = Math.max(1, Math.floor(peaks[protocol]!.rps / 2 / connections));
    log(`${protocol}: CreateSession at half the peak (${perConnection * connections} rps offered)`);
    if (s.waitQuiet) await waitUntilQuiet(`${protocol} CreateSession at half the peak`, server.servingPid, s.workDir);
    const others = startInterferenceAccount(server.servingPid, s.workDir);
    const result = { ...(await drive(server.url, tool, buildRequest(protocol, "create", targets), o.load.seconds, s, { perConnection })), ...others() };
    if (result.failures > 0) throw new Error(`${protocol} CreateSession at half rate: ${result.failureDetail}`);
    rows.push({ ...row(protocol, "CreateSession @ ½ peak", result), tool: tool === "wrk" ? "h2load --h1 --rps" : "h2load --rps" });
  }
  return rows;
}

async function measureReads(server: ServerProcess, dbPath: string, targets: Targets, o: Options, s: LoadSettings, floors: Record<string, LoadResult>) {
  const rows: Row[] = [];
  const results: Record<string, LoadResult> = {};
  resetPeak(server.servingPid);
  const own: readonly Operation[] = ["create", "add-message", ...CONVERSATION_READS];
  for (const operation of o.operations.filter((op) => !own.includes(op))) {
    for (const protocol of o.protocols) {
      log(`${protocol}: ${OPERATION_NAMES[operation]} (${toolFor(protocol)})`);
      const proof = operation === "record-usage" ? usageProof(dbPath, targets.sessionId, Number(USAGE_DELTA.inputTokens)) : undefined;
      try {
        const request = buildRequest(protocol, operation, targets);
        const result = await measure({ what: `${protocol} ${OPERATION_NAMES[operation]}`, baseUrl: server.url, serverPid: server.servingPid, protocol, request, ...(proof ? { proof } : {}) }, s);
        results[`${protocol} ${operation}`] = result;
        rows.push(row(protocol, OPERATION_NAMES[operation], result, floors[FLOOR_OF[protocol]]?.rps));
      } finally {
        proof?.close();
      }
    }
  }
  return { rows, results, peakMiB: memoryOf(server.servingPid).peakMiB };
}

/** Creates again with N WatchSession streams held open: their memory, and what they cost the writers. */
async function measureWithWatchers(server: ServerProcess, dbPath: string, targets: Targets, o: Options, s: LoadSettings, before: Record<string, LoadResult>) {
  const rssBefore = memoryOf(server.servingPid).rssMiB;
  log(`opening ${o.watchers} WatchSession streams`);
  const watchers = await openWatchers(server.url, targets.agentId, o.watchers);
  try {
    const rssOpen = memoryOf(server.servingPid).rssMiB;
    resetPeak(server.servingPid);
    const rows: Row[] = [];
    for (const protocol of (["rest", "grpc"] as const).filter((p) => o.protocols.includes(p))) {
      log(`${protocol}: CreateSession with ${o.watchers} watchers`);
      const proof = sessionRowsProof(dbPath, Date.now());
      try {
        const request = buildRequest(protocol, "create", targets);
        const result = await measure({ what: `${protocol} CreateSession with watchers`, baseUrl: server.url, serverPid: server.servingPid, protocol, request, proof }, s);
        const note = before[protocol] ? `${(result.rps / before[protocol]!.rps).toFixed(2)}× without watchers` : undefined;
        rows.push(row(protocol, `CreateSession, ${o.watchers} watching`, result, undefined, note));
      } finally {
        proof.close();
      }
    }
    return {
      rows,
      streams: watchers.open,
      connections: watchers.connections,
      rssBeforeMiB: rssBefore,
      rssWithStreamsMiB: rssOpen,
      addedMiB: rssOpen - rssBefore,
      peakUnderCreateLoadMiB: memoryOf(server.servingPid).peakMiB,
      unexpectedMessages: watchers.extraMessages(),
    };
  } finally {
    await watchers.close();
  }
}

/** Events in the long conversation the page reads go through; its deep pages start 100 from its end. */
const CONVERSATION_EVENTS = 10_000;

/**
 * Sessions each AddMessage measurement spreads its appends over, so that none reaches the
 * server's message cap: for wrk, taken in turn request by request, as many as 15,000
 * appends/s for the warm-up and the run would need at 80 % of the cap; for h2load, one
 * per connection (h2load cannot vary a body), so a run is good for about
 * 0.8 × cap × clients appends: 32,000 with the defaults.
 */
function appendSessionCount(tool: "wrk" | "h2load", s: LoadSettings): number {
  if (tool === "h2load") return s.h2Clients;
  return Math.max(8, Math.ceil((15_000 * (s.warmupSeconds + s.seconds)) / (0.8 * DEFAULT_MESSAGES_PER_SESSION)));
}

/**
 * AddMessage on every protocol: an assistant message with a text part, a model and usage,
 * appended to fresh PENDING sessions (see appendSessionCount), with the proof that each
 * answered append is in the sessions' usage and that their event logs are gapless.
 */
async function measureAppends(server: ServerProcess, dbPath: string, targets: Targets, o: Options, s: LoadSettings, floors: Record<string, LoadResult>) {
  const rows: Row[] = [];
  const results: Record<string, LoadResult> = {};
  resetPeak(server.servingPid);
  for (const protocol of o.protocols) {
    const tool = toolFor(protocol);
    const sessionIds: string[] = [];
    for (let i = appendSessionCount(tool, s); i > 0; i--) sessionIds.push(await createSession(server.url, targets.agentId, "appended to"));
    log(`${protocol}: AddMessage over ${sessionIds.length} sessions (${tool})`);
    const spread = sessionIds.map((id) => buildRequest(protocol, "add-message", { ...targets, messageSessionId: id }));
    const proof = conversationProof(dbPath, sessionIds, Number(MESSAGE_USAGE.inputTokens), DEFAULT_MESSAGES_PER_SESSION);
    try {
      const result = await measure(
        { what: `${protocol} AddMessage`, baseUrl: server.url, serverPid: server.servingPid, protocol, request: spread[0]!, spread, proof },
        s,
      );
      results[protocol] = result;
      rows.push(row(protocol, OPERATION_NAMES["add-message"], result, floors[FLOOR_OF[protocol]]?.rps, `${sessionIds.length} sessions`));
    } finally {
      proof.close();
    }
  }
  return { rows, results, peakMiB: memoryOf(server.servingPid).peakMiB };
}

/**
 * Page 1 and a page 9,900 deep of the long conversation, over REST and gRPC: its event
 * log by after_sequence, its messages by page token.
 */
async function measureConversationReads(server: ServerProcess, targets: Targets, o: Options, s: LoadSettings) {
  const rows: Row[] = [];
  const c = targets.conversation!;
  for (const protocol of (["rest", "grpc"] as const).filter((p) => o.protocols.includes(p))) {
    const firsts: Partial<Record<Operation, LoadResult>> = {};
    for (const operation of CONVERSATION_READS.filter((op) => o.operations.includes(op))) {
      log(`${protocol}: ${OPERATION_NAMES[operation]} of a ${CONVERSATION_EVENTS.toLocaleString("en")}-event session`);
      const request = buildRequest(protocol, operation, targets);
      const result = await measure({ what: `${protocol} ${OPERATION_NAMES[operation]}`, baseUrl: server.url, serverPid: server.servingPid, protocol, request }, s);
      firsts[operation] = result;
      const first = operation === "events-deep" ? firsts["events-first"] : operation === "messages-deep" ? firsts["messages-first"] : undefined;
      const depth = operation === "events-deep" ? `after_sequence ${c.eventsAfterSequence}` : operation === "messages-deep" ? `${c.messagesDeep} messages deep` : "";
      const note = [
        `${CONVERSATION_EVENTS.toLocaleString("en")}-event session`,
        depth,
        first ? `${(result.rps / first.rps).toFixed(2)}× page 1` : "",
      ].filter((n) => n !== "").join("; ");
      rows.push(row(protocol, OPERATION_NAMES[operation], result, undefined, note));
    }
  }
  return rows;
}

/**
 * Creates with N StreamSessionEvents streams held open, over each protocol and in each
 * shape asked for: their memory, and what they cost the writers. Each set on a server of
 * its own, started for it on an empty database, so that the RSS the streams add is not
 * hidden in heap that earlier phases grew and left free, nor in the garbage of an earlier
 * set; its creates compare with the main server's, also measured from an empty database.
 */
async function measureWithFollowers(o: Options, s: LoadSettings, before: Record<string, LoadResult>) {
  const rows: Row[] = [];
  const shapes = [];
  for (const [over, shape] of o.followerProtocols.flatMap((p) => o.followerShapes.map((sh) => [p, sh] as const))) {
    const dbPath = join(s.workDir, `followers-${over}-${shape}.db`);
    const server = await startOurServer(dbPath);
    try {
      const agentId = await createAgent(server.url);
      const targets: Targets = { agentId, sessionId: "", deepPageToken: "", pageSize: o.pageSize };
      const sessionIds = await createFollowedSessions(server.url, agentId, o.followers, shape);
      const rssBefore = memoryOf(server.servingPid).rssMiB;
      log(`opening ${o.followers} StreamSessionEvents streams over ${over}, ${shape} (a server of their own)`);
      const followers = await openFollowers(server.url, sessionIds, shape, over);
      try {
        const rssOpen = memoryOf(server.servingPid).rssMiB;
        resetPeak(server.servingPid);
        for (const protocol of (["rest", "grpc"] as const).filter((p) => o.protocols.includes(p))) {
          log(`${protocol}: CreateSession with ${o.followers} ${over} followers, ${shape}`);
          const proof = sessionRowsProof(dbPath, Date.now());
          try {
            const request = buildRequest(protocol, "create", targets);
            const result = await measure(
              { what: `${protocol} CreateSession with ${over} followers (${shape})`, baseUrl: server.url, serverPid: server.servingPid, protocol, request, proof },
              s,
            );
            const note = before[protocol] ? `${(result.rps / before[protocol]!.rps).toFixed(2)}× without followers` : undefined;
            const on = shape === "one-session" ? "all on 1 session" : "1 per session";
            rows.push(row(protocol, `CreateSession, ${o.followers} ${over === "sse" ? "SSE" : "gRPC"} followers ${on}`, result, undefined, note));
          } finally {
            proof.close();
          }
        }
        shapes.push({
          over,
          shape,
          streams: followers.open,
          sessions: followers.sessions,
          connections: followers.connections,
          rssBeforeMiB: rssBefore,
          rssWithStreamsMiB: rssOpen,
          addedMiB: rssOpen - rssBefore,
          peakUnderCreateLoadMiB: memoryOf(server.servingPid).peakMiB,
          unexpectedEvents: followers.extraEvents(),
        });
      } finally {
        await followers.close();
      }
    } finally {
      await stopChecked(server, `server with ${over} followers (${shape})`);
    }
  }
  return { rows, shapes };
}

/** A second server on a database holding N sessions: creates and pages against the empty-database figures. */
async function measurePreloaded(o: Options, s: LoadSettings, empty: Record<string, LoadResult>) {
  const dbPath = join(s.workDir, "preloaded.db");
  log(`preloading ${o.preload.toLocaleString("en")} sessions into ${dbPath}`);
  const filled: PreloadResult = await preloadSessions(dbPath, o.preload, { log });
  log(`preloaded in ${filled.seconds.toFixed(1)} s (${Math.round(filled.sessionsPerSecond).toLocaleString("en")} sessions/s)`);
  const server = await startOurServer(dbPath);
  const stored = `${o.preload.toLocaleString("en")} preloaded`;
  try {
    const agentId = await createAgent(server.url);
    // The fill's count, not count(*): counting 10 million rows blocks this process for
    // seconds, past the server's keep-alive timeout, and fetch then reuses a closed socket.
    const deep = await deepPageToken(server.url, o.pageSize, o.deepPages, filled.sessions);
    const targets: Targets = { agentId, sessionId: "", deepPageToken: deep.token, pageSize: o.pageSize };
    const protocols = (["rest", "grpc"] as const).filter((p) => o.protocols.includes(p));
    const lists = (["list-first", "list-deep"] as const).filter((op) => o.operations.includes(op));
    resetPeak(server.servingPid);
    const rows: Row[] = [];
    // Pages before creates: page 1 and the deep page then both hold preloaded sessions, so
    // the two differ in depth only, not in what their sessions carry.
    for (const protocol of protocols) {
      let first: LoadResult | undefined;
      for (const operation of lists) {
        log(`${protocol}: ${OPERATION_NAMES[operation]} with ${stored}`);
        const request = buildRequest(protocol, operation, targets);
        const result = await measure(
          { what: `${protocol} ${OPERATION_NAMES[operation]}, ${stored}`, baseUrl: server.url, serverPid: server.servingPid, protocol, request },
          s,
        );
        if (operation === "list-first") first = result;
        const note = operation === "list-deep"
          ? `${deep.pagesDeep} pages deep${first ? `; ${(result.rps / first.rps).toFixed(2)}× page 1` : ""}`
          : undefined;
        rows.push(row(protocol, OPERATION_NAMES[operation], result, undefined, note));
      }
    }
    for (const protocol of o.operations.includes("create") ? protocols : []) {
      log(`${protocol}: CreateSession with ${stored}`);
      const proof = sessionRowsProof(dbPath, Date.now());
      try {
        const request = buildRequest(protocol, "create", targets);
        const created = await measure(
          { what: `${protocol} CreateSession, ${stored}`, baseUrl: server.url, serverPid: server.servingPid, protocol, request, proof },
          s,
        );
        const note = empty[protocol] ? `${(created.rps / empty[protocol]!.rps).toFixed(2)}× empty database` : undefined;
        rows.push(row(protocol, "CreateSession", created, undefined, note));
      } finally {
        proof.close();
      }
    }
    return { filled, deep, rows, peakMiB: memoryOf(server.servingPid).peakMiB };
  } finally {
    await stopChecked(server, "preloaded server");
  }
}

/** The server started as `node --cpu-prof`, under the REST create load, for one measurement. */
async function profileRestCreates(o: Options, s: LoadSettings) {
  const dir = join(s.workDir, "cpu-profile");
  const dbPath = join(s.workDir, "profile.db");
  const server = await startServerProcess({
    command: process.execPath,
    args: ["--cpu-prof", "--cpu-prof-dir", dir, "--import", "tsx", "src/main.ts", "--port", "0", "--db", dbPath],
    cwd: REPO,
  });
  let result: LoadResult;
  let window: TimeWindow | undefined;
  try {
    const agentId = await createAgent(server.url);
    const targets: Targets = { agentId, sessionId: "", deepPageToken: "", pageSize: o.pageSize };
    log("rest: CreateSession under node --cpu-prof");
    const proof = sessionRowsProof(dbPath, Date.now());
    try {
      const request = buildRequest("rest", "create", targets);
      const onWindow = (fromUs: number, toUs: number) => void (window = { fromUs, toUs });
      result = await measure({ what: "rest CreateSession (profiled)", baseUrl: server.url, serverPid: server.servingPid, protocol: "rest", request, proof, onWindow }, s);
    } finally {
      proof.close();
    }
  } finally {
    await stopChecked(server, "profiled server");
  }
  const file = findMainThreadProfile(dir);
  return { result, summary: summariseProfile(file, REPO, window) };
}

/**
 * Everything measured on the main server (an empty database at the start): creates with
 * the floors, creates at half rate, then reads and usage on what the creates left behind,
 * then optionally creates with watchers open.
 */
async function measureMainServer(o: Options, s: LoadSettings) {
  const dbPath = join(s.workDir, "sessions.db");
  const readsConversation = CONVERSATION_READS.some((op) => o.operations.includes(op));
  let conversation: Conversation | undefined;
  if (readsConversation) {
    // Into the file before the server opens it: one session of the main database, an hour old.
    conversation = await fillConversation(dbPath, CONVERSATION_EVENTS);
    log(`long conversation: ${conversation.events.toLocaleString("en")} events (${conversation.messages.toLocaleString("en")} messages) through the store in ${conversation.seconds.toFixed(1)} s`);
  }
  const server = await startOurServer(dbPath);
  const afterStart = memoryOf(server.servingPid);
  const servingNode = readlinkSync(`/proc/${server.servingPid}/exe`);
  if (servingNode !== realpathSync(process.execPath)) {
    throw new Error(`npm start ran ${servingNode}, not this bench's ${process.execPath}: the figures would compare two runtimes`);
  }
  log(`server ${server.url} (npm start, node ${process.version} pid ${server.servingPid}, ${mib(afterStart.rssMiB)} after start)`);
  const rows: Row[] = [];
  try {
    const agentId = await createAgent(server.url);
    const sessionId = await createSession(server.url, agentId, "read and usage target");
    let targets: Targets = { agentId, sessionId, deepPageToken: "", pageSize: o.pageSize };
    if (conversation) {
      const eventsAfterSequence = Math.max(0, conversation.events - 100);
      const messagesDeep = Math.max(0, Math.min(eventsAfterSequence, conversation.messages - o.pageSize));
      const messagesDeepPageToken = await messagesPageToken(server.url, conversation.sessionId, messagesDeep);
      targets = { ...targets, conversation: { sessionId: conversation.sessionId, eventsAfterSequence, messagesDeepPageToken, messagesDeep } };
    }
    await checkEveryRequest(server.url, targets, o, o.operations.filter((op) => op !== "list-deep"));
    log(`one request of each kind answered correctly (${o.protocols.length} protocols)`);

    const creates = o.operations.includes("create")
      ? await measureCreates(server, dbPath, targets, o, s)
      : { rows: [], results: {}, floors: {}, peakMiB: NaN, peakReset: false };
    rows.push(...creates.rows);
    if (o.operations.includes("create")) rows.push(...(await measureHalfRate(server, targets, creates.results, o, s)));

    let deep: DeepPage | undefined;
    let readOptions = o;
    const stored = countSessions(dbPath);
    if (o.operations.includes("list-deep") && stored < 2 * o.pageSize) {
      // Only the creates fill this database: without them there is no deep page to read.
      log(`no deep page on this server: ${stored} sessions stored, fewer than two pages`);
      readOptions = { ...o, operations: o.operations.filter((op) => op !== "list-deep") };
    } else if (o.operations.includes("list-deep")) {
      deep = await deepPageToken(server.url, o.pageSize, o.deepPages, stored);
      targets = { ...targets, deepPageToken: deep.token };
      await checkEveryRequest(server.url, targets, o, ["list-deep"]);
      log(`deep page: ${deep.pagesDeep} pages of ${o.pageSize} deep (position ${deep.position})`);
    }
    const reads = await measureReads(server, dbPath, targets, readOptions, s, creates.floors);
    rows.push(...reads.rows);
    const appends = o.operations.includes("add-message") ? await measureAppends(server, dbPath, targets, o, s, creates.floors) : undefined;
    rows.push(...(appends?.rows ?? []));
    if (readsConversation) rows.push(...(await measureConversationReads(server, targets, o, s)));
    const watchers = o.watchers > 0 ? await measureWithWatchers(server, dbPath, targets, o, s, creates.results) : undefined;
    rows.push(...(watchers?.rows ?? []));
    return {
      rows,
      creates,
      reads,
      server: {
        memory: {
          afterStartMiB: afterStart.rssMiB,
          peakDuringCreatesMiB: creates.peakMiB,
          peakDuringReadsMiB: reads.peakMiB,
          ...(appends ? { peakDuringAppendsMiB: appends.peakMiB } : {}),
          peakResetWorked: creates.peakReset,
          note: "VmHWM of the node process (the node child of npm), reset through /proc/<pid>/clear_refs at the start of each phase",
        },
        deepPage: deep,
        watchers: watchers && { ...watchers, rows: undefined },
        conversation: conversation && {
          ...conversation,
          eventsAfterSequence: targets.conversation?.eventsAfterSequence,
          messagesDeep: targets.conversation?.messagesDeep,
          note: "filled through SqliteStore into the main database before the server started",
        },
        messagesPerSessionCap: DEFAULT_MESSAGES_PER_SESSION,
        sessionsAtEnd: countSessions(dbPath),
      },
    };
  } finally {
    await stopChecked(server, "server");
  }
}

async function main(): Promise<void> {
  const o = parseOptions();
  const startedAt = new Date();
  log(`node ${process.version} (${process.execPath}): the server, the floors and the load checks all run on it`);
  ensureLoadTools(log);
  const busyAtStart = await cpuBusyPercent();
  if (busyAtStart > 20) log(`WARNING: other processes use ${busyAtStart} % of the CPUs: the figures will be low and noisy`);
  const git = gitState(REPO);
  if (git.uncommittedServerChanges.length > 0) log(`note: measuring uncommitted changes: ${git.uncommittedServerChanges.join(", ")}`);
  const workDir = mkdtempSync(join(tmpdir(), "sessions-bench-"));
  const s: LoadSettings = { ...o.load, workDir };
  log(`temporary folder ${workDir}`);
  try {
    const main = await measureMainServer(o, s);
    const rows = [...main.rows];
    const floors = Object.fromEntries(
      Object.entries(main.creates.floors).map(([name, result]) => [name, { ...result, sqlite: floorSqliteSettings(join(workDir, `${name}.db`)) }]),
    );
    let followers;
    if (o.followers > 0) {
      const followed = await measureWithFollowers(o, s, main.creates.results);
      rows.push(...followed.rows);
      followers = followed.shapes;
    }
    const server = { sqlite: await serverSqliteSettings(join(workDir, "sessions.db")), ...main.server, ...(followers ? { followers } : {}) };

    let preload;
    if (o.preload > 0) {
      const preloaded = await measurePreloaded(o, s, main.creates.results);
      rows.push(...preloaded.rows.map((r) => ({ ...r, protocol: `${r.protocol} (${o.preload.toLocaleString("en")} stored)` })));
      preload = { ...preloaded, rows: undefined };
    }
    let profile;
    if (o.profile) {
      const profiled = await profileRestCreates(o, s);
      const context =
        `\`npm run bench -- --profile\` on ${machine().cpuModel} (${machine().cores} cores), ${startedAt.toISOString()}, commit ${git.commit.slice(0, 7)}: ` +
        `\`node --cpu-prof --import tsx src/main.ts\` under wrk, ${o.load.connections} connections, ${o.load.seconds} s ` +
        `(${Math.round(profiled.result.rps)} rps while profiled, p50 ${profiled.result.p50Ms.toFixed(2)} ms, p99 ${profiled.result.p99Ms.toFixed(2)} ms).`;
      mkdirSync(o.out, { recursive: true });
      const file = freshPath(o.out, `profile-${today()}`, "md");
      writeFileSync(file, profileMarkdown(profiled.summary, context));
      log(`profile summary written to ${relative(REPO, file)}`);
      profile = { rps: profiled.result.rps, file: basename(file), areas: profiled.summary.areas, topFrames: profiled.summary.topFrames.slice(0, 15) };
    }

    const results = {
      date: startedAt.toISOString(),
      command: `npm run bench -- ${process.argv.slice(2).join(" ")}`.trim(),
      machine: { ...machine(), cpuBusyPercentBeforeStart: busyAtStart, cpuBusyPercentAfterEnd: await cpuBusyPercent() },
      git,
      versions: { node: process.version, ...packageVersions(REPO), ...toolVersions() },
      settings: {
        load: o.load,
        pageSize: o.pageSize,
        loopback: "127.0.0.1",
        ratios: "REST against the node:http floor; Connect, gRPC and gRPC-Web against the grpc-js floor. " +
          "The floors implement CreateSession only: other operations are compared with the floor's create rate.",
      },
      table: rows,
      server,
      floors,
      ...(preload ? { preload } : {}),
      ...(profile ? { profile } : {}),
    };
    mkdirSync(o.out, { recursive: true });
    const file = freshPath(o.out, `${today()}-${machine().host}-node${process.versions.node.split(".")[0]}`, "json");
    writeFileSync(file, JSON.stringify(results, null, 2) + "\n");

    const m = server.memory;
    process.stdout.write(
      `\nnode ${process.version} (${process.execPath}), the server and both floors alike\n${formatTable(rows)}\n\n` +
        `× floor: REST against the node:http floor, the others against the grpc-js floor (floors do CreateSession only).\n` +
        `server peak RSS: ${mib(m.peakDuringCreatesMiB)} during creates, ${mib(m.peakDuringReadsMiB)} during reads (${mib(m.afterStartMiB)} after start)\n` +
        `sqlite: ${JSON.stringify(server.sqlite)}\n` +
        (server.watchers
          ? `${server.watchers.streams} watchers on ${server.watchers.connections} connections: +${mib(server.watchers.addedMiB)} RSS, ` +
            `peak ${mib(server.watchers.peakUnderCreateLoadMiB)} under create load\n`
          : "") +
        (server.followers ?? [])
          .map((f) => `${f.streams} ${f.over} followers (${f.shape}: ${f.sessions} session${f.sessions === 1 ? "" : "s"}) on ${f.connections} connections: +${mib(f.addedMiB)} RSS, peak ${mib(f.peakUnderCreateLoadMiB)} under create load\n`)
          .join("") +
        `results written to ${relative(REPO, file)}\n`,
    );
  } finally {
    if (o.keep) log(`kept ${workDir}`);
    else rmSync(workDir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
