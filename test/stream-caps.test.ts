import { setMaxListeners } from "node:events";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterEach, describe, expect, it } from "vitest";
import { SessionService } from "../gen/sessions/v1/session_service_pb.js";
import { Health } from "../gen/health/v1/health_pb.js";
import { ServerReflection, ServerReflectionRequestSchema } from "../gen/grpc/reflection/v1/reflection_pb.js";
import { DEFAULT_STREAM_LIMITS, type StreamLimits } from "../src/service/stream-caps.js";
import { OPTIONS } from "../src/config.js";
import { until } from "./helpers/until.js";
import { AGENT_ID, seedTestAgent, startTestServer, type TestServer } from "./helpers/server.js";
import { insertTestKey, type TestKey } from "./helpers/keys.js";
import { RPC_TRANSPORTS } from "./helpers/rpc-transports.js";

const ORG_A = "org_" + "a".repeat(32);
const ORG_B = "org_" + "b".repeat(32);
const AGENT_B = "agent_" + "b".repeat(32);

/** A long-lived stream running in the background: what it received, and how it ended. */
interface OpenStream {
  readonly messages: unknown[];
  /** Undefined when it ended cleanly, else its error. */
  readonly ended: Promise<ConnectError | undefined>;
  /** Whether it has ended (ended has settled). */
  readonly done: () => boolean;
  readonly abort: AbortController;
}

function follow(start: (signal: AbortSignal) => AsyncIterable<unknown>): OpenStream {
  const messages: unknown[] = [];
  const abort = new AbortController();
  setMaxListeners(0, abort.signal);
  let finished = false;
  const ended = (async () => {
    try {
      for await (const message of start(abort.signal)) messages.push(message);
      return undefined;
    } catch (error) {
      return ConnectError.from(error);
    } finally {
      finished = true;
      // Ends the request side too, at once (see bench/attacks/bidi-reset-crash.ts).
      abort.abort();
    }
  })();
  return { messages, ended, done: () => finished, abort };
}

const bearer = (key: TestKey | undefined): Record<string, string> => (key ? { authorization: `Bearer ${key.key}` } : {});

/** The three kinds of long-lived stream the server has, each opened on `transport`. */
function watchSession(transport: Transport, id: string, key?: TestKey): OpenStream {
  const client = createClient(SessionService, transport);
  return follow((signal) => client.watchSession({ id }, { signal, headers: bearer(key) }));
}
function watchHealth(transport: Transport): OpenStream {
  const client = createClient(Health, transport);
  return follow((signal) => client.watch({ service: "" }, { signal }));
}
/** A reflection stream that asks for the list of services once, then keeps its request side open. */
function reflect(transport: Transport, key?: TestKey): OpenStream {
  const client = createClient(ServerReflection, transport);
  return follow((signal) => {
    async function* requests() {
      yield create(ServerReflectionRequestSchema, { messageRequest: { case: "listServices", value: "" } });
      await new Promise((resolve) => signal.addEventListener("abort", resolve));
    }
    return client.serverReflectionInfo(requests(), { signal, headers: bearer(key) });
  });
}

/** Waits for every stream's first message (it is open) and returns them. */
async function opened(...streams: OpenStream[]): Promise<OpenStream[]> {
  await until(() => streams.every((s) => s.messages.length > 0 || s.done()), "the streams to open or end");
  for (const s of streams) if (s.done()) throw new Error(`a stream ended instead of opening: ${(await s.ended)?.message}`);
  return streams;
}

/** How a refused stream ended: its code and message, and that it sent nothing. */
async function refusal(stream: OpenStream): Promise<[Code | undefined, string | undefined, number]> {
  const error = await stream.ended;
  return [error?.code, error?.rawMessage, stream.messages.length];
}

const grpc = (server: TestServer) => createGrpcTransport({ baseUrl: server.url });

let server: TestServer | undefined;
let streams: OpenStream[] = [];
async function startCapped(streamLimits: Partial<StreamLimits>, withKeys = false) {
  server = await startTestServer({ streamLimits, seedAgent: !withKeys });
  if (withKeys) await seedTestAgent(server.store, AGENT_ID, ORG_A);
  return server;
}
const track = (...opened: OpenStream[]) => (streams.push(...opened), opened);
afterEach(async () => {
  for (const s of streams) s.abort.abort();
  await Promise.all(streams.map((s) => s.ended));
  streams = [];
  await server?.close();
  server = undefined;
});

describe("caps on long-lived streams", () => {
  it("has a flag, a variable and a default for each cap", () => {
    const row = (flag: string) => OPTIONS.find((o) => o.flag === flag);
    expect(
      ["max-streams", "max-keyless-streams", "max-streams-per-connection", "max-streams-per-org", "max-watchers-per-session"].map((flag) => [
        flag,
        row(flag)?.env,
        row(flag)?.default,
      ]),
    ).toStrictEqual([
      ["max-streams", "MAX_STREAMS", "10000"],
      ["max-keyless-streams", "MAX_KEYLESS_STREAMS", "1000"],
      ["max-streams-per-connection", "MAX_STREAMS_PER_CONNECTION", "100"],
      ["max-streams-per-org", "MAX_STREAMS_PER_ORG", "5000"],
      ["max-watchers-per-session", "MAX_WATCHERS_PER_SESSION", "1000"],
    ]);
    expect(DEFAULT_STREAM_LIMITS).toStrictEqual({ total: 10_000, keyless: 1000, perConnection: 100, perOrg: 5000, perSession: 1000 });
  });

  it("refuses a 4th stream on one connection with resource_exhausted naming --max-streams-per-connection, and takes it on another", async () => {
    const server = await startCapped({ perConnection: 3 });
    const client = createClient(SessionService, grpc(server));
    const [s1, s2] = [await client.createSession({ agentId: AGENT_ID }), await client.createSession({ agentId: AGENT_ID })];
    const first = grpc(server);
    // One of each kind: they share the cap.
    const [watch] = track(...(await opened(watchSession(first, s1.id), watchHealth(first), reflect(first))));
    const refused = track(watchSession(first, s2.id), watchHealth(first));
    expect(await Promise.all(refused.map(refusal))).toStrictEqual(
      refused.map(() => [Code.ResourceExhausted, "too many open streams on this connection: at most 3 (--max-streams-per-connection)", 0]),
    );
    track(...(await opened(watchSession(grpc(server), s2.id))));
    expect(server.streams.size).toBe(4);

    // A place is free again as soon as a stream ends.
    watch!.abort.abort();
    await until(() => server.streams.size === 3, "the cancelled stream to free its place");
    track(...(await opened(watchSession(first, s2.id))));
  });

  it("refuses a 3rd watcher of one session naming --max-watchers-per-session, on any connection and protocol", async () => {
    const server = await startCapped({ perSession: 2 });
    const client = createClient(SessionService, grpc(server));
    const [s1, s2] = [await client.createSession({ agentId: AGENT_ID }), await client.createSession({ agentId: AGENT_ID })];
    track(...(await opened(watchSession(grpc(server), s1.id), watchSession(grpc(server), s1.id))));
    const message = `too many watchers of session ${s1.id}: at most 2 (--max-watchers-per-session)`;
    for (const transport of RPC_TRANSPORTS) {
      const [refused] = track(watchSession(transport.create(server.url), s1.id));
      expect([transport.name, ...(await refusal(refused!))]).toStrictEqual([transport.name, Code.ResourceExhausted, message, 0]);
    }
    // Other sessions, and streams that follow no session, are not counted against it.
    track(...(await opened(watchSession(grpc(server), s2.id), watchHealth(grpc(server)))));
  });

  it("refuses a 3rd stream of one organisation naming --max-streams-per-org, whichever of its keys, and not another organisation's", async () => {
    const server = await startCapped({ perOrg: 2 }, true);
    await seedTestAgent(server.store, AGENT_B, ORG_B);
    const [a1, a2, b1] = [await insertTestKey(server.store, ORG_A), await insertTestKey(server.store, ORG_A), await insertTestKey(server.store, ORG_B)];
    const client = createClient(SessionService, grpc(server));
    const sa = await client.createSession({ agentId: AGENT_ID }, { headers: bearer(a1) });
    const sb = await client.createSession({ agentId: AGENT_B }, { headers: bearer(b1) });
    track(...(await opened(watchSession(grpc(server), sa.id, a1), reflect(grpc(server), a2))));
    const [refused] = track(watchSession(grpc(server), sa.id, a2));
    expect(await refusal(refused!)).toStrictEqual([
      Code.ResourceExhausted,
      "too many open streams for this organisation: at most 2 (--max-streams-per-org)",
      0,
    ]);
    // Without a valid key the answer is unauthenticated, as for any call, not the cap.
    const [unkeyed] = track(watchSession(grpc(server), sa.id));
    expect((await unkeyed!.ended)?.code).toBe(Code.Unauthenticated);
    track(...(await opened(watchSession(grpc(server), sb.id, b1), watchHealth(grpc(server)))));
  });

  it("holds 20 health watches without a key and refuses 40 more naming --max-keyless-streams, while keyed streams still open", async () => {
    const server = await startCapped({ keyless: 20 }, true);
    const key = await insertTestKey(server.store, ORG_A);
    const session = await createClient(SessionService, grpc(server)).createSession({ agentId: AGENT_ID }, { headers: bearer(key) });
    // Health needs no key, also on a server with keys.
    const transports = Array.from({ length: 6 }, () => grpc(server));
    track(...(await opened(...Array.from({ length: 20 }, (_, i) => watchHealth(transports[i % 6]!)))));
    const refused = track(...Array.from({ length: 40 }, (_, i) => watchHealth(transports[i % 6]!)));
    const endings = await Promise.all(refused.map(refusal));
    expect(new Set(endings.map((e) => JSON.stringify(e)))).toStrictEqual(
      new Set([JSON.stringify([Code.ResourceExhausted, "too many open streams without an API key on this server: at most 20 (--max-keyless-streams)", 0])]),
    );
    expect(server.streams.size).toBe(20);
    track(...(await opened(watchSession(grpc(server), session.id, key), reflect(grpc(server), key))));
  });

  it("refuses any stream past --max-streams on the server, and frees places however streams end", async () => {
    const server = await startCapped({ total: 2 });
    const client = createClient(SessionService, grpc(server));
    const session = await client.createSession({ agentId: AGENT_ID });
    const [health] = track(...(await opened(watchHealth(grpc(server)), watchSession(grpc(server), session.id))));
    const [refused] = track(reflect(grpc(server)));
    expect(await refusal(refused!)).toStrictEqual([Code.ResourceExhausted, "too many open streams on this server: at most 2 (--max-streams)", 0]);

    // The server ends the watch (a final status), the client cancels the health watch, a
    // watch of a missing session fails: each frees its place.
    await client.cancelSession({ id: session.id });
    await until(() => server.streams.size === 1, "the finished watch to free its place");
    health!.abort.abort();
    await until(() => server.streams.size === 0, "the cancelled health watch to free its place");
    const [missing] = track(watchSession(grpc(server), "session_" + "0".repeat(32)));
    expect((await missing!.ended)?.code).toBe(Code.NotFound);
    expect(server.streams.size).toBe(0);
    track(...(await opened(reflect(grpc(server)), watchHealth(grpc(server)))));
    expect(server.logs.filter((line) => (line.level as number) >= 50)).toStrictEqual([]);
  });
});
