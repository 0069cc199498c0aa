import * as http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SessionService, WatchSessionRequestSchema } from "../gen/sessions/v1/session_service_pb.js";
import { until } from "./helpers/until.js";
import { AGENT_ID, DEFAULT_ORG_ID, startTestServer, type TestServer } from "./helpers/server.js";

const WATCHERS = 1000;
const UPDATES = 100;

/** `count` gRPC WatchSession streams of one session, 100 per HTTP/2 connection, whose client never reads. */
function stalledWatchers(url: string, id: string, count: number) {
  const message = toBinary(WatchSessionRequestSchema, create(WatchSessionRequestSchema, { id }));
  const envelope = Buffer.alloc(5 + message.length);
  envelope.writeUInt32BE(message.length, 1);
  envelope.set(message, 5);
  const sessions: http2.ClientHttp2Session[] = [];
  const trailers: http2.IncomingHttpHeaders[] = [];
  let responses = 0;
  for (let i = 0; i < count; i++) {
    if (i % 100 === 0) sessions.push(http2.connect(url));
    const stream = sessions.at(-1)!.request({
      ":method": "POST",
      ":path": "/sessions.v1.SessionService/WatchSession",
      "content-type": "application/grpc+proto",
      te: "trailers",
    });
    stream.end(envelope);
    stream.pause();
    stream.on("error", () => {});
    stream.once("response", () => responses++);
    stream.once("trailers", (t) => trailers.push(t));
  }
  return { sessions, trailers, responses: () => responses };
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
    const updates = async (id: string) => {
      const began = performance.now();
      for (let i = 0; i < UPDATES; i++) await writer.recordUsage({ id, inputTokens: 1n, outputTokens: 1n, responsePreview: `turn ${i}` });
      return performance.now() - began;
    };
    const quiet = await writer.createSession({ agentId: AGENT_ID });
    await writer.startSession({ id: quiet.id });
    await updates(quiet.id); // warm-up
    const withoutMs = await updates(quiet.id);

    const watched = await writer.createSession({ agentId: AGENT_ID });
    await writer.startSession({ id: watched.id });
    const stalled = stalledWatchers(server.url, watched.id, WATCHERS);
    try {
      await until(() => stalled.responses() === WATCHERS, "every watcher's first message", 20_000);
      expect(server.events.watchers(DEFAULT_ORG_ID, watched.id)).toBe(WATCHERS);
      const withMs = await updates(watched.id);
      expect(withMs / withoutMs, `${Math.round(withMs)} ms with watchers, ${Math.round(withoutMs)} ms without`).toBeLessThanOrEqual(2);

      // The watchers are still there, behind: none was ended for 100 changes (the queue
      // holds more), and the last change is the one they will reach.
      expect(server.events.watchers(DEFAULT_ORG_ID, watched.id)).toBe(WATCHERS);
      expect((await writer.getSession({ id: watched.id })).usage?.inputTokens).toBe(BigInt(UPDATES));
      expect(stalled.trailers.map((t) => t["grpc-status"]).filter((s) => s !== String(Code.Unavailable))).toStrictEqual([]);
    } finally {
      for (const s of stalled.sessions) s.destroy();
    }
    await until(() => server.events.watchers(DEFAULT_ORG_ID, watched.id) === 0, "the watchers to be removed", 10_000);
  });
});
