import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { README as readme, readmeBlocks as blocks } from "./helpers/readme.js";
import { startTestServer, type TestServer } from "./helpers/server.js";

const run = promisify(execFile);
const repo = new URL("..", import.meta.url).pathname;

describe("README", () => {
  let server: TestServer;
  let address: string;
  beforeAll(async () => {
    // No seeded agent: the README must work on a fresh database as it stands.
    server = await startTestServer({ seedAgent: false });
    address = new URL(server.url).host;
  });
  afterAll(async () => {
    await server.close();
  });

  it("'Using it' shell commands run as written (against this test's port) and succeed", async () => {
    const script = ["set -euo pipefail", ...blocks("Using it", "sh")].join("\n").replaceAll("127.0.0.1:8080", address);
    const { stdout } = await run("bash", ["-c", script], { cwd: repo, timeout: 60_000 });
    expect(stdout.match(/HTTP\/1\.1 201 Created/g)).toHaveLength(3);
    expect(stdout).toMatch(/Location: \/v1\/sessions\/session_[0-9a-f]{32}\/messages\/message_[0-9a-f]{32}/);
    expect(stdout).toContain('"content":[{"tool_result":{"tool_call_id":"call_1","output":{"lines":120},"is_error":false}}]');
    expect(stdout).toMatch(/"sequence":"3","type":"SESSION_EVENT_TYPE_MESSAGE_ADDED"/);
    expect(stdout).toContain('"prompt_preview":"Review PR 43","response_preview":"Reading the diff."');
    expect(stdout).toMatch(/"code":9,"message":"cannot add a message to session session_[0-9a-f]{32}: it is SESSION_STATUS_CANCELLED/);
    expect(stdout).toContain('"name":"code-reviewer"');
    expect(stdout).toContain('"title":"Review PR 42"');
    expect(stdout).toContain("Invalid agent ID");
    expect(stdout).toContain(
      "session-v1 SESSION_STATUS_PENDING 0\nsession-v2 SESSION_STATUS_RUNNING 0\n" +
        "session-v3 SESSION_STATUS_RUNNING 1200\nsession-v4 SESSION_STATUS_COMPLETED 1200\n",
    );
    expect(stdout).toContain('"capabilities":[{"capability_id":"web.search","config":{"max_results":5,"region":"eu"}}]}');
    expect(stdout).toMatch(/"code":9,"message":"cannot start session session_[0-9a-f]{32}: it is SESSION_STATUS_COMPLETED/);
    expect(stdout).toContain('"title":"Review PR 42 (done)","tags":["ci"]');
    expect(stdout).toContain('"title":"Review PR 42 (done)","tags":[]');
    expect(stdout).toContain('"title": "via gRPC"');
    expect(stdout).toContain('"name": "code-reviewer"');
  });

  it("the grpc-js snippet runs and prints the session it created", async () => {
    const [snippet] = blocks("Using it", "js");
    const source = snippet!.replaceAll("127.0.0.1:8080", address);
    const { stdout } = await run("node", ["--input-type=module", "-e", source], { cwd: repo, timeout: 30_000 });
    expect(stdout).toMatch(/^session_[0-9a-f]{32} SESSION_STATUS_RUNNING from grpc-js\n$/);
  });

  it("lists every option of --help in the options table", async () => {
    const { OPTIONS } = await import("../src/config.js");
    for (const option of OPTIONS) {
      const flag = option.arg === "" ? `--${option.flag}` : `--${option.flag} ${option.arg}`;
      expect(readme).toContain(`| \`${flag}\` | \`${option.env}\` |`);
    }
  });
});
