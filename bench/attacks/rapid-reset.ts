/**
 * HTTP/2 rapid reset across connections, measured: a server from `--server` (a checkout,
 * default this one) on a temporary database with `--sessions` sessions of 32 long tags,
 * then `--connections` × `--streams` reset `GET /v1/sessions?page_size=1000`, while a
 * probe asks `/healthz` on a fresh HTTP/1.1 connection every 100 ms and the server's RSS
 * is read from /proc every 100 ms. The server is the bundle `npm start` serves (built first),
 * logging at `--log-level` (default info, as shipped). Prints outage seconds (time probes waited past 1 s),
 * the slowest probe, and peak RSS. Loopback only.
 *
 * With --split, each connection sends its preface alone and its streams only once the
 * server answered, so that they reach Node in reads of their own rather than in the bytes
 * the cleartext listener sniffed.
 *
 *   node --import tsx bench/attacks/rapid-reset.ts --connections 10 --streams 900 [--split]
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { startServerProcess } from "../server-process.js";
import { rapidReset } from "./rapid-reset-frames.js";
import { probeHealth, watchRss } from "./outage.js";

const { values } = parseArgs({
  options: {
    server: { type: "string", default: resolve(import.meta.dirname, "../..") },
    connections: { type: "string", default: "10" },
    streams: { type: "string", default: "900" },
    sessions: { type: "string", default: "500" },
    "settle-ms": { type: "string", default: "3000" },
    "log-level": { type: "string", default: "info" },
    split: { type: "boolean", default: false },
  },
});
const connections = Number(values.connections);
const streams = Number(values.streams);
const dir = mkdtempSync(join(tmpdir(), "rapid-reset-"));
// As `npm start` serves: the bundle, not the TypeScript through tsx.
execFileSync(process.execPath, ["scripts/build.mjs"], { cwd: values.server, stdio: "ignore" });
const server = await startServerProcess({
  command: process.execPath,
  args: ["dist/main.js", "--port", "0", "--db", join(dir, "sessions.db"), "--log-level", values["log-level"]],
  cwd: values.server,
});
const port = Number(new URL(server.url).port);
try {
  await seed(server.url, Number(values.sessions));
  const rss = watchRss(server.servingPid);
  const probe = probeHealth(port);
  const before = rss.current();
  const started = Date.now();
  const { written, goaways } = await rapidReset(port, "/v1/sessions?page_size=1000", connections, streams, 500, values.split);
  const sentMs = Date.now() - started;
  // Until the probes have answered within 1 s for `settle-ms` straight, or 15 minutes.
  await probe.settled(Number(values["settle-ms"]), 15 * 60_000);
  const result = probe.stop();
  rss.stop();
  console.log(
    JSON.stringify({
      server: values.server,
      connections,
      streams,
      split: values.split,
      written,
      goaways,
      sentMs,
      outageSeconds: Math.round(result.outageMs / 100) / 10,
      slowestProbeMs: result.slowestMs,
      failedProbes: result.failed,
      rssBeforeMb: Math.round(before / 2 ** 20),
      peakRssMb: Math.round(rss.peak() / 2 ** 20),
    }),
  );
} finally {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}

async function seed(baseUrl: string, count: number): Promise<void> {
  const post = async (path: string, body: unknown) => {
    const res = await fetch(`${baseUrl}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    if (res.status !== 201) throw new Error(`POST ${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as { id: string };
  };
  const agent = await post("/v1/agents", { name: "bench", default_model_id: "model_0123456789abcdef0123456789abcdef" });
  const tags = Array.from({ length: 32 }, (_, i) => `${String(i).padStart(2, "0")}-${"t".repeat(61)}`);
  for (let i = 0; i < count; i += 50) {
    await Promise.all(
      Array.from({ length: Math.min(50, count - i) }, (_, j) => post("/v1/sessions", { agent_id: agent.id, title: `${i + j} ${"x".repeat(240)}`, tags })),
    );
  }
}

