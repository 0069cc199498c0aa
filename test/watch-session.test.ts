import * as http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SessionService, WatchSessionRequestSchema } from "../gen/sessions/v1/session_service_pb.js";
import { SessionSchema, SessionStatus, UsageSchema, type Session } from "../gen/sessions/v1/session_pb.js";
import { etagOf } from "../src/service/etag.js";
import { WATCH_QUEUE_LIMIT } from "../src/service/session-watch.js";
import { until } from "./helpers/until.js";
import { AGENT_ID, DEFAULT_ORG_ID, startTestServer, type TestServer } from "./helpers/server.js";
import { RPC_TRANSPORTS, type RpcTransportCase } from "./helpers/rpc-transports.js";

type SessionClient = Client<typeof SessionService>;

/** A watch running in the background: what it has received, and how it ended. */
interface Watch {
  readonly messages: Session[];
  /** Resolves when the stream ends: undefined when it ended cleanly, else its error. */
  readonly ended: Promise<ConnectError | undefined>;
  readonly abort: AbortController;
}

function watch(client: SessionClient, id: string): Watch {
  const messages: Session[] = [];
  const abort = new AbortController();
  const ended = (async () => {
    try {
      for await (const message of client.watchSession({ id }, { signal: abort.signal })) messages.push(message);
      return undefined;
    } catch (error) {
      return ConnectError.from(error);
    }
  })();
  return { messages, ended, abort };
}

const byName = (name: string): RpcTransportCase => RPC_TRANSPORTS.find((t) => t.name === name)!;
/** One of each protocol and HTTP version a watcher can use. */
const MIXED_TRANSPORTS = [
  byName("gRPC binary over HTTP/2"),
  byName("Connect JSON over HTTP/2"),
  byName("Connect binary over HTTP/1.1"),
  byName("gRPC-Web binary over HTTP/1.1"),
];

const usage = (input: bigint, output: bigint, cacheRead: bigint, cacheCreation: bigint) =>
  create(UsageSchema, { inputTokens: input, outputTokens: output, cacheReadTokens: cacheRead, cacheCreationTokens: cacheCreation });

describe.each(RPC_TRANSPORTS)("WatchSession over $name", (transport) => {
  let server: TestServer;
  let client: SessionClient;
  beforeAll(async () => {
    server = await startTestServer();
    client = createClient(SessionService, transport.create(server.url));
  });
  afterAll(async () => {
    await server?.close();
  });

  it("sends the current state, then start, usage and completion in order, and ends after COMPLETED", async () => {
    const created = await client.createSession({ agentId: AGENT_ID, title: "watched" });
    const watcher = watch(client, created.id);
    await until(() => watcher.messages.length === 1, "the current state");

    const started = await client.startSession({ id: created.id });
    const firstTurn = await client.recordUsage({
      id: created.id, inputTokens: 100n, outputTokens: 20n, cacheReadTokens: 3n, cacheCreationTokens: 4n,
      promptPreview: "hello", responsePreview: "hi there",
    });
    const secondTurn = await client.recordUsage({ id: created.id, inputTokens: 5n, outputTokens: 6n, responsePreview: "bye" });
    const completed = await client.completeSession({ id: created.id });

    expect(await watcher.ended).toBeUndefined();
    expect(watcher.messages).toStrictEqual([created, started, firstTurn, secondTurn, completed]);
    expect(watcher.messages.map((s) => [s.status, s.usage, s.promptPreview, s.responsePreview, s.etag])).toStrictEqual([
      [SessionStatus.PENDING, usage(0n, 0n, 0n, 0n), "", "", etagOf("session", 1)],
      [SessionStatus.RUNNING, usage(0n, 0n, 0n, 0n), "", "", etagOf("session", 2)],
      [SessionStatus.RUNNING, usage(100n, 20n, 3n, 4n), "hello", "hi there", etagOf("session", 3)],
      [SessionStatus.RUNNING, usage(105n, 26n, 3n, 4n), "hello", "bye", etagOf("session", 4)],
      [SessionStatus.COMPLETED, usage(105n, 26n, 3n, 4n), "hello", "bye", etagOf("session", 5)],
    ]);
    expect(server.events.watchers(DEFAULT_ORG_ID, created.id)).toBe(0);
  });

  it("sends a FAILED session with its error once and ends", async () => {
    const created = await client.createSession({ agentId: AGENT_ID });
    await client.startSession({ id: created.id });
    const failed = await client.failSession({ id: created.id, error: "model unavailable" });
    const watcher = watch(client, created.id);
    expect(await watcher.ended).toBeUndefined();
    expect(watcher.messages).toStrictEqual([failed]);
    expect(watcher.messages[0]!.error).toBe("model unavailable");
  });

  it("sends a CANCELLED session once and ends", async () => {
    const created = await client.createSession({ agentId: AGENT_ID });
    const cancelled = await client.cancelSession({ id: created.id });
    const watcher = watch(client, created.id);
    expect(await watcher.ended).toBeUndefined();
    expect(watcher.messages).toStrictEqual([cancelled]);
    expect(server.events.watchedSessions).toBe(0);
  });

  it("answers not_found for a well-formed id that does not exist", async () => {
    const id = "session_0123456789abcdef0123456789abcdef";
    const watcher = watch(client, id);
    const error = await watcher.ended;
    expect([error?.code, error?.rawMessage]).toStrictEqual([Code.NotFound, `session ${id} not found`]);
    expect(watcher.messages).toStrictEqual([]);
  });

  it("answers invalid_argument for a malformed id", async () => {
    const watcher = watch(client, "session_0123");
    const error = await watcher.ended;
    expect([error?.code, error?.rawMessage]).toStrictEqual([
      Code.InvalidArgument,
      'Invalid session ID: id must be "session_" followed by 32 lowercase hex digits',
    ]);
    expect(watcher.messages).toStrictEqual([]);
  });

  it("ends with not_found when the session is deleted, after the changes before it", async () => {
    const created = await client.createSession({ agentId: AGENT_ID });
    const watcher = watch(client, created.id);
    await until(() => watcher.messages.length === 1, "the current state");
    const started = await client.startSession({ id: created.id });
    await client.deleteSession({ id: created.id });
    const error = await watcher.ended;
    expect([error?.code, error?.rawMessage]).toStrictEqual([Code.NotFound, `session ${created.id} was deleted`]);
    expect(watcher.messages).toStrictEqual([created, started]);
    expect(server.events.watchers(DEFAULT_ORG_ID, created.id)).toBe(0);
  });

  it("removes the watcher when the client cancels the call", async () => {
    const created = await client.createSession({ agentId: AGENT_ID });
    const watcher = watch(client, created.id);
    await until(() => watcher.messages.length === 1, "the current state");
    expect(server.events.watchers(DEFAULT_ORG_ID, created.id)).toBe(1);
    watcher.abort.abort();
    expect((await watcher.ended)?.code).toBe(Code.Canceled);
    await until(() => server.events.watchers(DEFAULT_ORG_ID, created.id) === 0, "the watcher to be removed");
  });
});

describe("WatchSession with many watchers", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.close();
  });

  it("sends every change in order to each of 200 watchers while 50 of them disconnect midway, and leaves no listener", async () => {
    const clients = MIXED_TRANSPORTS.map((t) => createClient(SessionService, t.create(server.url)));
    const writer = clients[0]!;
    const created = await writer.createSession({ agentId: AGENT_ID });
    const watchers = Array.from({ length: 200 }, (_, i) => watch(clients[i % clients.length]!, created.id));
    await until(() => watchers.every((w) => w.messages.length === 1), "200 first messages");
    expect(server.events.watchers(DEFAULT_ORG_ID, created.id)).toBe(200);

    // One of every four watchers leaves, over each transport in turn, ten at a time between
    // the writes.
    const leaving = watchers.filter((_, i) => i % 4 === Math.floor(i / 4) % 4);
    expect(leaving).toHaveLength(50);
    const expected: Session[] = [created, await writer.startSession({ id: created.id })];
    for (let turn = 1; turn <= 10; turn++) {
      if (turn <= 5) for (const w of leaving.slice((turn - 1) * 10, turn * 10)) w.abort.abort();
      expected.push(await writer.recordUsage({ id: created.id, inputTokens: BigInt(turn), outputTokens: 1n }));
    }
    expected.push(await writer.completeSession({ id: created.id }));

    const endings = await Promise.all(watchers.map((w) => w.ended));
    const staying = watchers.filter((w) => !leaving.includes(w));
    expect(staying).toHaveLength(150);
    for (const w of staying) {
      expect(w.messages.map((s) => s.etag)).toStrictEqual(expected.map((s) => s.etag));
      expect(w.messages).toStrictEqual(expected);
    }
    for (const w of leaving) {
      // What a leaving watcher received before it left is a gapless prefix.
      expect(w.messages).toStrictEqual(expected.slice(0, w.messages.length));
      expect(endings[watchers.indexOf(w)]?.code).toBe(Code.Canceled);
    }
    expect(staying.map((w) => endings[watchers.indexOf(w)])).toStrictEqual(staying.map(() => undefined));
    expect(expected.at(-1)!.usage).toStrictEqual(usage(55n, 10n, 0n, 0n));
    await until(() => server.events.watchedSessions === 0, "every listener to be removed");
    expect(server.logs.filter((line) => line.level !== 30)).toStrictEqual([]);
  });
});

/** A gRPC WatchSession call over a raw HTTP/2 stream that reads nothing until told to. */
function rawGrpcWatch(url: string, id: string) {
  const session = http2.connect(url);
  const stream = session.request({
    ":method": "POST",
    ":path": "/sessions.v1.SessionService/WatchSession",
    "content-type": "application/grpc+proto",
    te: "trailers",
  });
  const message = toBinary(WatchSessionRequestSchema, create(WatchSessionRequestSchema, { id }));
  const envelope = Buffer.alloc(5 + message.length);
  envelope.writeUInt32BE(message.length, 1);
  envelope.set(message, 5);
  stream.end(envelope);
  stream.pause();
  let headers: http2.IncomingHttpHeaders | undefined;
  stream.once("response", (h) => (headers = h));
  // Listened for from the start: a stream ended while its data is within the flow-control
  // window has its trailers delivered before the client reads any data.
  const trailers = new Promise<http2.IncomingHttpHeaders>((resolve) => stream.once("trailers", resolve));
  return {
    session,
    stream,
    get headers() {
      return headers;
    },
    /** Reads everything to the end: the messages and the trailers. */
    async readAll(): Promise<{ messages: Session[]; trailers: http2.IncomingHttpHeaders }> {
      const chunks: Buffer[] = [];
      for await (const chunk of stream) chunks.push(chunk as Buffer);
      const body = Buffer.concat(chunks);
      const messages: Session[] = [];
      for (let at = 0; at < body.length; ) {
        const length = body.readUInt32BE(at + 1);
        messages.push(fromBinary(SessionSchema, body.subarray(at + 5, at + 5 + length)));
        at += 5 + length;
      }
      return { messages, trailers: await trailers };
    },
  };
}

describe("WatchSession with a watcher that never reads", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.close();
  });

  it("does not hold up writers: the watcher is dropped with resource_exhausted once its queue is full", { timeout: 60_000 }, async () => {
    const writer = createClient(SessionService, byName("gRPC binary over HTTP/2").create(server.url));
    const created = await writer.createSession({ agentId: AGENT_ID });
    await writer.startSession({ id: created.id });
    const stalled = rawGrpcWatch(server.url, created.id);
    try {
      await until(() => stalled.headers !== undefined && server.events.watchers(DEFAULT_ORG_ID, created.id) === 1, "the watch to start");

      // More changes than the queue holds plus what HTTP/2 flow control lets through (the
      // client's 64 KiB stream window: about 300 messages), 32 calls at a time.
      const calls = WATCH_QUEUE_LIMIT + 1000;
      let left = calls;
      const began = performance.now();
      await Promise.all(
        Array.from({ length: 32 }, async () => {
          while (left-- > 0) await writer.recordUsage({ id: created.id, inputTokens: 1n, outputTokens: 2n });
        }),
      );
      // Generous: a writer held up by the watcher would never finish; this machine is shared.
      expect(performance.now() - began).toBeLessThan(30_000);
      const final = await writer.getSession({ id: created.id });
      expect(final.usage).toStrictEqual(usage(BigInt(calls), BigInt(2 * calls), 0n, 0n));
      // The listener went at the change that overflowed, without waiting for the client.
      expect(server.events.watchers(DEFAULT_ORG_ID, created.id)).toBe(0);

      // Once it does read, it finds a gapless run of states and then the reason it ends.
      // Node 24 resets a stream whose handler ended while its writes wait on flow control,
      // so there the client meets the reset instead (found with part 8; see the README).
      if (Number(process.versions.node.split(".")[0]) >= 24) {
        await expect(stalled.readAll()).rejects.toThrow("Premature close");
        return;
      }
      const { messages, trailers } = await stalled.readAll();
      expect(messages.length).toBeGreaterThan(1);
      expect(messages.length).toBeLessThan(calls);
      expect(messages.map((s) => s.etag)).toStrictEqual(messages.map((_, i) => etagOf("session", i + 2)));
      expect(trailers["grpc-status"]).toBe(String(Code.ResourceExhausted));
      expect(decodeURIComponent(String(trailers["grpc-message"]))).toBe(
        `watcher fell behind: more than ${WATCH_QUEUE_LIMIT} changes of session ${created.id} were waiting to be sent; watch again for the current state`,
      );
    } finally {
      stalled.session.destroy();
    }
  });
});

describe("WatchSession and a server stop", () => {
  it("ends open watch streams with unavailable at once, so stop() does not wait for the shutdown timeout", async () => {
    const server = await startTestServer();
    try {
      const writer = createClient(SessionService, MIXED_TRANSPORTS[0]!.create(server.url));
      const created = await writer.createSession({ agentId: AGENT_ID });
      const watchers = MIXED_TRANSPORTS.flatMap((t) => {
        const client = createClient(SessionService, t.create(server.url));
        return [watch(client, created.id), watch(client, created.id)];
      });
      await until(() => watchers.every((w) => w.messages.length === 1), "every first message");

      const began = performance.now();
      await server.stop();
      const stopMs = performance.now() - began;
      // The test server's shutdown timeout is 2,000 ms.
      expect(stopMs).toBeLessThan(500);
      const endings = await Promise.all(watchers.map((w) => w.ended));
      expect(endings.map((e) => [e?.code, e?.rawMessage])).toStrictEqual(
        watchers.map(() => [Code.Unavailable, "server is shutting down"]),
      );
      expect(server.events.watchedSessions).toBe(0);
      expect(server.logs.filter((l) => l.level !== 30)).toStrictEqual([]);
    } finally {
      await server.close();
    }
  });
});
