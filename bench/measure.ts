import Database from "better-sqlite3";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { runH2load, runWrk, type LoadResult } from "./load-tools.js";
import type { HttpRequest, Protocol } from "./requests.js";
import { checkRequest } from "./check-request.js";
import { startInterferenceAccount, type Interference } from "./interference.js";

/**
 * One measurement: a warm-up with the same tool (JIT, connection pools, SQLite cache),
 * then the measured run, then the proof that it measured success — no failed request,
 * and for writes, the rows in the database to show for it.
 */

export interface LoadSettings {
  readonly seconds: number;
  readonly warmupSeconds: number;
  /** wrk connections (HTTP/1.1). */
  readonly connections: number;
  readonly wrkThreads: number;
  /** h2load clients (HTTP/2 connections) and concurrent streams on each. */
  readonly h2Clients: number;
  readonly h2Streams: number;
  /** Before each warm-up, wait (up to 5 minutes) until other processes leave the CPUs and the disk alone. */
  readonly waitQuiet: boolean;
  readonly workDir: string;
}

/** wrk for REST (HTTP/1.1), h2load for the RPC protocols (h2c), as the floors are driven too. */
export function toolFor(protocol: Protocol | "node-http-floor" | "grpc-js-floor"): "wrk" | "h2load" {
  return protocol === "rest" || protocol === "node-http-floor" ? "wrk" : "h2load";
}

export interface RateLimit {
  /** Requests per second per connection (h2load --rps); REST then goes through h2load --h1. */
  readonly perConnection: number;
}

/**
 * Runs the request's tool once for `seconds`, unchecked. With a rate, always h2load (REST
 * then over --h1, one request in flight per connection), since wrk cannot hold a rate.
 */
export async function drive(
  baseUrl: string,
  tool: "wrk" | "h2load",
  requests: HttpRequest | readonly HttpRequest[],
  seconds: number,
  s: LoadSettings,
  rate?: RateLimit,
): Promise<LoadResult> {
  const all: readonly HttpRequest[] = Array.isArray(requests) ? requests : [requests as HttpRequest];
  const request = all[0]!;
  const url = baseUrl + request.path;
  if (tool === "wrk" && !rate) {
    if (all.some((r) => r.method !== request.method || r.body?.join() !== request.body?.join())) {
      throw new Error("wrk spreads requests over paths only: method and body must be the same");
    }
    return runWrk({
      url, method: request.method, headers: request.headers,
      ...(request.body ? { body: new TextDecoder().decode(request.body) } : {}),
      ...(all.length > 1 ? { rotatePaths: all.map((r) => r.path) } : {}),
      connections: s.connections, threads: s.wrkThreads, seconds, workDir: s.workDir,
    });
  }
  if (all.some((r) => r.method !== "POST")) throw new Error("h2load sends a body, so it only drives POST requests here");
  if (all.some((r) => r.path !== request.path)) throw new Error("h2load spreads requests over bodies only: the path must be the same");
  const bodyFile = all.map((r, i) => {
    const file = join(s.workDir, `body-${process.hrtime.bigint()}-${i}.bin`);
    writeFileSync(file, r.body ?? new Uint8Array());
    return file;
  });
  const http1 = tool === "wrk";
  return runH2load({
    url, headers: request.headers, bodyFile: bodyFile.length === 1 ? bodyFile[0]! : bodyFile, seconds, workDir: s.workDir,
    clients: http1 ? s.connections : s.h2Clients,
    streamsPerClient: http1 ? 1 : s.h2Streams,
    ...(rate ? { rpsPerClient: rate.perConnection } : {}),
    http1,
  });
}

export interface Measurement {
  /** Names the measurement in progress lines and errors. */
  readonly what: string;
  readonly baseUrl: string;
  /** Decides the tool (toolFor) and how the checked request is read. */
  readonly protocol: Protocol;
  /** The request checked first, and the one the tools send unless `spread` is given. */
  readonly request: HttpRequest;
  /**
   * Requests of the same kind the tools send instead, for writes spread over several
   * targets (sessions): wrk takes them in turn, request by request (they may differ in
   * path only); h2load runs one process per request, each with its share of the clients
   * (they may differ in body only; at most one per client).
   */
  readonly spread?: readonly HttpRequest[];
  /** The serving process, whose CPU time is not "other processes". */
  readonly serverPid: number;
  /** For writes: the database must show one write per answered success. */
  readonly proof?: WriteProof;
  /** Told the monotonic time (µs) the measured run starts and ends, e.g. to cut a CPU profile. */
  readonly onWindow?: (fromUs: number, toUs: number) => void;
}

/**
 * One request checked (checkRequest), a warm-up, the measured run; throws if any request
 * failed. h2load sees only HTTP statuses, so its runs must also have received about as
 * many response bytes as the checked answer times the requests: a gRPC error is a 200
 * with trailers only, and would show up here as missing data.
 */
export async function measure(m: Measurement, s: LoadSettings): Promise<LoadResult> {
  const tool = toolFor(m.protocol);
  const checked = await checkRequest(m.baseUrl, m.protocol, m.request);
  if (s.waitQuiet) await waitUntilQuiet(m.what, m.serverPid, s.workDir);
  if (s.warmupSeconds > 0) {
    const warm = await drive(m.baseUrl, tool, m.spread ?? m.request, s.warmupSeconds, s);
    if (warm.failures > 0) throw new Error(`${m.what}: ${warm.failures} failed requests during warm-up (${warm.failureDetail})`);
  }
  const before = m.proof?.count();
  const fromUs = Number(process.hrtime.bigint() / 1000n);
  const others = startInterferenceAccount(m.serverPid, s.workDir);
  const result = { ...(await drive(m.baseUrl, tool, m.spread ?? m.request, s.seconds, s)), ...others() };
  m.onWindow?.(fromUs, Number(process.hrtime.bigint() / 1000n));
  if (result.failures > 0) throw new Error(`${m.what}: ${result.failures} of ${result.requests} requests failed (${result.failureDetail})`);
  if (result.requests === 0) throw new Error(`${m.what}: no request completed`);
  if (m.proof) {
    // Let requests still in flight when the tool stopped finish, so that they count too.
    await new Promise((resolve) => setTimeout(resolve, 300));
    // First: it can name the cause of the failures found below (a session at its cap).
    m.proof.verify?.();
  }
  if (result.responseDataBytes !== undefined) {
    const perResponse = result.responseDataBytes / result.requests;
    if (perResponse < 0.8 * checked.bodyBytes) {
      throw new Error(`${m.what}: ${perResponse.toFixed(0)} response bytes per request, where a successful answer has ${checked.bodyBytes}`);
    }
  }
  if (m.proof) {
    const grown = (m.proof.count() - before!) / m.proof.perRequest;
    // Every answered success must have left its write; a gRPC error in a 200's trailers
    // (invisible to h2load) would not.
    if (grown < result.requests) {
      throw new Error(`${m.what}: ${result.requests} answered successes but only ${grown} writes in the database (${m.proof.what})`);
    }
    // Beyond the answered ones, only requests still in flight when a tool stopped (the
    // warm-up's and the run's) may have been written.
    const inFlight = 2 * (tool === "wrk" ? s.connections : s.h2Clients * s.h2Streams);
    if (m.proof.exact && grown > result.requests + inFlight) {
      throw new Error(`${m.what}: ${grown} writes in the database for ${result.requests} answered successes and at most ${inFlight} in flight (${m.proof.what})`);
    }
  }
  return result;
}

/**
 * Waits, at most 5 minutes, until other processes (not the server, not this one or its
 * load tools) use less than a tenth of a core and write less than 1 MiB/s over a second.
 */
export async function waitUntilQuiet(what: string, serverPid: number, dir: string): Promise<void> {
  const othersOverASecond = async () => {
    const account = startInterferenceAccount(serverPid, dir);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    return account();
  };
  const busy = (o: Interference) => o.otherCpuCores >= 0.1 || o.otherDiskWriteMiBps >= 1;
  const started = performance.now();
  let others = await othersOverASecond();
  if (!busy(others)) return;
  process.stdout.write(
    `· ${what}: waiting for other processes to leave the machine alone ` +
      `(${others.otherCpuCores.toFixed(2)} cores, ${others.otherDiskWriteMiBps.toFixed(1)} MiB/s written)\n`,
  );
  while (busy(others) && performance.now() - started < 300_000) others = await othersOverASecond();
}

/** How to see in the database that each answered write happened. */
export interface WriteProof {
  readonly what: string;
  /** A number that grows by `perRequest` with each write. */
  count(): number;
  readonly perRequest: number;
  /**
   * Nothing else writes it: the growth must equal the answered successes, give or take
   * the requests in flight when the tools stopped (without it, only at least).
   */
  readonly exact?: boolean;
  /** A consistency check of what was written, after the run; throws, saying what is wrong. */
  verify?(): void;
}

/** Rows in a `sessions` table (ours or a floor's), read on a separate read-only connection. */
export function sessionRowsProof(dbPath: string, sinceMs: number): WriteProof & { close(): void } {
  const db = new Database(dbPath, { readonly: true });
  const statement = db.prepare<[number], number>("SELECT count(*) FROM sessions WHERE created_at >= ?").pluck();
  return { what: `rows in ${dbPath}`, perRequest: 1, count: () => statement.get(sinceMs)!, close: () => db.close() };
}

/** The input_tokens sum of one session: each RecordUsage adds `perRequest`. */
export function usageProof(dbPath: string, sessionId: string, perRequest: number): WriteProof & { close(): void } {
  const db = new Database(dbPath, { readonly: true });
  const statement = db.prepare<[string], number>("SELECT input_tokens FROM sessions WHERE id = ?").pluck();
  return {
    what: `input_tokens of ${sessionId}`,
    perRequest,
    count: () => Number(statement.get(sessionId)),
    close: () => db.close(),
  };
}

/**
 * AddMessage's proof on the sessions it appends to, which take no other usage: their
 * summed input tokens (each append adds `perRequest`), and afterwards, for each session,
 * its stored usage is the sum of its messages' usage and its event log is gapless:
 * events 1..last_sequence, each once, one message_added event per message, and
 * message_count the messages held, below the cap.
 */
export function conversationProof(
  dbPath: string,
  sessionIds: readonly string[],
  perRequest: number,
  messagesPerSession: number,
): WriteProof & { close(): void } {
  const db = new Database(dbPath, { readonly: true });
  const inputTokens = db.prepare<[string], number>("SELECT input_tokens FROM sessions WHERE id = ?").pluck();
  const session = db.prepare<[string], { input_tokens: number; output_tokens: number; message_count: number; last_sequence: number }>(
    "SELECT input_tokens, output_tokens, message_count, last_sequence FROM sessions WHERE id = ?",
  );
  const messages = db.prepare<[string], { n: number; input: number | null; output: number | null }>(
    "SELECT count(*) AS n, sum(input_tokens) AS input, sum(output_tokens) AS output FROM messages WHERE session_id = ?",
  );
  const events = db.prepare<[string], { n: number; first: number | null; last: number | null; added: number }>(
    "SELECT count(*) AS n, min(sequence) AS first, max(sequence) AS last, " +
      "coalesce(sum(type = 'message_added'), 0) AS added FROM session_events WHERE session_id = ?",
  );
  return {
    what: `input_tokens of ${sessionIds.length} sessions`,
    perRequest,
    exact: true,
    count: () => sessionIds.reduce((sum, id) => sum + Number(inputTokens.get(id)), 0),
    verify: () => {
      for (const id of sessionIds) {
        const s = session.get(id);
        const m = messages.get(id)!;
        const e = events.get(id)!;
        if (!s) throw new Error(`session ${id} is gone`);
        const problems = [
          s.message_count !== m.n ? `message_count ${s.message_count} but ${m.n} messages stored` : "",
          s.input_tokens !== (m.input ?? 0) || s.output_tokens !== (m.output ?? 0)
            ? `usage ${s.input_tokens}/${s.output_tokens} tokens, its messages carry ${m.input ?? 0}/${m.output ?? 0}`
            : "",
          e.n !== s.last_sequence || e.first !== 1 || e.last !== s.last_sequence
            ? `events not 1..${s.last_sequence} once each: ${e.n} events, sequences ${e.first}..${e.last}`
            : "",
          e.added !== m.n ? `${e.added} message_added events for ${m.n} messages` : "",
        ].filter((p) => p !== "");
        if (s.message_count >= messagesPerSession) {
          problems.push(
            `it reached the cap of ${messagesPerSession} messages, so later appends failed: ` +
              "run shorter (--duration, --warmup) or over more connections (--h2-clients)",
          );
        }
        if (problems.length > 0) throw new Error(`session ${id} after AddMessage: ${problems.join("; ")}`);
      }
    },
    close: () => db.close(),
  };
}
