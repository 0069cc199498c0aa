import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";

export interface ServerProcess {
  readonly child: ChildProcess;
  readonly url: string;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (or signal name) once the process group has ended. */
  readonly exited: Promise<number | string>;
}

/**
 * Runs `npm start -- …args` in its own process group, as a user's terminal would, and
 * waits for the "listening on" line. `wrapper` runs it under a command such as
 * `prlimit --nofile=256:256 --`.
 */
export async function spawnServer(args: string[], env: Record<string, string> = {}, wrapper: string[] = []): Promise<ServerProcess> {
  const command = [...wrapper, "npm", "start", "--silent", "--", ...args];
  const child = spawn(command[0]!, command.slice(1), {
    cwd: new URL("../..", import.meta.url).pathname,
    env: { ...process.env, ...env },
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const exited = once(child, "exit").then(([code, signal]) => (code ?? signal) as number | string);
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "listening on" line; stderr: ${err}`)), 20_000);
    const check = () => {
      const match = /^listening on (\S+)$/m.exec(out);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    };
    child.stdout!.on("data", check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code} before listening; stderr: ${err}`));
    });
  });
  return { child, url, stdout: () => out, stderr: () => err, exited };
}

/** Runs `npm start -- …args` to completion (for --help and bad options). */
export async function runServerCommand(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn("npm", ["start", "--silent", "--", ...args], {
    cwd: new URL("../..", import.meta.url).pathname,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const [code] = await once(child, "exit");
  return { code: code as number | null, stdout, stderr };
}
