/**
 * Attack: N WatchSession streams on one session whose client never reads (raw HTTP/2,
 * paused), 100 per connection; then 200 RecordUsage calls one after another on a fresh
 * connection, timed, against the same 200 calls with no watcher open.
 *
 *   node --import tsx bench/attacks/stalled-watchers.ts [--watchers 4000] [--updates 200] [--profile DIR] [-- server flags]
 *
 * Starts `node --import tsx src/main.ts` on a temporary database (loopback, port 0); with
 * --profile, the server runs under --cpu-prof and writes its profile into DIR on stop.
 * Prints one JSON line: the two durations, their ratio, and the server's peak RSS (VmHWM).
 */
import * as http2 from "node:http2";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { create, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { SessionService, WatchSessionRequestSchema } from "../../gen/sessions/v1/session_service_pb.js";
import { AgentService } from "../../gen/sessions/v1/agent_service_pb.js";
import { startServerProcess } from "../server-process.js";

const split = process.argv.indexOf("--");
const { values } = parseArgs({
  args: process.argv.slice(2, split === -1 ? undefined : split),
  options: { watchers: { type: "string", default: "4000" }, updates: { type: "string", default: "200" }, profile: { type: "string" } },
});
const serverFlags = split === -1 ? [] : process.argv.slice(split + 1);
const watcherCount = Number(values.watchers);
const updates = Number(values.updates);
const root = new URL("../..", import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), "attack-watchers-"));

const server = await startServerProcess({
  command: process.execPath,
  args: [
    ...(values.profile ? ["--cpu-prof", `--cpu-prof-dir=${values.profile}`] : []),
    "--import", "tsx", "src/main.ts", "--port", "0", "--db", join(dir, "sessions.db"), "--log-level", "warn", ...serverFlags,
  ],
  cwd: root,
});
const peakRss = () => Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${server.servingPid}/status`, "utf8"))![1]) / 1024;

try {
  const writer = createClient(SessionService, createGrpcTransport({ baseUrl: server.url }));
  const agents = createClient(AgentService, createGrpcTransport({ baseUrl: server.url }));
  const agent = await agents.createAgent({ name: "attack", defaultModelId: "model_fedcba9876543210fedcba9876543210" });
  const timedUpdates = async (id: string) => {
    const began = performance.now();
    for (let i = 0; i < updates; i++) {
      await writer.recordUsage({ id, inputTokens: 1n, outputTokens: 1n, responsePreview: `turn ${i}` });
    }
    return performance.now() - began;
  };

  const quiet = await writer.createSession({ agentId: agent.id, title: "no watchers" });
  await writer.startSession({ id: quiet.id });
  await timedUpdates(quiet.id); // warm-up: JIT, statement cache
  const withoutMs = await timedUpdates(quiet.id);

  const watched = await writer.createSession({ agentId: agent.id, title: "watched" });
  await writer.startSession({ id: watched.id });
  const message = toBinary(WatchSessionRequestSchema, create(WatchSessionRequestSchema, { id: watched.id }));
  const envelope = Buffer.alloc(5 + message.length);
  envelope.writeUInt32BE(message.length, 1);
  envelope.set(message, 5);
  const sessions: http2.ClientHttp2Session[] = [];
  const streams: http2.ClientHttp2Stream[] = [];
  let started = 0;
  const opened: Promise<void>[] = [];
  for (let i = 0; i < watcherCount; i++) {
    if (i % 100 === 0) sessions.push(http2.connect(server.url));
    const stream = sessions.at(-1)!.request({
      ":method": "POST", ":path": "/sessions.v1.SessionService/WatchSession", "content-type": "application/grpc+proto", te: "trailers",
    });
    stream.end(envelope);
    stream.pause(); // never reads: flow control stops the server's data
    stream.on("error", () => {});
    opened.push(new Promise<void>((resolve) => stream.once("response", () => (started++, resolve()))));
    streams.push(stream);
  }
  await Promise.all(opened);
  const withMs = await timedUpdates(watched.id);
  const rss = peakRss();
  for (const s of sessions) s.destroy();
  console.log(JSON.stringify({
    watchers: watcherCount, started, updates,
    withoutMs: Math.round(withoutMs), withMs: Math.round(withMs), ratio: Number((withMs / withoutMs).toFixed(2)),
    peakRssMiB: Math.round(rss),
  }));
} finally {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}
