import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";

/**
 * Reads a V8 .cpuprofile (node --cpu-prof) into self-time totals: per function (name,
 * file, line) and per area (a package of node_modules, a folder of src/, Node's own
 * internals, GC, idle). Self time is what a frame spent itself, not in its callees: the
 * figure that says where a change would pay.
 */

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface CpuProfile {
  startTime: number;
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface FrameTime {
  readonly frame: string;
  readonly area: string;
  readonly ms: number;
  /** Share of the busy (non-idle) time. */
  readonly percent: number;
}

/** Microseconds of the monotonic clock (process.hrtime, also the profile's clock). */
export interface TimeWindow {
  readonly fromUs: number;
  readonly toUs: number;
}

export interface ProfileSummary {
  readonly file: string;
  /** Whether only the samples inside the window were counted (else the whole run, start-up included). */
  readonly windowed: boolean;
  readonly totalMs: number;
  readonly idleMs: number;
  readonly topFrames: readonly FrameTime[];
  readonly areas: readonly FrameTime[];
}

/** The main thread's profile in `dir`: --cpu-prof also writes one per worker (tsx's loader thread). */
export function findMainThreadProfile(dir: string): string {
  const files = readdirSync(dir).filter((f) => f.endsWith(".cpuprofile"));
  // CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile; the main thread is thread 0.
  const main = files.filter((f) => f.split(".")[4] === "0");
  const candidates = (main.length > 0 ? main : files).map((f) => join(dir, f));
  if (candidates.length === 0) throw new Error(`no .cpuprofile in ${dir}`);
  return candidates.sort((a, b) => statSync(b).size - statSync(a).size)[0]!;
}

/**
 * Self time per frame and per area. With a window, only samples taken inside it count:
 * the profile covers the whole process, and start-up (tsx compiling every module) would
 * otherwise crowd the top of the list.
 */
export function summariseProfile(file: string, repoRoot: string, window?: TimeWindow, top = 25): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const sampleTimes: number[] = [];
  let time = profile.startTime;
  for (const delta of profile.timeDeltas) sampleTimes.push((time += delta));
  const inWindow = (i: number) => !window || (sampleTimes[i]! >= window.fromUs && sampleTimes[i]! < window.toUs);
  const windowed = window !== undefined && sampleTimes.some((_, i) => inWindow(i));
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const byFrame = new Map<string, { area: string; us: number }>();
  const byArea = new Map<string, number>();
  let totalUs = 0;
  let idleUs = 0;
  // timeDeltas[i] is the time between sample i-1 and sample i; it is charged to sample i-1,
  // the frame that was running during that interval.
  for (let i = 0; i < profile.samples.length - 1; i++) {
    if (windowed && !inWindow(i)) continue;
    const node = nodes.get(profile.samples[i]!)!;
    const us = profile.timeDeltas[i + 1] ?? 0;
    totalUs += us;
    const { functionName, url, lineNumber } = node.callFrame;
    if (functionName === "(idle)") {
      idleUs += us;
      continue;
    }
    const area = areaOf(url, functionName, repoRoot);
    // Line numbers of TypeScript run through tsx are those of its transformed output, not
    // of the source: the file and function name say enough there.
    const where = url === "" ? "" : ` ${shortUrl(url, repoRoot)}${url.endsWith(".ts") ? "" : `:${lineNumber + 1}`}`;
    const frame = `${functionName || "(anonymous)"}${where}`;
    const entry = byFrame.get(frame) ?? { area, us: 0 };
    entry.us += us;
    byFrame.set(frame, entry);
    byArea.set(area, (byArea.get(area) ?? 0) + us);
  }
  const busyUs = totalUs - idleUs;
  const rank = (entries: Array<[string, string, number]>) =>
    entries
      .sort((a, b) => b[2] - a[2])
      .map(([frame, area, us]) => ({ frame, area, ms: us / 1000, percent: (100 * us) / busyUs }));
  return {
    file,
    windowed,
    totalMs: totalUs / 1000,
    idleMs: idleUs / 1000,
    topFrames: rank([...byFrame].map(([frame, e]) => [frame, e.area, e.us])).slice(0, top),
    areas: rank([...byArea].map(([area, us]) => [area, area, us])),
  };
}

function shortUrl(url: string, repoRoot: string): string {
  const path = url.startsWith("file://") ? new URL(url).pathname : url;
  // From node_modules/ on, wherever it is (a linked node_modules resolves outside the repository).
  const modules = path.indexOf("/node_modules/");
  if (modules >= 0) return path.slice(modules + 1);
  return path.startsWith(repoRoot) ? relative(repoRoot, path) : path;
}

/** Where a frame's code lives: "node_modules/<package>", "src/<folder>", "node:internal", "(gc)" and so on. */
function areaOf(url: string, functionName: string, repoRoot: string): string {
  if (url === "") return functionName.startsWith("(") ? functionName : "(native)";
  const path = shortUrl(url, repoRoot);
  const inModules = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path);
  if (inModules) return `node_modules/${inModules[1]}`;
  if (path.startsWith("node:")) return "node:internal";
  const parts = path.split("/");
  if (parts[0] === "src") return parts.length > 2 ? `src/${parts[1]}` : "src";
  return parts[0] ?? path;
}

/** The summary as Markdown, for bench/results/profile-<date>.md. */
export function profileMarkdown(summary: ProfileSummary, context: string): string {
  const busy = summary.totalMs - summary.idleMs;
  const lines = [
    `# CPU profile of the server under REST CreateSession load`,
    "",
    context,
    "",
    summary.windowed
      ? "Only samples taken during the measured run are counted (not start-up or warm-up)."
      : "The whole process is counted, start-up included (the measured run could not be located in the profile).",
    "",
    `Profile: ${summary.totalMs.toFixed(0)} ms sampled, ${summary.idleMs.toFixed(0)} ms idle (${((100 * summary.idleMs) / summary.totalMs).toFixed(1)} %), ` +
      `${busy.toFixed(0)} ms busy. Percentages below are of the busy time. Self time: in the frame itself, not its callees.`,
    "",
    "Self time is spent in the frame itself, not in its callees. A call into a native addon is charged to the JavaScript frame " +
      "that made it: the self time of the store's frames includes SQLite's own work inside better-sqlite3, fsync at COMMIT " +
      "included (the event loop is blocked meanwhile). `writev` is the socket writes of responses.",
    "",
    "## By area",
    "",
    "| area | self ms | % busy |",
    "| --- | ---: | ---: |",
    ...summary.areas.map((a) => `| ${a.area} | ${a.ms.toFixed(0)} | ${a.percent.toFixed(1)} |`),
    "",
    `## Top ${summary.topFrames.length} frames by self time`,
    "",
    "| frame | area | self ms | % busy |",
    "| --- | --- | ---: | ---: |",
    ...summary.topFrames.map((f) => `| \`${f.frame.replaceAll("|", "\\|")}\` | ${f.area} | ${f.ms.toFixed(0)} | ${f.percent.toFixed(1)} |`),
    "",
  ];
  return lines.join("\n");
}
