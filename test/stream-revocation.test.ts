import { setMaxListeners } from "node:events";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterEach, describe, expect, it } from "vitest";
import { SessionService } from "../gen/sessions/v1/session_service_pb.js";
import { Health } from "../gen/health/v1/health_pb.js";
import { ServerReflection, ServerReflectionRequestSchema } from "../gen/grpc/reflection/v1/reflection_pb.js";
import { until } from "./helpers/until.js";
import { AGENT_ID, seedTestAgent, startTestServer, type TestServer } from "./helpers/server.js";
import { insertTestKey, runKeysCommand, type TestKey } from "./helpers/keys.js";

const ORG_ID = "org_" + "c".repeat(32);

interface OpenStream {
  readonly messages: unknown[];
  readonly ended: Promise<ConnectError | undefined>;
  readonly endedAt: () => number | undefined;
  readonly abort: AbortController;
}

function follow(start: (signal: AbortSignal) => AsyncIterable<unknown>): OpenStream {
  const messages: unknown[] = [];
  const abort = new AbortController();
  setMaxListeners(0, abort.signal);
  let endedAt: number | undefined;
  const ended = (async () => {
    try {
      for await (const message of start(abort.signal)) messages.push(message);
      return undefined;
    } catch (error) {
      return ConnectError.from(error);
    } finally {
      endedAt = performance.now();
      // Ends the request side too, at once: a bidirectional stream the server ended while
      // its request side stayed open, reset a second later, can crash Node 20's HTTP/2
      // (bench/attacks/bidi-reset-crash.ts).
      abort.abort();
    }
  })();
  return { messages, ended, endedAt: () => endedAt, abort };
}

const bearer = (key: TestKey | undefined): Record<string, string> => (key ? { authorization: `Bearer ${key.key}` } : {});
const watch = (transport: Transport, id: string, key?: TestKey) =>
  follow((signal) => createClient(SessionService, transport).watchSession({ id }, { signal, headers: bearer(key) }));
const reflect = (transport: Transport, key?: TestKey) =>
  follow((signal) => {
    async function* requests() {
      yield create(ServerReflectionRequestSchema, { messageRequest: { case: "listServices", value: "" } });
      await new Promise((resolve) => signal.addEventListener("abort", resolve));
    }
    return createClient(ServerReflection, transport).serverReflectionInfo(requests(), { signal, headers: bearer(key) });
  });
const watchHealth = (transport: Transport) => follow((signal) => createClient(Health, transport).watch({ service: "" }, { signal }));

let server: TestServer | undefined;
let open: OpenStream[] = [];
afterEach(async () => {
  for (const s of open) s.abort.abort();
  await Promise.all(open.map((s) => s.ended));
  open = [];
  await server?.close();
  server = undefined;
});

/** Waits until every stream has its first message, and keeps them for the clean-up. */
async function opened(...streams: OpenStream[]): Promise<OpenStream[]> {
  open.push(...streams);
  await until(() => streams.every((s) => s.messages.length > 0 || s.endedAt() !== undefined), "the streams to open");
  for (const s of streams) if (s.endedAt() !== undefined) throw new Error(`a stream ended at once: ${(await s.ended)?.message}`);
  return streams;
}

describe("revocation reaches open streams", () => {
  it("ends every stream opened with a key revoked by `keys revoke` from another process with unauthenticated within 10 s", { timeout: 30_000 }, async () => {
    server = await startTestServer({ seedAgent: false });
    await seedTestAgent(server.store, AGENT_ID, ORG_ID);
    const [revoked, kept] = [await insertTestKey(server.store, ORG_ID, "to revoke"), await insertTestKey(server.store, ORG_ID, "kept")];
    const writer = createClient(SessionService, createGrpcTransport({ baseUrl: server.url }));
    const session = await writer.createSession({ agentId: AGENT_ID }, { headers: bearer(kept) });
    const grpc = createGrpcTransport({ baseUrl: server.url });
    const doomed = await opened(
      watch(grpc, session.id, revoked),
      watch(createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }), session.id, revoked),
      reflect(grpc, revoked),
    );
    const [survivor] = await opened(watch(grpc, session.id, kept), watchHealth(grpc));

    const result = await runKeysCommand(["revoke", revoked.id, "--db", server.dbPath]);
    expect([result.code, result.stderr]).toStrictEqual([0, `revoked ${revoked.id}\n`]);
    const revokedAt = performance.now();

    const endings = await Promise.all(doomed.map((s) => s.ended));
    expect(endings.map((e) => [e?.code, e?.rawMessage, e?.metadata.get("www-authenticate")])).toStrictEqual(
      doomed.map(() => [Code.Unauthenticated, "API key revoked", 'Bearer realm="sessions"']),
    );
    for (const s of doomed) expect(s.endedAt()! - revokedAt).toBeLessThan(10_000);

    // The other key's stream, and health (which needs no key), go on.
    const started = await writer.startSession({ id: session.id }, { headers: bearer(kept) });
    await until(() => survivor!.messages.length === 2, "the kept key's watcher to receive the change");
    expect(survivor!.messages[1]).toStrictEqual(started);
    expect(open.filter((s) => !doomed.includes(s)).map((s) => s.endedAt())).toStrictEqual([undefined, undefined]);
    expect(server.streams.size).toBe(2);
  });

  it("ends a stream opened in open mode with unauthenticated once `keys create` locks the server, within 10 s", { timeout: 30_000 }, async () => {
    server = await startTestServer();
    const grpc = createGrpcTransport({ baseUrl: server.url });
    const session = await createClient(SessionService, grpc).createSession({ agentId: AGENT_ID });
    const [watcher] = await opened(watch(grpc, session.id), watchHealth(grpc));

    const result = await runKeysCommand(["create", "--org", ORG_ID, "--db", server.dbPath]);
    expect(result.code).toBe(0);
    const createdAt = performance.now();
    const ending = await watcher!.ended;
    expect([ending?.code, ending?.rawMessage]).toStrictEqual([Code.Unauthenticated, "missing API key: send Authorization: Bearer <key>"]);
    expect(watcher!.endedAt()! - createdAt).toBeLessThan(10_000);
    expect(server.streams.size).toBe(1);
  });
});
