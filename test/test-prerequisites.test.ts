import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const source = new URL("../scripts/test-prerequisites.sh", import.meta.url).pathname;
/** A copy any user can read (set in beforeAll): the clone may sit in a folder only its owner can enter. */
let script: string;

interface Outcome {
  status: number | null;
  stdout: string;
  stderr: string;
}

function runScript(env: NodeJS.ProcessEnv, asUser?: string): Outcome {
  const [command, args] = asUser ? ["runuser", ["-u", asUser, "--", "bash", script]] : ["bash", [script]];
  const result = spawnSync(command, args as string[], { env: { ...process.env, ...env }, encoding: "utf8", timeout: 20_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe("scripts/test-prerequisites.sh (npm test runs it before vitest)", () => {
  // An empty root: under it, Chromium is missing whatever this machine has installed.
  let emptyRoot: string;
  // A PATH with what the script uses, but neither apt-get nor sudo.
  let noAptPath: string;
  beforeAll(() => {
    const copy = mkdtempSync(join(tmpdir(), "prerequisites-script-"));
    chmodSync(copy, 0o755);
    script = join(copy, "test-prerequisites.sh");
    copyFileSync(source, script);
    chmodSync(script, 0o755);
    emptyRoot = mkdtempSync(join(tmpdir(), "prerequisites-root-"));
    chmodSync(emptyRoot, 0o755);
    noAptPath = mkdtempSync(join(tmpdir(), "prerequisites-path-"));
    for (const tool of ["bash", "id", "mktemp", "rm", "tail"]) symlinkSync(`/usr/bin/${tool}`, join(noAptPath, tool));
  });
  afterAll(() => {
    rmSync(emptyRoot, { recursive: true, force: true });
    rmSync(noAptPath, { recursive: true, force: true });
    rmSync(join(script, ".."), { recursive: true, force: true });
  });

  it("prints nothing and succeeds when Chromium is installed", () => {
    expect(runScript({})).toEqual({ status: 0, stdout: "", stderr: "" });
  });

  it("when it is missing and the user is not root and has no sudo, fails with one line naming the command", () => {
    // As root (CI, a container), nobody stands for that user; otherwise the user is this one.
    const asUser = process.getuid?.() === 0 ? "nobody" : undefined;
    expect(runScript({ PREREQUISITES_ROOT: emptyRoot, PATH: "/usr/sbin:/usr/bin:/sbin:/bin" }, asUser)).toEqual({
      status: 1,
      stdout: "",
      stderr: "the tests need chromium: run 'sudo apt-get update && sudo apt-get install -y chromium', then run the tests again\n",
    });
  });

  it("when it is missing and there is no apt-get, fails with one line saying what to install", () => {
    expect(runScript({ PREREQUISITES_ROOT: emptyRoot, PATH: noAptPath })).toEqual({
      status: 1,
      stdout: "",
      stderr:
        "the tests need chromium (Debian's package); no apt-get here: install it so that /usr/bin/chromium exists, then run the tests again\n",
    });
  });

  it("refuses a CHROMIUM_PATH that is not an executable, naming it, and installs nothing", () => {
    expect(runScript({ CHROMIUM_PATH: "/nonexistent/chromium" })).toEqual({
      status: 1,
      stdout: "",
      stderr:
        "CHROMIUM_PATH=/nonexistent/chromium is not an executable: point it at a Chromium, or unset it to use Debian's /usr/bin/chromium\n",
    });
  });

  it("accepts a CHROMIUM_PATH that is one, silently", () => {
    expect(runScript({ CHROMIUM_PATH: "/usr/bin/chromium", PREREQUISITES_ROOT: emptyRoot })).toEqual({ status: 0, stdout: "", stderr: "" });
  });
});
