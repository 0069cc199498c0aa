/**
 * Found while testing stream revocation (issue 12), fixed in src/net/graceful-stop.ts: a
 * client crashed the server process (a native assertion in Node 20.20.2's nghttp2 glue,
 * SIGABRT, 3 rounds in 6) by keeping a health watch and a bidirectional reflection stream
 * open, the second ended by the server with an error, then resetting both just as the
 * server began a stop (SIGTERM). The last in-flight request's "close" fires while Node is
 * inside nghttp2 parsing the RST_STREAM, promise jobs run before nghttp2 returns, and the
 * stop destroyed the session there. Node 24 never crashed. test/graceful-stop.test.ts
 * keeps the same sequence.
 *
 *   node --import tsx bench/attacks/bidi-reset-crash.ts [wait ms, default 1000]
 *
 * Prints, per round, the server's exit code (null: killed by the abort) and the assertion.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ServerReflection, ServerReflectionRequestSchema } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { Health } from "../../gen/health/v1/health_pb.js";
import { startServerProcess } from "../server-process.js";

const dir = mkdtempSync(join(tmpdir(), "repro-"));
const db = join(dir, "s.db");
const waitMs = Number(process.argv[2] ?? 1000);
for (let round = 0; round < 6; round++) {
  const server = await startServerProcess({ command: process.execPath, args: ["--import", "tsx", "src/main.ts", "--port", "0", "--db", db, "--log-level", "warn"], cwd: process.cwd() });
  const transport = createGrpcTransport({ baseUrl: server.url });
  const abort = new AbortController();
  const health = (async () => { try { for await (const _ of createClient(Health, transport).watch({}, { signal: abort.signal })) {} } catch {} })();
  async function* requests() {
    yield create(ServerReflectionRequestSchema, { messageRequest: { case: "listServices", value: "" } });
    await new Promise((r) => setTimeout(r, 50));
    yield create(ServerReflectionRequestSchema, {});
    await new Promise((resolve) => abort.signal.addEventListener("abort", resolve));
  }
  let err;
  try {
    for await (const _ of createClient(ServerReflection, transport).serverReflectionInfo(requests(), { signal: abort.signal })) {}
  } catch (e) { err = ConnectError.from(e); }
  await new Promise((r) => setTimeout(r, waitMs));
  abort.abort();
  await health;
  const code = await server.stop();
  console.log("ended", err?.code, "server exit", code, /Assertion.*/.exec(server.stderr())?.[0] ?? "");
}
