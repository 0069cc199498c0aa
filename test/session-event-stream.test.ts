import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { SessionService } from "../gen/sessions/v1/session_service_pb.js";
import { MessageRole } from "../gen/sessions/v1/message_pb.js";
import { SessionEventType, type SessionEvent } from "../gen/sessions/v1/session_event_pb.js";
import { SessionStatus } from "../gen/sessions/v1/session_pb.js";
import { AGENT_ID, DEFAULT_ORG_ID, createAgentOverRest, requestJson, startTestServer, type TestServer } from "./helpers/server.js";
import { RPC_TRANSPORTS } from "./helpers/rpc-transports.js";
import { spawnServer, type ServerProcess } from "./helpers/process.js";
import { until } from "./helpers/until.js";

type SessionClient = Client<typeof SessionService>;

/** A follower running in the background: what it received, and how it ended. */
interface Follower {
  readonly events: SessionEvent[];
  /** Undefined when the stream ended cleanly, else its error. */
  readonly ended: Promise<ConnectError | undefined>;
  readonly abort: AbortController;
}

function follow(client: SessionClient, sessionId: string, afterSequence = 0n): Follower {
  const events: SessionEvent[] = [];
  const abort = new AbortController();
  const ended = (async () => {
    try {
      for await (const event of client.streamSessionEvents({ sessionId, afterSequence }, { signal: abort.signal })) events.push(event);
      return undefined;
    } catch (error) {
      return ConnectError.from(error);
    }
  })();
  return { events, ended, abort };
}

const sequences = (events: readonly SessionEvent[]) => events.map((e) => Number(e.sequence));
const types = (events: readonly SessionEvent[]) => events.map((e) => SessionEventType[e.type]);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

function userText(text: string) {
  return { role: MessageRole.USER, content: [{ part: { case: "text" as const, value: text } }] };
}

describe("StreamSessionEvents on every RPC protocol", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server.close();
  });

  describe.each(RPC_TRANSPORTS)("$name", (transport) => {
    it("sends the log from the start, then each change as it is stored, and ends after the final event", async () => {
      const client = createClient(SessionService, transport.create(server.url));
      const session = await client.createSession({ agentId: AGENT_ID, title: "followed" });
      const follower = follow(client, session.id);
      await until(() => follower.events.length === 1, "the CREATED event");
      await client.startSession({ id: session.id });
      const added = await client.addMessage({ sessionId: session.id, message: userText("Review PR 42") });
      await client.recordUsage({ id: session.id, inputTokens: 5n });
      await client.completeSession({ id: session.id });
      expect(await follower.ended).toBeUndefined();
      expect(sequences(follower.events)).toStrictEqual([1, 2, 3, 4, 5]);
      expect(types(follower.events)).toStrictEqual([
        "CREATED", "STARTED", "MESSAGE_ADDED", "USAGE_RECORDED", "COMPLETED",
      ]);
      const [created, started, message, usage, completed] = follower.events;
      expect(created!.session!.status).toBe(SessionStatus.PENDING);
      expect(started!.session!.status).toBe(SessionStatus.RUNNING);
      expect(message!.change).toStrictEqual({ case: "message", value: added });
      expect(message!.session!.promptPreview).toBe("Review PR 42");
      expect(usage!.change.case).toBe("usage");
      expect(usage!.change.value).toMatchObject({ inputTokens: 5n, outputTokens: 0n });
      expect(usage!.session!.usage!.inputTokens).toBe(5n);
      expect(completed!.session!.status).toBe(SessionStatus.COMPLETED);
      expect(follower.events.every((e) => e.sessionId === session.id)).toBe(true);
    });

    it("resumes after the last sequence seen: every later event once, in order; after the final event it ends at once", async () => {
      const client = createClient(SessionService, transport.create(server.url));
      const session = await client.createSession({ agentId: AGENT_ID });
      await client.startSession({ id: session.id });
      for (let i = 0; i < 5; i++) await client.addMessage({ sessionId: session.id, message: userText(`m${i}`) });
      const first = follow(client, session.id);
      await until(() => first.events.length === 7, "the first 7 events");
      first.abort.abort();
      await first.ended;
      // Written while nobody follows.
      for (let i = 5; i < 8; i++) await client.addMessage({ sessionId: session.id, message: userText(`m${i}`) });
      const resumed = follow(client, session.id, 7n);
      await until(() => resumed.events.length === 3, "the 3 events written meanwhile");
      await client.cancelSession({ id: session.id });
      expect(await resumed.ended).toBeUndefined();
      expect(sequences(resumed.events)).toStrictEqual([8, 9, 10, 11]);
      expect(types(resumed.events).at(-1)).toBe("CANCELLED");
      const afterFinal = follow(client, session.id, 11n);
      expect(await afterFinal.ended).toBeUndefined();
      expect(afterFinal.events).toStrictEqual([]);
    });
  });

  it("answers not_found for another organisation's session, invalid_argument for a bad id or a negative after_sequence, out_of_range past the last event", async () => {
    const client = createClient(SessionService, createGrpcTransport({ baseUrl: server.url }));
    const session = await client.createSession({ agentId: AGENT_ID });
    const outcomes = await Promise.all(
      [
        { sessionId: "session_00000000000000000000000000000000", afterSequence: 0n },
        { sessionId: "nope", afterSequence: 0n },
        { sessionId: session.id, afterSequence: -1n },
        { sessionId: session.id, afterSequence: 2n },
      ].map(async (request) => {
        try {
          for await (const _ of client.streamSessionEvents(request));
          return "ended";
        } catch (error) {
          const e = ConnectError.from(error);
          return `${Code[e.code]}: ${e.rawMessage}`;
        }
      }),
    );
    expect(outcomes[0]).toBe("NotFound: session session_00000000000000000000000000000000 not found");
    expect(outcomes[1]).toMatch(/^InvalidArgument: /);
    expect(outcomes[2]).toBe("InvalidArgument: after_sequence must be 0 or more, got -1");
    expect(outcomes[3]).toBe(`OutOfRange: after_sequence 2 is past the last event of session ${session.id} (1)`);
  });

  it("ends with not_found when the session is deleted, after the events before the delete", async () => {
    const client = createClient(SessionService, createGrpcTransport({ baseUrl: server.url }));
    const session = await client.createSession({ agentId: AGENT_ID });
    const follower = follow(client, session.id);
    await client.addMessage({ sessionId: session.id, message: userText("hello") });
    await until(() => follower.events.length === 2, "CREATED and MESSAGE_ADDED");
    await client.deleteSession({ id: session.id });
    const ended = await follower.ended;
    expect(ended?.code).toBe(Code.NotFound);
    expect(ended?.rawMessage).toBe(`session ${session.id} was deleted`);
    expect(sequences(follower.events)).toStrictEqual([1, 2]);
  });

  it("100 followers while 1,000 messages are appended at once over REST and gRPC: each sees 1..N with no gap and no duplicate; usage is the exact sum", { timeout: 120_000 }, async () => {
    const grpc = createClient(SessionService, createGrpcTransport({ baseUrl: server.url }));
    const session = await grpc.createSession({ agentId: AGENT_ID });
    await grpc.startSession({ id: session.id });
    // 10 connections of 10 streams: an HTTP/2 connection takes 100 streams at once, and the
    // writer's calls need their own.
    const followerClients = Array.from({ length: 10 }, () => createClient(SessionService, createGrpcTransport({ baseUrl: server.url })));
    const followers = Array.from({ length: 100 }, (_, i) => follow(followerClients[i % 10]!, session.id));
    await until(() => server.events.watchers(DEFAULT_ORG_ID, session.id) >= 100, "100 followers subscribed", 20_000);
    const appends = range(1, 1000).map((i) => {
      const usage = { inputTokens: String(i), outputTokens: String(2 * i), cacheReadTokens: "1", cacheCreationTokens: "0" };
      const content = [{ text: `answer ${i}` }];
      if (i % 2 === 0) {
        return requestJson(`${server.url}/v1/sessions/${session.id}/messages`, {
          body: { role: "MESSAGE_ROLE_ASSISTANT", content, usage },
        }).then((r) => expect(r.status).toBe(201));
      }
      return grpc.addMessage({
        sessionId: session.id,
        message: {
          role: MessageRole.ASSISTANT,
          content: [{ part: { case: "text", value: `answer ${i}` } }],
          usage: { inputTokens: BigInt(i), outputTokens: BigInt(2 * i), cacheReadTokens: 1n, cacheCreationTokens: 0n },
        },
      });
    });
    await Promise.all(appends);
    await grpc.completeSession({ id: session.id });
    const last = 1 + 1 + 1000 + 1;
    for (const follower of followers) {
      expect(await follower.ended).toBeUndefined();
      expect(sequences(follower.events)).toStrictEqual(range(1, last));
    }
    const stored = await grpc.getSession({ id: session.id });
    expect(stored.usage).toMatchObject({ inputTokens: 500_500n, outputTokens: 1_001_000n, cacheReadTokens: 1000n, cacheCreationTokens: 0n });
  });
});

describe("StreamSessionEvents across a SIGKILL", () => {
  const dirs: string[] = [];
  const running: ServerProcess[] = [];
  afterEach(() => {
    for (const p of running.splice(0)) {
      try {
        process.kill(-p.child.pid!, "SIGKILL");
      } catch {
        // already gone
      }
    }
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it("a follower of a killed server resumes on the restarted one with its last sequence: nothing missed, nothing repeated", { timeout: 90_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "sessions-follow-"));
    dirs.push(dir);
    const db = join(dir, "s.db");
    const first = await spawnServer(["--port", "0", "--db", db]);
    running.push(first);
    const agentId = await createAgentOverRest(first.url);
    const client1 = createClient(SessionService, createGrpcTransport({ baseUrl: first.url }));
    const session = await client1.createSession({ agentId });
    await client1.startSession({ id: session.id });
    const follower = follow(client1, session.id);
    // Acknowledged appends while the follower reads; the server is killed in the middle.
    let acknowledged = 0;
    const writer = (async () => {
      try {
        for (let i = 0; i < 10_000; i++) {
          await client1.addMessage({ sessionId: session.id, message: userText(`m${i}`) });
          acknowledged++;
        }
      } catch {
        // the server was killed
      }
    })();
    await until(() => follower.events.length >= 50, "50 events followed", 20_000);
    process.kill(-first.child.pid!, "SIGKILL");
    await first.exited;
    await writer;
    // How the client names a connection lost mid-stream varies (unavailable, aborted).
    expect(await follower.ended).toBeInstanceOf(ConnectError);
    const seen = sequences(follower.events);
    expect(seen).toStrictEqual(range(1, seen.length));

    const second = await spawnServer(["--port", "0", "--db", db]);
    running.push(second);
    const client2 = createClient(SessionService, createGrpcTransport({ baseUrl: second.url }));
    const resumed = follow(client2, session.id, BigInt(seen.at(-1)!));
    for (let i = 0; i < 3; i++) await client2.addMessage({ sessionId: session.id, message: userText(`after restart ${i}`) });
    await client2.completeSession({ id: session.id });
    expect(await resumed.ended).toBeUndefined();
    const all = [...seen, ...sequences(resumed.events)];
    const last = all.at(-1)!;
    expect(all).toStrictEqual(range(1, last));
    // Every acknowledged append is in the log: CREATED, STARTED, the appends, 3 more, COMPLETED.
    expect(last).toBeGreaterThanOrEqual(2 + acknowledged + 3 + 1);
    expect(types(resumed.events).at(-1)).toBe("COMPLETED");
  });
});
