/**
 * Slow and silent clients against a real server process, loopback only, with figures:
 * how many attack connections are still open at each checkpoint, how long a fresh client
 * could not get `/healthz` answered (outage), the server's peak RSS, and for `stop` how
 * long SIGTERM took to end the process.
 *
 *   node --import tsx bench/attacks/slow-clients.ts <attack> [--dir <checkout>] [--seconds N] [--nofile N] [-- server flags]
 *
 * <attack>: slowloris (300 connections, a header byte every 15 s), upload (200 uploads, a
 * body byte every 10 s), preface (one connection trickling the HTTP/2 preface, a byte every
 * 9 s), g-only (2,000 connections that sent only "G"), h2-preface (1,000 HTTP/2 connections
 * that sent only the preface), nofile (`prlimit --nofile` low, 1.07 × that many "G"-only
 * connections), stop (SIGTERM with 100 idle HTTP/2 clients that ignore GOAWAY and 200
 * watchers with a zero flow-control window).
 * --dir runs the server of another checkout (e.g. a worktree of main, for "before").
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import * as http2 from "node:http2";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { dir: { type: "string" }, seconds: { type: "string" }, nofile: { type: "string" } },
});
const attack = positionals[0] ?? "slowloris";
const serverFlags = positionals.slice(1);
const dir = values.dir ?? new URL("../..", import.meta.url).pathname;
const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
const SETTINGS = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Server {
  readonly child: ChildProcess;
  readonly port: number;
  readonly exited: Promise<void>;
}

async function startServer(nofile: number | undefined): Promise<Server> {
  const data = mkdtempSync(join(tmpdir(), "attack-"));
  process.on("exit", () => rmSync(data, { recursive: true, force: true }));
  const command = ["node", "--import", "tsx", "src/main.ts", "--port", "0", "--db", join(data, "s.db"), "--log-level", "warn", ...serverFlags];
  const full = nofile ? ["prlimit", `--nofile=${nofile}:${nofile}`, "--", ...command] : command;
  const child = spawn(full[0]!, full.slice(1), { cwd: dir, stdio: ["ignore", "pipe", "inherit"] });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let out = "";
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const match = /listening on http:\/\/[^:]+:(\d+)/.exec(out);
      if (match) resolve(Number(match[1]));
    });
    void exited.then(() => reject(new Error("server exited before listening")));
  });
  process.on("exit", () => child.kill("SIGKILL"));
  return { child, port, exited };
}

/** The node process's peak RSS in MB (VmHWM); under prlimit the child is prlimit's exec, the same pid. */
function peakRssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Math.round(Number(/VmHWM:\s+(\d+)/.exec(status)![1]) / 1024);
}

/** Opens `count` connections (sequentially, as fast as accepted) and returns them with their open state. */
async function openConnections(port: number, count: number, first: Buffer | string, trickle?: { text: Buffer | string; everyMs: number }) {
  const open = new Set<net.Socket>();
  for (let i = 0; i < count; i++) {
    const socket = net.connect(port, "127.0.0.1");
    socket.on("error", () => {});
    await new Promise<void>((resolve) => {
      socket.once("connect", () => resolve());
      socket.once("error", () => resolve());
    });
    if (socket.destroyed) continue;
    // Read (and drop) what the server sends: an unread socket never sees the server's close.
    socket.resume();
    open.add(socket);
    socket.once("close", () => open.delete(socket));
    if (first.length > 0) socket.write(first);
    if (trickle) {
      const bytes = Buffer.from(trickle.text);
      let at = 0;
      const timer = setInterval(() => (socket.destroyed ? clearInterval(timer) : socket.write(bytes.subarray(at % bytes.length, ++at % bytes.length || bytes.length))), trickle.everyMs);
      socket.once("close", () => clearInterval(timer));
    }
  }
  return open;
}

/** Probes /healthz on a fresh connection every 500 ms; returns the seconds without an answer within 1 s. */
function probeOutage(port: number): { stop(): number } {
  let failedMs = 0;
  let running = true;
  void (async () => {
    while (running) {
      const started = Date.now();
      const ok = await new Promise<boolean>((resolve) => {
        const socket = net.connect(port, "127.0.0.1");
        const timer = setTimeout(() => (socket.destroy(), resolve(false)), 1000);
        let got = "";
        socket.on("data", (d) => {
          got += d.toString();
          if (got.includes("\r\n\r\n")) (clearTimeout(timer), socket.destroy(), resolve(got.startsWith("HTTP/1.1 200")));
        });
        socket.on("error", () => (clearTimeout(timer), resolve(false)));
        socket.on("close", () => (clearTimeout(timer), resolve(got.startsWith("HTTP/1.1 200"))));
        socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
      });
      if (!ok) failedMs += Math.max(500, Date.now() - started);
      await sleep(Math.max(0, 500 - (Date.now() - started)));
    }
  })();
  return {
    stop() {
      running = false;
      return Math.round(failedMs / 100) / 10;
    },
  };
}

async function watchCheckpoints(server: Server, open: Set<unknown>, total: number, seconds: number): Promise<void> {
  const probe = probeOutage(server.port);
  const started = Date.now();
  const checkpoints: string[] = [];
  for (let s = 5; s <= seconds; s += 5) {
    await sleep(started + s * 1000 - Date.now());
    checkpoints.push(`${s}s:${open.size}`);
  }
  const outage = probe.stop();
  console.log(JSON.stringify({ attack, dir, attackConnections: total, openAt: checkpoints.join(" "), outageSeconds: outage, peakRssMb: peakRssMb(server.child.pid!) }));
}

// Interrupted, still take the server down with this script (the "exit" handlers kill it).
process.on("SIGTERM", () => process.exit(1));
process.on("SIGINT", () => process.exit(1));

const nofile = values.nofile ? Number(values.nofile) : attack === "nofile" ? 1500 : undefined;
const server = await startServer(nofile);
const seconds = Number(values.seconds ?? 75);
switch (attack) {
  case "slowloris": {
    const open = await openConnections(server.port, 300, "GET /v1/sessions HTTP/1.1\r\nHost: x\r\n", { text: "X-Slowloris: " + "a".repeat(4000), everyMs: 15_000 });
    await watchCheckpoints(server, open, 300, seconds);
    break;
  }
  case "upload": {
    const open = await openConnections(server.port, 200, `POST /v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n`, { text: "a".repeat(100_000), everyMs: 10_000 });
    await watchCheckpoints(server, open, 200, seconds);
    break;
  }
  case "preface": {
    const open = await openConnections(server.port, 1, PREFACE.subarray(0, 1), { text: PREFACE.subarray(1), everyMs: 9_000 });
    await watchCheckpoints(server, open, 1, seconds);
    break;
  }
  case "g-only": {
    const open = await openConnections(server.port, 2000, "G");
    await watchCheckpoints(server, open, 2000, seconds);
    break;
  }
  case "h2-preface": {
    const open = await openConnections(server.port, 1000, PREFACE);
    await watchCheckpoints(server, open, 1000, seconds);
    break;
  }
  case "nofile": {
    const count = Math.round(nofile! * 1.07);
    const open = await openConnections(server.port, count, "G");
    await watchCheckpoints(server, open, count, seconds);
    break;
  }
  case "stop": {
    const idle = await openConnections(server.port, 100, Buffer.concat([PREFACE, SETTINGS]));
    for (const socket of idle) socket.pause();
    const created = await fetch(`http://127.0.0.1:${server.port}/v1/agents`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ name: "a", default_model_id: "model_fedcba9876543210fedcba9876543210" }) });
    const agent = (await created.json()) as { id: string };
    const session = (await (await fetch(`http://127.0.0.1:${server.port}/v1/sessions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ agent_id: agent.id, title: "w" }) })).json()) as { id: string };
    const watchers = http2.connect(`http://127.0.0.1:${server.port}`, { settings: { initialWindowSize: 0 } });
    watchers.on("error", () => {});
    const body = Buffer.from(JSON.stringify({ id: session.id }));
    const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, 0]), body]);
    frame.writeUInt32BE(body.length, 1);
    for (let i = 0; i < 200; i++) {
      const watch = watchers.request({ ":method": "POST", ":path": "/sessions.v1.SessionService/WatchSession", "content-type": "application/connect+json" });
      watch.on("error", () => {});
      watch.end(frame);
    }
    await sleep(1000);
    const signalled = Date.now();
    server.child.kill("SIGTERM");
    const exited = await Promise.race([server.exited.then(() => true), sleep(seconds * 1000).then(() => false)]);
    const rss = exited ? undefined : peakRssMb(server.child.pid!);
    console.log(JSON.stringify({ attack, dir, idleH2: 100, zeroWindowWatchers: 200, exitedAfterSeconds: exited ? (Date.now() - signalled) / 1000 : `not at ${seconds}`, peakRssMb: rss }));
    break;
  }
  default:
    throw new Error(`unknown attack ${attack}`);
}
process.exit(0);
