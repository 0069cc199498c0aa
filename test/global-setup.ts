import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));

/**
 * Runs scripts/build.mjs once before every test file, exactly as `npm start` runs it: the
 * in-process test servers serve the console from dist/web, and tests of `npm start` find
 * dist/main.js already built.
 */
export default async function buildOnce(): Promise<void> {
  await promisify(execFile)(process.execPath, ["scripts/build.mjs"], { cwd: root });
}
