import { spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SessionService } from "../gen/sessions/v1/session_service_pb.js";
import { until } from "./helpers/until.js";
import { AGENT_ID, DEFAULT_ORG_ID, startTestServer, type TestServer } from "./helpers/server.js";

const WATCHERS = 1000;
const UPDATES = 100;
/** The updates are timed in this many alternating rounds of UPDATES / ROUNDS each. */
const ROUNDS = 10;

/** `count` non-reading WatchSession streams of one session, from a child process (see the helper). */
async function stalledWatchers(url: string, id: string, count: number) {
  const child = spawn(process.execPath, ["--import", "tsx", fileURLToPath(new URL("./helpers/stalled-watchers.ts", import.meta.url)), url, id, String(count)], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const exited = once(child, "exit");
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  await until(() => out.includes("open\n") || child.exitCode !== null, "every watcher's first message", 20_000);
  if (!out.includes("open\n")) throw new Error(`the watchers' process exited ${child.exitCode}`);
  return {
    /** Closes every stream (the client goes away) and waits for the process to exit. */
    close: async () => {
      child.stdin!.end();
      await exited;
    },
  };
}

describe("watchers that never read do not slow writers", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ streamLimits: { perSession: WATCHERS } });
  });
  afterAll(async () => {
    await server?.close();
  });

  it(`${UPDATES} usage updates with ${WATCHERS} non-reading watchers on the session take at most twice as long as with none`, { timeout: 60_000 }, async () => {
    const writer = createClient(SessionService, createGrpcTransport({ baseUrl: server.url }));
    const updates = async (id: string, count: number) => {
      const began = performance.now();
      for (let i = 0; i < count; i++) await writer.recordUsage({ id, inputTokens: 1n, outputTokens: 1n, responsePreview: `turn ${i}` });
      return performance.now() - began;
    };
    const quiet = await writer.createSession({ agentId: AGENT_ID });
    await writer.startSession({ id: quiet.id });
    await updates(quiet.id, UPDATES); // warm-up

    const watched = await writer.createSession({ agentId: AGENT_ID });
    await writer.startSession({ id: watched.id });
    const stalled = await stalledWatchers(server.url, watched.id, WATCHERS);
    // Rounds alternate between the quiet and the watched session, so that the load of a
    // shared machine (other test files run beside this one) weighs on both sides alike.
    let withMs = 0;
    let withoutMs = 0;
    try {
      expect(server.events.watchers(DEFAULT_ORG_ID, watched.id)).toBe(WATCHERS);
      for (let round = 0; round < ROUNDS; round++) {
        if (round % 2 === 0) {
          withoutMs += await updates(quiet.id, UPDATES / ROUNDS);
          withMs += await updates(watched.id, UPDATES / ROUNDS);
        } else {
          withMs += await updates(watched.id, UPDATES / ROUNDS);
          withoutMs += await updates(quiet.id, UPDATES / ROUNDS);
        }
      }
      // The watchers are still there, behind: none was ended for 100 changes (the queue
      // holds more).
      expect(server.events.watchers(DEFAULT_ORG_ID, watched.id)).toBe(WATCHERS);
      expect((await writer.getSession({ id: watched.id })).usage?.inputTokens).toBe(BigInt(UPDATES));
    } finally {
      await stalled.close();
    }
    await until(() => server.events.watchers(DEFAULT_ORG_ID, watched.id) === 0, "the watchers to be removed", 10_000);
    expect(withMs / withoutMs, `${Math.round(withMs)} ms with watchers, ${Math.round(withoutMs)} ms without`).toBeLessThanOrEqual(2);
  });
});
