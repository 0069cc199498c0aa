import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { resolve } from "node:path";

/**
 * A server of the checkout at `root` (default: this one), run as `node --import tsx
 * src/main.ts`, for the storage attacks: they compare a checkout of main with this one.
 */
export interface AttackServer {
  readonly url: string;
  readonly child: ChildProcess;
  stderr(): string;
  kill(signal: NodeJS.Signals): Promise<void>;
}

export async function startAttackServer(root: string, args: readonly string[]): Promise<AttackServer> {
  const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts", "--port", "0", ...args], {
    cwd: resolve(root),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (err = (err + d.toString()).slice(-1_000_000)));
  const url = await new Promise<string>((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`no "listening on" line: ${err}`)), 20_000);
    child.stdout!.on("data", () => {
      const match = /^listening on (\S+)$/m.exec(out);
      if (match) {
        clearTimeout(timer);
        ok(match[1]!);
      }
    });
  });
  return {
    url,
    child,
    stderr: () => err,
    async kill(signal) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      await once(child, "exit");
    },
  };
}

/** POST (with a body) or GET; the status and parsed body. */
export async function call(url: string, body?: unknown, method = body === undefined ? "GET" : "POST"): Promise<{ status: number; body: any }> {
  const res = await fetch(url, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text === "" ? undefined : JSON.parse(text) };
}

export function argument(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? fallback : process.argv[i + 1]!;
}

export const MODEL_ID = "model_fedcba9876543210fedcba9876543210";
