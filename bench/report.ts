import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import * as os from "node:os";
import { join } from "node:path";

/** The printed table and the facts the results file records beside the figures. */

export interface Row {
  readonly protocol: string;
  readonly operation: string;
  readonly tool: string;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Our rps divided by the floor's, when there is a floor to compare with. */
  readonly ratio?: number;
  readonly note?: string;
  /** What other processes did during the measurement (interference.ts). */
  readonly otherCpuCores?: number | undefined;
  readonly otherDiskWriteMiBps?: number | undefined;
  /** Bytes read per response: with headers for wrk, body only for h2load. */
  readonly bytesPerResponse?: number;
}

export function formatTable(rows: readonly Row[]): string {
  const header = ["protocol", "operation", "tool", "rps", "p50 ms", "p99 ms", "× floor", "note"];
  const cells = rows.map((r) => [
    r.protocol,
    r.operation,
    r.tool,
    Math.round(r.rps).toLocaleString("en"),
    r.p50Ms.toFixed(2),
    r.p99Ms.toFixed(2),
    r.ratio === undefined ? "" : r.ratio.toFixed(2),
    r.note ?? "",
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const numeric = new Set([3, 4, 5, 6]);
  const line = (values: string[]) =>
    "| " + values.map((v, i) => (numeric.has(i) ? v.padStart(widths[i]!) : v.padEnd(widths[i]!))).join(" | ") + " |";
  const rule = "| " + widths.map((w, i) => (numeric.has(i) ? "-".repeat(w - 1) + ":" : "-".repeat(w))).join(" | ") + " |";
  return [line(header), rule, ...cells.map(line)].join("\n");
}

export function machine() {
  const cpus = os.cpus();
  return {
    host: os.hostname(),
    cpuModel: cpus[0]?.model.trim() ?? "unknown",
    cores: cpus.length,
    ramGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    loadAverageAtStart: os.loadavg().map((l) => Math.round(l * 100) / 100),
  };
}

const PACKAGES = [
  "@bufbuild/protobuf", "@connectrpc/connect", "@connectrpc/connect-node", "better-sqlite3", "esbuild", "pino", "tsx",
  "@grpc/grpc-js", "@grpc/proto-loader",
];

/** Installed versions (from node_modules, not the ranges in package.json). */
export function packageVersions(repoRoot: string): Record<string, string> {
  return Object.fromEntries(
    PACKAGES.map((name) => {
      try {
        const manifest = JSON.parse(readFileSync(join(repoRoot, "node_modules", name, "package.json"), "utf8")) as { version: string };
        return [name, manifest.version];
      } catch {
        return [name, "missing"];
      }
    }),
  );
}

/** YYYY-MM-DD in UTC, for file names. */
export function today(): string {
  return new Date().toISOString().slice(0, 10);
}

/**
 * How busy the machine's CPUs are, in percent of all cores, over `ms`: taken while the
 * bench itself is idle, it is someone else's load — which would make every figure low and
 * noisy on a 2-core machine.
 */
export async function cpuBusyPercent(ms = 1000): Promise<number> {
  const read = () => {
    const fields = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
    const idle = fields[3]! + (fields[4] ?? 0); // idle + iowait
    return { idle, total: fields.reduce((a, b) => a + b, 0) };
  };
  const before = read();
  await new Promise((resolve) => setTimeout(resolve, ms));
  const after = read();
  const total = after.total - before.total;
  return total === 0 ? 0 : Math.round((100 * (total - (after.idle - before.idle))) / total);
}

/** The commit measured, and any uncommitted change to the server's code (which the figures then include). */
export function gitState(repoRoot: string): { commit: string; uncommittedServerChanges: string[] } {
  const git = (args: string[]) => spawnSync("git", ["-C", repoRoot, ...args], { encoding: "utf8" });
  const commit = git(["rev-parse", "HEAD"]);
  const status = git(["status", "--porcelain", "--", "src", "gen", "proto", "package-lock.json"]);
  return {
    commit: commit.status === 0 ? commit.stdout.trim() : "unknown",
    uncommittedServerChanges: status.status === 0 ? status.stdout.split("\n").filter((l) => l !== "") : ["unknown"],
  };
}

/** `<dir>/<base>.<ext>`, or `<base>-2.<ext>`, `-3`… if taken: a second run the same day keeps the first's file. */
export function freshPath(dir: string, base: string, ext: string): string {
  for (let n = 1; ; n++) {
    const path = join(dir, `${base}${n === 1 ? "" : `-${n}`}.${ext}`);
    if (!existsSync(path)) return path;
  }
}
