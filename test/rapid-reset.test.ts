import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startServerProcess, type ServerProcess } from "../bench/server-process.js";
import { rapidReset } from "../bench/attacks/rapid-reset-frames.js";
import { probeHealth, watchRss } from "../bench/attacks/outage.js";
import { MODEL_ID } from "./helpers/server.js";

// HTTP/2 rapid reset across connections, scaled down from the 100 × 900 of
// bench/attacks/rapid-reset.ts: 10 fresh connections, each sending 900 `GET /v1/sessions`
// of 200 large sessions and resetting each at once, against a server process (for its
// RSS). A reset stream must cost next to nothing: no list read for it, the server
// answering /healthz on a fresh connection within 1 s throughout.

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const LIST = "/v1/sessions?page_size=1000";
const CONNECTIONS = 10;
const STREAMS = 900;

let server: ServerProcess;
let dir: string;
let port: number;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "sessions-rapid-reset-"));
  server = await startServerProcess({ command: process.execPath, args: ["dist/main.js", "--port", "0", "--db", join(dir, "s.db")], cwd: ROOT });
  port = Number(new URL(server.url).port);
  const post = async (path: string, body: unknown) => {
    const res = await fetch(`${server.url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    expect(res.status).toBe(201);
    return (await res.json()) as { id: string };
  };
  const agent = await post("/v1/agents", { name: "rapid reset", default_model_id: MODEL_ID });
  const tags = Array.from({ length: 32 }, (_, i) => `${String(i).padStart(2, "0")}-${"t".repeat(61)}`);
  for (let i = 0; i < 200; i += 50) {
    await Promise.all(Array.from({ length: 50 }, (_, j) => post("/v1/sessions", { agent_id: agent.id, title: `${i + j} ${"x".repeat(240)}`, tags })));
  }
}, 30_000);

afterAll(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
}, 40_000);

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(name));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(" ") + 1));
}

const LIST_READS = 'sessions_sqlite_read_duration_seconds_count{operation="list_sessions"}';
const LIMITED = "sessions_h2_reset_limited_connections_total";

describe.each([
  ["in the bytes of each connection's first read", false],
  ["after each connection's preface was answered", true],
])("HTTP/2 rapid reset, %s", (_, split) => {
  it(`${CONNECTIONS} connections × ${STREAMS} reset lists: /healthz within 1 s throughout, RSS under 512 MB, no list read`, async () => {
    const listsBefore = await metric(LIST_READS);
    const limitedBefore = await metric(LIMITED);
    const rss = watchRss(server.servingPid);
    const probe = probeHealth(port);
    try {
      const { written } = await rapidReset(port, LIST, CONNECTIONS, STREAMS, 500, split);
      expect(written).toBe(CONNECTIONS * STREAMS);
      // Two more seconds of probes after the last connection closed.
      await new Promise((resolve) => setTimeout(resolve, 2000));
      // Then stop between two probes: one still in flight at stop() would count as failed.
      await probe.settled(0, 10_000);
    } finally {
      rss.stop();
    }
    const outage = probe.stop();
    expect({ slowestMs: outage.slowestMs < 1000, failed: outage.failed }).toEqual({ slowestMs: true, failed: 0 });
    expect(rss.peak()).toBeLessThan(512 * 2 ** 20);
    // Each connection reset more than --h2-reset-burst (100) streams, and no list was read for nobody.
    expect(await metric(LIMITED)).toBe(limitedBefore + CONNECTIONS);
    expect(await metric(LIST_READS)).toBe(listsBefore);
    // The server still serves lists.
    const res = await fetch(`${server.url}/v1/sessions?page_size=1`);
    expect(res.status).toBe(200);
  }, 30_000);
});
