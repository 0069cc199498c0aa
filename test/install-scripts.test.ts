import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
const repo = new URL("..", import.meta.url).pathname;
const manifest = JSON.parse(readFileSync(join(repo, "package.json"), "utf8")) as {
  allowScripts: Record<string, boolean>;
  scarfSettings: { enabled: boolean };
};

/** A stand-in for scarf.sh: scarf's report script posts to localhost:$SCARF_LOCAL_PORT instead. */
interface Collector {
  readonly port: number;
  readonly reports: string[];
  close(): Promise<void>;
}

async function startCollector(): Promise<Collector> {
  const reports: string[] = [];
  const server: Server = createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8").on("data", (chunk: string) => (body += chunk));
    req.on("end", () => {
      reports.push(`${req.method} ${req.url} ${body}`);
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    reports,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** Runs @scarf/scarf's postinstall as npm would for a project at `projectDir`. */
async function runScarfPostinstall(projectDir: string, collectorPort: number): Promise<string> {
  const env: NodeJS.ProcessEnv = { ...process.env, INIT_CWD: projectDir, SCARF_LOCAL_PORT: String(collectorPort), SCARF_VERBOSE: "true" };
  // The opt-outs a developer's shell may carry would make the check pass for the wrong reason.
  for (const name of ["DO_NOT_TRACK", "SCARF_ANALYTICS", "SCARF_NO_ANALYTICS"]) delete env[name];
  const { stdout, stderr } = await run(process.execPath, ["report.js"], {
    cwd: join(repo, "node_modules", "@scarf", "scarf"),
    env,
    timeout: 20_000,
  });
  return stdout + stderr;
}

describe("installing the project", () => {
  let collector: Collector;
  let scratch: string;
  beforeAll(async () => {
    collector = await startCollector();
    scratch = mkdtempSync(join(tmpdir(), "scarf-probe-"));
  });
  afterAll(async () => {
    await collector.close();
    rmSync(scratch, { recursive: true, force: true });
  });

  it("leaves no dependency's install script unreviewed: each is approved or denied in allowScripts", async () => {
    const { stdout } = await run("npm", ["install-scripts", "ls"], { cwd: repo, timeout: 20_000 });
    expect(stdout.trim()).toBe("No packages with unreviewed install scripts.");
    expect(manifest.allowScripts).toEqual({
      "better-sqlite3": true,
      esbuild: true,
      "@bufbuild/buf": true,
      "@scarf/scarf": false,
      protobufjs: false,
    });
  });

  it("turns Scarf's install report off: its postinstall, run anyway, sends nothing", async () => {
    expect(manifest.scarfSettings).toEqual({ enabled: false });
    const output = await runScarfPostinstall(repo, collector.port);
    expect(collector.reports).toEqual([]);
    expect(output).toContain("Scarf has been disabled via a package.json in the dependency chain.");
  });

  it("(control) the same postinstall in a project without the setting does report, to the stand-in", async () => {
    // skipTraversal: the script takes the project's own package.json instead of running npm ls.
    writeFileSync(join(scratch, "package.json"), JSON.stringify({ name: "probe", version: "1.0.0", scarfSettings: { skipTraversal: true } }));
    await runScarfPostinstall(scratch, collector.port);
    expect(collector.reports).toHaveLength(1);
    expect(collector.reports[0]).toMatch(/^POST \/package-event\/install \{"libraryType":"npm"/);
  });
});
