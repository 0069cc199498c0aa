import { execFileSync, spawn, spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * The load generators: wrk (HTTP/1.1) and h2load (HTTP/2, from nghttp2-client), installed
 * with apt when missing, run for a bounded time against loopback, and their output read
 * back into one shape. Both are C programs: a Node load generator would need more of the
 * two cores than the server under test.
 */

/** One measurement, whatever the tool. Latencies in milliseconds. */
export interface LoadResult {
  readonly tool: "wrk" | "h2load";
  /** Responses completed within the duration. */
  readonly requests: number;
  readonly seconds: number;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Responses that were not 2xx, plus socket errors and timeouts: anything but success. */
  readonly failures: number;
  readonly failureDetail: string;
  /** h2load: response body bytes (DATA frames) received in all; a trailers-only gRPC error has none. */
  readonly responseDataBytes?: number;
  /** Bytes read per response: with headers for wrk, body only for h2load. */
  readonly bytesPerResponse: number;
  /** What other processes did meanwhile (see interference.ts); set by measure(). */
  readonly otherCpuCores?: number;
  readonly otherDiskWriteMiBps?: number;
}

/** Installs wrk and h2load through apt if either is missing, saying so. apt-get update runs once first. */
export function ensureLoadTools(log: (line: string) => void): void {
  const missing = [
    ["wrk", "wrk"],
    ["h2load", "nghttp2-client"],
  ].filter(([binary]) => spawnSync("sh", ["-c", `command -v ${binary}`]).status !== 0);
  if (missing.length === 0) return;
  const packages = missing.map(([, pkg]) => pkg!);
  log(`installing ${packages.join(", ")} with apt (missing: ${missing.map(([b]) => b).join(", ")})`);
  const sudo = process.getuid?.() === 0 ? [] : ["sudo"];
  const run = (args: string[]) => {
    const [command, ...rest] = [...sudo, ...args];
    execFileSync(command!, rest, { stdio: ["ignore", "ignore", "inherit"], env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
  };
  run(["apt-get", "update"]);
  run(["apt-get", "install", "-y", "--no-install-recommends", ...packages]);
}

/** The first line of `<tool> --version`-like output, for the results file. */
export function toolVersions(): Record<string, string> {
  const first = (command: string, args: string[]) => {
    const out = spawnSync(command, args, { encoding: "utf8" });
    return `${out.stdout}${out.stderr}`.split("\n").find((l) => l.trim() !== "")?.trim() ?? "unknown";
  };
  return { wrk: first("wrk", ["-v"]), h2load: first("h2load", ["--version"]) };
}

export interface WrkOptions {
  readonly url: string;
  readonly method: "GET" | "POST";
  readonly headers?: Record<string, string>;
  readonly body?: string;
  /**
   * Paths (with query) to send instead of the url's, in turn, one per request: the same
   * method, headers and body to each. For writes spread over several sessions.
   */
  readonly rotatePaths?: readonly string[];
  readonly connections: number;
  readonly threads: number;
  readonly seconds: number;
  /** Where the generated Lua script goes. */
  readonly workDir: string;
}

/**
 * Runs wrk with a Lua script that sets the request and, in done(), prints the summary as
 * one JSON line: exact counts and percentiles instead of wrk's rounded text.
 * `summary.errors.status` counts responses outside 2xx/3xx; connect/read/write/timeout
 * are socket errors.
 */
export async function runWrk(options: WrkOptions): Promise<LoadResult> {
  const script = join(options.workDir, `wrk-${process.hrtime.bigint()}.lua`);
  const headerLines = Object.entries(options.headers ?? {})
    .map(([name, value]) => `wrk.headers[ ${luaString(name)} ] = ${luaString(value)}`)
    .join("\n");
  writeFileSync(
    script,
    `wrk.method = ${luaString(options.method)}
${options.body === undefined ? "" : `wrk.body = ${luaString(options.body)}`}
${headerLines}
${rotation(options.rotatePaths)}
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BENCH_JSON {"requests":%d,"bytes":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"status_errors":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d}\\n',
    summary.requests, summary.bytes, summary.duration, latency:percentile(50), latency:percentile(99), e.status, e.connect, e.read, e.write, e.timeout))
end
`,
  );
  const { stdout } = await run("wrk", [
    `-t${options.threads}`, `-c${options.connections}`, `-d${options.seconds}s`, "--timeout", "10s", "-s", script, options.url,
  ]);
  const line = stdout.split("\n").find((l) => l.startsWith("BENCH_JSON "));
  if (!line) throw new Error(`wrk printed no summary:\n${stdout}`);
  const s = JSON.parse(line.slice("BENCH_JSON ".length)) as Record<string, number>;
  const seconds = s.duration_us! / 1e6;
  const socketErrors = s.connect! + s.read! + s.write! + s.timeout!;
  return {
    tool: "wrk",
    requests: s.requests!,
    seconds,
    rps: s.requests! / seconds,
    p50Ms: s.p50_us! / 1000,
    p99Ms: s.p99_us! / 1000,
    failures: s.status_errors! + socketErrors,
    failureDetail: `non-2xx/3xx ${s.status_errors}, socket errors connect ${s.connect} read ${s.read} write ${s.write} timeout ${s.timeout}`,
    bytesPerResponse: s.requests! === 0 ? 0 : Math.round(s.bytes! / s.requests!),
  };
}

export interface H2loadOptions {
  readonly url: string;
  readonly headers: Record<string, string>;
  /**
   * A file holding the exact request body; its presence makes h2load POST. Several: one
   * h2load process per file, at once, the clients shared out among them (at least one
   * each), their logs read as one run. For writes spread over several sessions, whose id
   * an RPC carries in its body.
   */
  readonly bodyFile: string | readonly string[];
  readonly clients: number;
  readonly streamsPerClient: number;
  readonly seconds: number;
  readonly workDir: string;
  /** A fixed request rate per client (--rps) instead of as fast as answers come. */
  readonly rpsPerClient?: number;
  /** HTTP/1.1 (--h1), one request in flight per connection, for REST at a fixed rate. */
  readonly http1?: boolean;
}

/**
 * Runs h2load over h2c for a fixed duration. h2load prints only min/mean/max latency, so
 * percentiles come from its per-request log (--log-file: start, status, microseconds),
 * which also gives the exact status of each request. A gRPC error travels in trailers of
 * a 200, which h2load cannot see: callers check those separately (one request checked
 * beforehand, and rows counted afterwards for writes).
 */
export async function runH2load(options: H2loadOptions): Promise<LoadResult> {
  const bodyFiles = typeof options.bodyFile === "string" ? [options.bodyFile] : options.bodyFile;
  if (bodyFiles.length === 0 || bodyFiles.length > options.clients) {
    throw new Error(`h2load: ${bodyFiles.length} body files for ${options.clients} clients; each process needs a client`);
  }
  const headerArgs = Object.entries(options.headers).flatMap(([name, value]) => ["-H", `${name}: ${value}`]);
  const runs = await Promise.all(
    bodyFiles.map(async (bodyFile, i) => {
      // Clients shared out as evenly as they go: the first processes take the remainder.
      const clients = Math.floor(options.clients / bodyFiles.length) + (i < options.clients % bodyFiles.length ? 1 : 0);
      const logFile = join(options.workDir, `h2load-${process.hrtime.bigint()}-${i}.log`);
      const { stdout } = await run("h2load", [
        "-c", String(clients), "-m", String(options.streamsPerClient), "-t", "1",
        "-D", String(options.seconds), "-d", bodyFile, "--log-file", logFile,
        ...(options.rpsPerClient ? [`--rps=${options.rpsPerClient}`] : []),
        ...(options.http1 ? ["--h1"] : []),
        ...headerArgs, options.url,
      ]);
      return { stdout, logFile };
    }),
  );
  let seconds = 0;
  let done = 0, failed = 0, errored = 0, timedOut = 0, dataBytes = 0;
  const latenciesUs: number[] = [];
  const statuses = new Map<number, number>();
  for (const { stdout, logFile } of runs) {
    const finished = /finished in ([\d.]+)(m?s)/.exec(stdout);
    if (!finished) throw new Error(`h2load printed no summary:\n${stdout}`);
    seconds = Math.max(seconds, Number(finished[1]) / (finished[2] === "ms" ? 1000 : 1));
    const counts = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(stdout);
    if (!counts) throw new Error(`h2load printed no request counts:\n${stdout}`);
    const n = counts.map(Number);
    done += n[3]!;
    failed += n[5]!;
    errored += n[6]!;
    timedOut += n[7]!;
    // "traffic: 1.05MB (1100396) total, 6.71KB (6874) headers (space savings 95.27%), 1.00MB (1046000) data"
    const traffic = /traffic: .*?\((\d+)\) total, .*?\((\d+)\) headers.*?\((\d+)\) data/.exec(stdout);
    if (!traffic) throw new Error(`h2load printed no traffic line:\n${stdout}`);
    dataBytes += Number(traffic[3]);
    for (const line of readFileSync(logFile, "utf8").split("\n")) {
      if (line === "") continue;
      const [, status, elapsedUs] = line.split("\t").map(Number);
      statuses.set(status!, (statuses.get(status!) ?? 0) + 1);
      latenciesUs.push(elapsedUs!);
    }
  }
  latenciesUs.sort((a, b) => a - b);
  const not2xx = [...statuses].filter(([status]) => status < 200 || status > 299).reduce((sum, [, n]) => sum + n, 0);
  const requests = latenciesUs.length;
  return {
    tool: "h2load",
    requests,
    seconds,
    rps: requests / seconds,
    p50Ms: percentile(latenciesUs, 50) / 1000,
    p99Ms: percentile(latenciesUs, 99) / 1000,
    failures: not2xx + failed + errored + timedOut,
    failureDetail: `statuses ${[...statuses].map(([s, n]) => `${s}×${n}`).join(" ")}; done ${done}, failed ${failed}, errored ${errored}, timeout ${timedOut}`,
    responseDataBytes: dataBytes,
    bytesPerResponse: requests === 0 ? 0 : Math.round(dataBytes / requests),
  };
}

/** Nearest-rank percentile of sorted values; 0 for none. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** A wrk request() that sends the paths in turn (wrk.format keeps method, headers and body). */
function rotation(paths: readonly string[] | undefined): string {
  if (!paths || paths.length === 0) return "";
  return `local paths = { ${paths.map(luaString).join(", ")} }
local next_path = 0
function request()
  next_path = next_path % #paths + 1
  return wrk.format(nil, paths[next_path])
end`;
}

function luaString(text: string): string {
  // A long bracket with enough '=' that the text cannot close it; no escaping needed.
  let level = "";
  while (text.includes(`]${level}]`)) level += "=";
  return `[${level}[${text}]${level}]`;
}

/** Runs a tool to completion off the event loop (the bench keeps watch streams open meanwhile). */
function run(command: string, args: string[]): Promise<{ stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0 ? resolve({ stdout }) : reject(new Error(`${command} ${args.join(" ")} exited ${code}:\n${stdout}${stderr}`)),
    );
  });
}
