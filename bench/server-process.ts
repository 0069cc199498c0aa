import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

/**
 * A server under test in its own process group: started from a command line, ready when
 * it prints `listening on <url>`, stopped by SIGTERM to the whole group (npm, sh and node
 * alike, as a terminal's Ctrl-C would).
 */
export interface ServerProcess {
  readonly url: string;
  /** The process that serves: the node child of `npm start`, or the spawned node itself. */
  readonly servingPid: number;
  /** Standard error so far (the server's JSON log lines), for failures and the report. */
  stderr(): string;
  /** SIGTERM to the group; resolves with the exit code once the spawned process ended. */
  stop(): Promise<number | null>;
}

export interface StartOptions {
  readonly command: string;
  readonly args: readonly string[];
  readonly cwd: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Picks the serving process among the spawned one's descendants by its command line. */
  readonly servingCommandLine?: RegExp;
  readonly timeoutMs?: number;
}

export async function startServerProcess(options: StartOptions): Promise<ServerProcess> {
  const child = spawn(options.command, [...options.args], {
    cwd: options.cwd,
    env: options.env ?? process.env,
    detached: true, // its own process group, so that one signal reaches npm and node
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
    // Keep the tail only: a log line per request at debug level would grow without bound.
    stderr = (stderr + chunk).slice(-200_000);
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    let stdout = "";
    const timer = setTimeout(
      () => reject(new Error(`${options.command} ${options.args.join(" ")} did not print "listening on" in time:\n${stderr}`)),
      options.timeoutMs ?? 60_000,
    );
    child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
      const match = /listening on (\S+)/.exec(stdout);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${options.command} ${options.args.join(" ")} exited ${code} before listening:\n${stdout}${stderr}`));
    });
  });
  const servingPid = options.servingCommandLine ? findDescendant(child.pid!, options.servingCommandLine) : child.pid!;
  return {
    url,
    servingPid,
    stderr: () => stderr,
    stop: async () => {
      signalGroup(child, "SIGTERM");
      const timer = setTimeout(() => signalGroup(child, "SIGKILL"), 30_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-child.pid!, signal);
  } catch {
    // The group is already gone.
  }
}

/** The first descendant of `pid` (breadth first) whose command line matches. */
export function findDescendant(pid: number, commandLine: RegExp): number {
  const queue = [pid];
  while (queue.length > 0) {
    const current = queue.shift()!;
    if (commandLineOf(current).match(commandLine)) return current;
    queue.push(...childrenOf(current));
  }
  throw new Error(`no process under ${pid} runs ${commandLine}`);
}

function childrenOf(pid: number): number[] {
  const children: number[] = [];
  for (const task of safeReaddir(`/proc/${pid}/task`)) {
    const text = safeRead(`/proc/${pid}/task/${task}/children`);
    children.push(...text.split(" ").filter((s) => s !== "").map(Number));
  }
  return children;
}

function commandLineOf(pid: number): string {
  return safeRead(`/proc/${pid}/cmdline`).replaceAll("\0", " ");
}

function safeRead(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

function safeReaddir(path: string): string[] {
  try {
    return readdirSync(path);
  } catch {
    return [];
  }
}
