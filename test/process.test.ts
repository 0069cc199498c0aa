import { afterEach, describe, expect, it } from "vitest";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as net from "node:net";
import { createAgentOverRest, requestJson } from "./helpers/server.js";
import { runServerCommand, spawnServer, type ServerProcess } from "./helpers/process.js";

const dirs: string[] = [];
const running: ServerProcess[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "sessions-proc-"));
  dirs.push(dir);
  return dir;
}

afterEach(() => {
  for (const p of running.splice(0)) {
    if (p.child.exitCode !== null || p.child.signalCode !== null) continue;
    try {
      process.kill(-p.child.pid!, "SIGKILL");
    } catch {
      // the group ended between the check and the kill
    }
  }
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function start(args: string[], env: Record<string, string> = {}): Promise<ServerProcess> {
  const p = await spawnServer(args, env);
  running.push(p);
  return p;
}

describe("npm start", () => {
  it("--help lists every option with its environment variable and exits 0", async () => {
    const { code, stdout } = await runServerCommand(["--help"]);
    expect(code).toBe(0);
    for (const [flag, env] of [
      ["--host", "HOST"], ["--port", "PORT"], ["--db", "SESSIONS_DB"], ["--tls-cert", "TLS_CERT"],
      ["--tls-key", "TLS_KEY"], ["--log-level", "LOG_LEVEL"], ["--shutdown-timeout", "SHUTDOWN_TIMEOUT"],
      ["--cors-origin", "CORS_ORIGIN"],
    ]) {
      expect(stdout).toContain(flag);
      expect(stdout).toContain(`env ${env}`);
    }
  });

  it.each([
    [["--port", "70000"], 'error: --port must be a whole number from 0 to 65535, got "70000"'],
    [["--port=-1"], 'error: --port must be a whole number from 0 to 65535, got "-1"'],
    [["--log-level", "loud"], 'error: --log-level must be one of fatal, error, warn, info, debug, trace, silent, got "loud"'],
    [["--tls-cert", "x.pem"], "error: --tls-cert and --tls-key must be given together"],
    [["--shutdown-timeout", "soon"], 'error: --shutdown-timeout must be a whole number from 0 to 3600, got "soon"'],
    [["--cors-origin", "bad"], 'error: --cors-origin must be an origin, http(s)://host[:port] with no path, or *, got "bad"'],
  ])("refuses %j with one line and exit code 2", async (args, line) => {
    const { code, stdout, stderr } = await runServerCommand(args);
    expect(code).toBe(2);
    expect(stdout).toBe("");
    expect(stderr.split("\n")[0]).toBe(line);
  });

  it("refuses an unknown flag with exit code 2", async () => {
    const { code, stderr } = await runServerCommand(["--colour"]);
    expect(code).toBe(2);
    expect(stderr).toMatch(/^error: Unknown option '--colour'/);
  });

  it("takes PORT and SESSIONS_DB from the environment, creates the database folder, prints the real port", async () => {
    const db = join(tempDir(), "nested", "deeper", "sessions.db");
    const p = await start([], { PORT: "0", SESSIONS_DB: db });
    expect(p.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(p.url).not.toBe("http://127.0.0.1:0");
    expect(p.stdout()).toBe(`listening on ${p.url}\n`);
    expect(existsSync(db)).toBe(true);
    process.kill(-p.child.pid!, "SIGTERM");
    expect(await p.exited).toBe(0);
    expect(p.stderr()).toContain('"msg":"stopped"');
  });

  it("lets flags win over environment variables", async () => {
    const db = join(tempDir(), "s.db");
    const p = await start(["--port", "0", "--db", db], { PORT: "not-a-port", SESSIONS_DB: "/nonexistent/ignored.db" });
    expect(existsSync(db)).toBe(true);
    process.kill(-p.child.pid!, "SIGTERM");
    expect(await p.exited).toBe(0);
  });

  it("keeps sessions across a restart on the same file", async () => {
    const db = join(tempDir(), "s.db");
    const first = await start(["--port", "0", "--db", db]);
    const agentId = await createAgentOverRest(first.url);
    const created = await requestJson(`${first.url}/v1/sessions`, {
      body: { agent_id: agentId, title: "survives", tags: ["x"], capabilities: [{ capability_id: "web", config: { depth: 2 } }] },
    });
    expect(created.status).toBe(201);
    process.kill(-first.child.pid!, "SIGTERM");
    expect(await first.exited).toBe(0);

    const second = await start(["--port", "0", "--db", db]);
    const got = await requestJson(`${second.url}/v1/sessions/${created.body.id}`);
    expect(got.status).toBe(200);
    expect(got.body).toEqual(created.body);
    process.kill(-second.child.pid!, "SIGINT");
    expect(await second.exited).toBe(0);
  });

  it("on SIGTERM to the process group finishes the in-flight request, refuses new connections, exits 0", async () => {
    const p = await start(["--port", "0", "--db", join(tempDir(), "s.db")]);
    const { port } = new URL(p.url);
    const body = JSON.stringify({ agent_id: await createAgentOverRest(p.url), title: "in flight" });
    const socket = net.connect(Number(port), "127.0.0.1");
    await new Promise((resolve) => socket.once("connect", resolve));
    let response = "";
    socket.on("data", (d: Buffer) => (response += d.toString()));
    const closed = new Promise((resolve) => socket.once("close", resolve));
    // Headers and half the body: the request is in flight, waiting for the rest.
    socket.write(
      `POST /v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n` +
        body.slice(0, 10),
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    process.kill(-p.child.pid!, "SIGTERM");
    await new Promise((resolve) => setTimeout(resolve, 300));

    const refused = await new Promise<boolean>((resolve) => {
      const probe = net.connect(Number(port), "127.0.0.1");
      probe.once("connect", () => {
        probe.destroy();
        resolve(false);
      });
      probe.once("error", () => resolve(true));
    });
    expect(refused).toBe(true);

    socket.write(body.slice(10));
    await closed;
    expect(response).toMatch(/^HTTP\/1\.1 201 Created\r\n/);
    expect(response).toMatch(/\r\nConnection: close\r\n/i);
    expect(response).toContain('"title":"in flight"');
    expect(await p.exited).toBe(0);
    expect(p.stderr()).toContain('"msg":"stopped"');
  });
});
