/**
 * Attack: N grpc.health.v1.Health/Watch streams, no key, 100 per HTTP/2 connection (raw
 * node:http2, reading nothing after the first message), opened as fast as the server takes
 * them; meanwhile a probe asks GET /healthz on a fresh connection every 200 ms.
 *
 *   node --import tsx bench/attacks/health-watch-flood.ts [--streams 10000] [-- server flags]
 *
 * Prints one JSON line: how many streams the server answered with a first message (open)
 * or ended without one (refused: resource_exhausted past a cap), the longest /healthz wait (a probe that
 * takes over 1 s counts as unreachable for that long), and the server's peak RSS.
 */
import * as http2 from "node:http2";
import * as http from "node:http";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { startServerProcess } from "../server-process.js";

const split = process.argv.indexOf("--");
const { values } = parseArgs({
  args: process.argv.slice(2, split === -1 ? undefined : split),
  options: { streams: { type: "string", default: "10000" } },
});
const serverFlags = split === -1 ? [] : process.argv.slice(split + 1);
const count = Number(values.streams);
const dir = mkdtempSync(join(tmpdir(), "attack-health-"));
const server = await startServerProcess({
  command: process.execPath,
  args: ["--import", "tsx", "src/main.ts", "--port", "0", "--db", join(dir, "sessions.db"), "--log-level", "warn", ...serverFlags],
  cwd: new URL("../..", import.meta.url).pathname,
});
const rss = () => Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${server.servingPid}/status`, "utf8"))![1]) / 1024;

let worstProbeMs = 0;
let probing = true;
const probe = (async () => {
  while (probing) {
    const began = performance.now();
    await new Promise<void>((resolve) => {
      const req = http.get(`${server.url}/healthz`, { agent: false, timeout: 120_000 }, (res) => {
        res.resume();
        res.on("end", () => resolve());
      });
      req.on("error", () => resolve());
    });
    worstProbeMs = Math.max(worstProbeMs, performance.now() - began);
    await new Promise((r) => setTimeout(r, 200));
  }
})();

// An empty HealthCheckRequest: a 5-byte envelope of length 0.
const envelope = Buffer.alloc(5);
const sessions: http2.ClientHttp2Session[] = [];
let open = 0;
let failed = 0;
const settled: Promise<void>[] = [];
const began = performance.now();
for (let i = 0; i < count; i++) {
  if (i % 100 === 0) {
    const session = http2.connect(server.url);
    session.on("error", () => {});
    sessions.push(session);
  }
  const stream = sessions.at(-1)!.request({
    ":method": "POST", ":path": "/grpc.health.v1.Health/Watch", "content-type": "application/grpc+proto", te: "trailers",
  });
  stream.end(envelope);
  settled.push(
    new Promise<void>((resolve) => {
      stream.once("data", () => {
        open++;
        stream.pause();
        resolve();
      });
      stream.once("close", () => resolve());
      stream.once("error", () => (failed++, resolve()));
    }),
  );
  if (i % 1000 === 999) await new Promise((r) => setImmediate(r));
}
await Promise.all(settled);
const openMs = performance.now() - began;
await new Promise((r) => setTimeout(r, 2000));
probing = false;
await probe;
const peak = rss();
for (const s of sessions) s.destroy();
await server.stop();
rmSync(dir, { recursive: true, force: true });
console.log(JSON.stringify({ streams: count, open, refused: count - open - failed, failed, openMs: Math.round(openMs), worstHealthzMs: Math.round(worstProbeMs), peakRssMiB: Math.round(peak) }));
