import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as http from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startServerProcess, type ServerProcess } from "../bench/server-process.js";
import { watchRss } from "../bench/attacks/outage.js";
import { MODEL_ID } from "./helpers/server.js";

// Followers of one session over Server-Sent Events, against a server process (for its RSS):
// 1,000 connected and idle, then 1,000 that never read while the session gets messages.

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const FOLLOWERS = 1000;
const MiB = 2 ** 20;

let server: ServerProcess;
let dir: string;
let sessionId: string;

async function post(path: string, body: unknown): Promise<{ id: string }> {
  const res = await fetch(`${server.url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  expect(res.status).toBe(201);
  return (await res.json()) as { id: string };
}

/** One SSE follower on its own HTTP/1.1 connection; resolves once the answer's headers came. */
function openFollower(id: string, read: boolean): Promise<http.ClientRequest> {
  return new Promise((resolve, reject) => {
    const req = http.get(`${server.url}/v1/sessions/${id}/events:stream`, { agent: false, headers: { accept: "text/event-stream" } }, (res) => {
      expect(res.statusCode).toBe(200);
      if (read) res.resume();
      else res.pause();
      resolve(req);
    });
    req.on("error", reject);
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "sessions-sse-followers-"));
  server = await startServerProcess({ command: process.execPath, args: ["dist/main.js", "--port", "0", "--db", join(dir, "s.db")], cwd: ROOT });
  const agent = await post("/v1/agents", { name: "followed", default_model_id: MODEL_ID });
  sessionId = (await post("/v1/sessions", { agent_id: agent.id, title: "followed" })).id;
  const started = await fetch(`${server.url}/v1/sessions/${sessionId}:start`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
  expect(started.status).toBe(200);
}, 30_000);

afterAll(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
}, 40_000);

describe("SSE followers of one session", () => {
  it(`${FOLLOWERS} idle followers cost under 100 MB`, { timeout: 60_000 }, async () => {
    const rss = watchRss(server.servingPid);
    try {
      const before = rss.current();
      const followers: http.ClientRequest[] = [];
      for (let i = 0; i < FOLLOWERS; i += 100) {
        followers.push(...(await Promise.all(Array.from({ length: 100 }, () => openFollower(sessionId, true)))));
      }
      const open = rss.current();
      for (const req of followers) req.destroy();
      expect(followers.length).toBe(FOLLOWERS);
      expect((open - before) / MiB, `RSS ${Math.round(before / MiB)} -> ${Math.round(open / MiB)} MiB`).toBeLessThan(100);
    } finally {
      rss.stop();
    }
  });

  it(`${FOLLOWERS} followers that never read, while 500 messages of 8 KiB are appended: every append answered, RSS bounded`, { timeout: 90_000 }, async () => {
    const rss = watchRss(server.servingPid);
    try {
      const followers: http.ClientRequest[] = [];
      for (let i = 0; i < FOLLOWERS; i += 100) {
        followers.push(...(await Promise.all(Array.from({ length: 100 }, () => openFollower(sessionId, false)))));
      }
      const open = rss.current();
      const text = "x".repeat(8 * 1024);
      for (let i = 0; i < 500; i += 50) {
        await Promise.all(
          Array.from({ length: 50 }, () => post(`/v1/sessions/${sessionId}/messages`, { role: "MESSAGE_ROLE_USER", content: [{ text }] })),
        );
      }
      // Every follower is owed ~500 events of 10+ KiB (5 MB each, 5 GB in all): held back by
      // the sockets, not queued in the server.
      const peak = rss.peak();
      for (const req of followers) req.destroy();
      expect((peak - open) / MiB, `RSS ${Math.round(open / MiB)} -> peak ${Math.round(peak / MiB)} MiB`).toBeLessThan(300);
    } finally {
      rss.stop();
    }
  });
});
