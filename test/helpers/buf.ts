import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";

const REPO_ROOT = fileURLToPath(new URL("../..", import.meta.url));
const BUF = fileURLToPath(new URL("../../node_modules/.bin/buf", import.meta.url));

export interface BufResult {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs the buf CLI from the repository root. Asynchronous on purpose: a blocked event loop
 * would stall the in-process server that buf curl is talking to.
 */
export function buf(args: readonly string[]): Promise<BufResult> {
  return new Promise((resolve, reject) => {
    execFile(BUF, args, { cwd: REPO_ROOT, timeout: 20_000 }, (error, stdout, stderr) => {
      if (error && typeof error.code !== "number") reject(error);
      else resolve({ exitCode: error ? (error.code as number) : 0, stdout, stderr });
    });
  });
}
