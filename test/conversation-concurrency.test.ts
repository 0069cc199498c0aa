import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SessionService } from "../gen/sessions/v1/session_service_pb.js";
import { MessageRole } from "../gen/sessions/v1/message_pb.js";
import { AGENT_ID, requestJson, startTestServer, type TestServer } from "./helpers/server.js";

/**
 * 200 assistant messages appended at once, half over REST and half over gRPC, with 40 of
 * them sent twice under a request_id: the session's usage is the exact sum of the stored
 * messages' usages, the log holds sequences 1..201 with no gap, and each MESSAGE_ADDED
 * event's session carries the usage summed up to and including its own message — the
 * message and its usage were stored in one transaction.
 */

type Json = Record<string, any>;
const APPENDS = 200;

describe("concurrent assistant messages over REST and gRPC together", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server.close();
  });

  it("sum their usage exactly, once per message, in gapless sequence order", async () => {
    const session = (await requestJson(`${server.url}/v1/sessions`, { body: { agent_id: AGENT_ID } })).body as Json;
    await requestJson(`${server.url}/v1/sessions/${session.id}:start`, { method: "POST" });
    const grpc = createClient(SessionService, createGrpcTransport({ baseUrl: server.url }));
    const usageOf = (i: number) => ({ input: BigInt(1000 + i), output: BigInt(i * 3), read: BigInt(i % 7), created: BigInt(i * i) });

    const sends: Array<Promise<string>> = [];
    for (let i = 0; i < APPENDS; i++) {
      const u = usageOf(i);
      const requestId = i % 5 === 0 ? `00000000-0000-4000-8000-${i.toString(16).padStart(12, "0")}` : "";
      const times = requestId === "" ? 1 : 2;
      for (let t = 0; t < times; t++) {
        if (i % 2 === 0) {
          const query = requestId === "" ? "" : `?request_id=${requestId}`;
          sends.push(
            requestJson(`${server.url}/v1/sessions/${session.id}/messages${query}`, {
              body: {
                role: "MESSAGE_ROLE_ASSISTANT",
                content: [{ text: `rest ${i}` }],
                usage: { input_tokens: String(u.input), output_tokens: String(u.output), cache_read_tokens: String(u.read), cache_creation_tokens: String(u.created) },
              },
            }).then((res) => {
              expect(res.status).toBe(201);
              return res.body.id as string;
            }),
          );
        } else {
          sends.push(
            grpc
              .addMessage({
                sessionId: session.id,
                requestId,
                message: {
                  role: MessageRole.ASSISTANT,
                  content: [{ part: { case: "text", value: `grpc ${i}` } }],
                  usage: { inputTokens: u.input, outputTokens: u.output, cacheReadTokens: u.read, cacheCreationTokens: u.created },
                },
              })
              .then((m) => m.id),
          );
        }
      }
    }
    const ids = await Promise.all(sends);
    expect(new Set(ids).size).toBe(APPENDS);

    const total = { input: 0n, output: 0n, read: 0n, created: 0n };
    for (let i = 0; i < APPENDS; i++) {
      const u = usageOf(i);
      total.input += u.input;
      total.output += u.output;
      total.read += u.read;
      total.created += u.created;
    }
    const stored = (await requestJson(`${server.url}/v1/sessions/${session.id}`)).body;
    expect(stored.usage).toEqual({
      input_tokens: String(total.input),
      output_tokens: String(total.output),
      cache_read_tokens: String(total.read),
      cache_creation_tokens: String(total.created),
    });

    const messages = (await requestJson(`${server.url}/v1/sessions/${session.id}/messages?page_size=1000`)).body.messages as Json[];
    expect(messages.map((m) => m.id).sort()).toEqual([...ids].sort().filter((id, i, all) => all.indexOf(id) === i));
    const events = (await requestJson(`${server.url}/v1/sessions/${session.id}/events?page_size=1000`)).body.events as Json[];
    expect(events.map((e) => Number(e.sequence))).toEqual(Array.from({ length: APPENDS + 2 }, (_, i) => i + 1));
    const added = events.filter((e) => e.type === "SESSION_EVENT_TYPE_MESSAGE_ADDED");
    expect(added.map((e) => e.message)).toEqual(messages);
    // Each event's session has the usage of every message up to its own, in sequence order.
    let running = 0n;
    for (const event of added) {
      running += BigInt(event.message.usage.input_tokens);
      expect([event.sequence, event.session.usage.input_tokens]).toEqual([event.sequence, String(running)]);
    }
    expect(running).toBe(total.input);
  });
});
