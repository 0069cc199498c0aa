import { spawn } from "node:child_process";
import { once } from "node:events";
import { generateApiKey } from "../../src/auth/api-key.js";
import type { KeyStore } from "../../src/store/store.js";

/** A key stored for a test: its id (as `keys list` shows it) and the key a client sends. */
export interface TestKey {
  readonly id: string;
  readonly key: string;
}

/** Creates a key for `orgId` straight through the store, as `keys create` does. */
export async function insertTestKey(store: KeyStore, orgId: string, name = "test"): Promise<TestKey> {
  const { record, key } = generateApiKey(orgId, name, Date.now());
  await store.insertKey(record);
  return { id: record.id, key };
}

/**
 * Runs `npm run -s keys -- …args` to completion in a child process. Asynchronous on
 * purpose: a test that blocks its event loop (execFileSync) starves the server it runs.
 */
export async function runKeysCommand(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn("npm", ["run", "-s", "keys", "--", ...args], {
    cwd: new URL("../..", import.meta.url).pathname,
    env: { ...process.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  // "close", not "exit": by then every byte of stdout and stderr has been read.
  const [code] = await once(child, "close");
  return { code: code as number | null, stdout, stderr };
}
