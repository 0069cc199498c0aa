import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { connectionCapFromLimits } from "../src/net/connection-cap.js";
import { createAgentOverRest, requestJson, startTestServer, type TestServer } from "./helpers/server.js";
import { spawnServer, type ServerProcess } from "./helpers/process.js";
import { until } from "./helpers/until.js";

/**
 * Connections beyond the cap are closed at once and counted, so that the process always
 * keeps descriptors for its database, WAL and logs however many sockets a client opens.
 */

const sockets: net.Socket[] = [];
const servers: TestServer[] = [];
const processes: ServerProcess[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const s of servers.splice(0)) await s.close();
  for (const p of processes.splice(0)) {
    try {
      process.kill(-p.child.pid!, "SIGKILL");
    } catch {
      // already ended
    }
  }
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

interface Held {
  readonly socket: net.Socket;
  /** Whether the server closed it (before the client did). */
  closedByServer(): boolean;
  readonly closed: Promise<void>;
}

/** A connection that sends nothing, as an attacker holding descriptors would. */
function hold(port: number): Promise<Held> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    sockets.push(socket);
    let byServer = false;
    socket.on("error", () => {});
    socket.on("end", () => (byServer = true));
    const closed = new Promise<void>((r) => socket.once("close", () => r()));
    socket.once("connect", () => resolve({ socket, closedByServer: () => byServer || socket.readableEnded, closed }));
    socket.once("error", () => resolve({ socket, closedByServer: () => true, closed }));
  });
}

/** Waits until the server has seen the held connections close and answers a probe again. */
async function answersAgain(url: string): Promise<void> {
  const deadline = Date.now() + 5000;
  for (;;) {
    try {
      if ((await fetch(`${url}/healthz`)).status === 200) return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const refusedCount = async (url: string): Promise<number> => {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = /^sessions_connections_refused_total (\d+)$/m.exec(text);
  return line ? Number(line[1]) : NaN;
};

describe("the connection cap", () => {
  it("closes the connections beyond --max-connections at once, counts them, and serves again once some leave", async () => {
    const server = await startTestServer({ maxConnections: 5 });
    servers.push(server);
    const held = await Promise.all(Array.from({ length: 5 }, () => hold(server.port)));
    await new Promise((resolve) => setTimeout(resolve, 100));
    const started = performance.now();
    const extra = await Promise.all(Array.from({ length: 3 }, () => hold(server.port)));
    await Promise.all(extra.map((e) => e.closed));
    expect(performance.now() - started).toBeLessThan(1000);
    expect(extra.map((e) => e.closedByServer())).toStrictEqual([true, true, true]);
    expect(held.map((h) => h.socket.destroyed)).toStrictEqual([false, false, false, false, false]);
    for (const h of held) h.socket.destroy();
    await Promise.all(held.map((h) => h.closed));
    await answersAgain(server.url);
    expect(await refusedCount(server.url)).toBe(3);
    expect((await requestJson(`${server.url}/v1/sessions`)).status).toBe(200);
  });

  it("derives its default from the soft open-file limit, keeping max(100, 10 %) for the database, WAL and logs", () => {
    const limits = (soft: string, hard: string) =>
      `Limit                     Soft Limit           Hard Limit           Units     \nMax processes             63304                63304                processes \nMax open files            ${soft.padEnd(20)} ${hard.padEnd(20)} files     \n`;
    expect(connectionCapFromLimits(limits("1500", "4096"))).toBe(1350);
    expect(connectionCapFromLimits(limits("256", "256"))).toBe(156);
    expect(connectionCapFromLimits(limits("1048576", "1048576"))).toBe(943718);
    expect(connectionCapFromLimits(limits("unlimited", "unlimited"))).toBe(1_000_000);
    expect(connectionCapFromLimits(limits("64", "64"))).toBe(1);
    expect(connectionCapFromLimits("")).toBe(924);
  });

  it(
    "under npm start with ulimit -n 256, 300 idle connections leave the server answering and writing once they are gone",
    { timeout: 60_000 },
    async () => {
      const dir = mkdtempSync(join(tmpdir(), "sessions-cap-"));
      dirs.push(dir);
      const p = await spawnServer(["--port", "0", "--db", join(dir, "s.db")], {}, ["prlimit", "--nofile=256:256", "--"]);
      processes.push(p);
      const port = Number(new URL(p.url).port);
      const held: Held[] = [];
      for (let i = 0; i < 300; i++) held.push(await hold(port));
      await until(() => held.filter((h) => h.closedByServer()).length >= 300 - 156, "the connections past the cap to be closed");
      for (const h of held) h.socket.destroy();
      await Promise.all(held.map((h) => h.closed));
      await answersAgain(p.url);
      // Past the cap, nothing failed for want of a descriptor: the server reads, writes and counts.
      const agentId = await createAgentOverRest(p.url);
      const created = await requestJson(`${p.url}/v1/sessions`, { body: { agent_id: agentId, title: "after the flood" } });
      expect(created.status).toBe(201);
      // 144 past the cap, and maybe a retry of answersAgain that came while the server was
      // still closing the 300 (seen on Node 24: 145).
      const refused = await refusedCount(p.url);
      expect(refused).toBeGreaterThanOrEqual(300 - 156);
      expect(refused).toBeLessThanOrEqual(300 - 156 + 3);
      expect(p.stderr()).not.toMatch(/"level":50|EMFILE/);
    },
  );
});
