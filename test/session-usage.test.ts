import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { SessionService } from "../gen/sessions/v1/session_service_pb.js";
import { AGENT_ID, requestJson, startTestServer, type TestServer } from "./helpers/server.js";

describe("RecordUsage", () => {
  let server: TestServer;
  let grpc: Client<typeof SessionService>;
  beforeAll(async () => {
    server = await startTestServer();
    grpc = createClient(SessionService, createGrpcTransport({ baseUrl: server.url }));
  });
  afterAll(async () => {
    await server.close();
  });

  const create = async () => (await requestJson(`${server.url}/v1/sessions`, { body: { agent_id: AGENT_ID } })).body.id as string;
  const record = (id: string, body: unknown) =>
    requestJson(`${server.url}/v1/sessions/${id}:recordUsage`, { method: "POST", body });

  it("adds token deltas to the cumulative usage", async () => {
    const id = await create();
    await record(id, { input_tokens: 100, output_tokens: "20", cache_read_tokens: 5, cache_creation_tokens: 7 });
    const res = await record(id, { input_tokens: "1", cacheReadTokens: 1 });
    expect(res.status).toBe(200);
    expect(res.body.usage).toEqual({ input_tokens: "101", output_tokens: "20", cache_read_tokens: "6", cache_creation_tokens: "7" });
    expect(res.body.etag).toBe("session-v3");
  });

  it("keeps the first prompt preview and replaces the response preview", async () => {
    const id = await create();
    await record(id, { prompt_preview: "first question", response_preview: "first answer" });
    const res = await record(id, { prompt_preview: "second question", response_preview: "second answer" });
    expect(res.body.prompt_preview).toBe("first question");
    expect(res.body.response_preview).toBe("second answer");
    const unchanged = await record(id, { input_tokens: 1 });
    expect(unchanged.body.response_preview).toBe("second answer");
  });

  it("truncates previews to 200 characters without splitting a surrogate pair", async () => {
    const id = await create();
    const prompt = "a".repeat(199) + "😀😀tail";
    const response = "é".repeat(250);
    const res = await record(id, { prompt_preview: prompt, response_preview: response });
    expect(res.body.prompt_preview).toBe("a".repeat(199) + "😀");
    expect([...res.body.prompt_preview]).toHaveLength(200);
    expect(res.body.response_preview).toBe("é".repeat(200));
  });

  it("refuses negative deltas, naming each field, and changes nothing", async () => {
    const id = await create();
    const res = await record(id, { input_tokens: -1, cache_creation_tokens: "-5", output_tokens: 3 });
    expect(res.status).toBe(400);
    expect(res.body.message).toBe("input_tokens must be at least 0, got -1; cache_creation_tokens must be at least 0, got -5");
    expect(res.body.details[0].field_violations.map((v: { field: string }) => v.field)).toEqual(["input_tokens", "cache_creation_tokens"]);
    const got = await requestJson(`${server.url}/v1/sessions/${id}`);
    expect(got.body.usage.output_tokens).toBe("0");
  });

  it("refuses a sum past int64 with out_of_range (400, code 11)", async () => {
    const id = await create();
    await record(id, { output_tokens: "9223372036854775800" });
    const res = await record(id, { output_tokens: "8" });
    expect(res.status).toBe(400);
    expect(res.body.code).toBe(11);
    expect(res.body.message).toBe(`usage would overflow: outputTokens of session ${id} exceeds 2^63-1`);
    expect((await requestJson(`${server.url}/v1/sessions/${id}`)).body.usage.output_tokens).toBe("9223372036854775800");
  });

  it("records usage after the session completed (late reports are kept)", async () => {
    const id = await create();
    await requestJson(`${server.url}/v1/sessions/${id}:start`, { method: "POST" });
    await requestJson(`${server.url}/v1/sessions/${id}:complete`, { method: "POST" });
    const res = await record(id, { output_tokens: 9 });
    expect(res.status).toBe(200);
    expect(res.body.status).toBe("SESSION_STATUS_COMPLETED");
    expect(res.body.usage.output_tokens).toBe("9");
  });

  it("answers 404 for an unknown session", async () => {
    const res = await record("session_0123456789abcdef0123456789abcdef", { input_tokens: 1 });
    expect(res.status).toBe(404);
  });

  it("loses no tokens under 1,000 concurrent calls over REST and gRPC", async () => {
    const id = await create();
    const calls = Array.from({ length: 1000 }, (_, i) =>
      i % 2 === 0
        ? record(id, { input_tokens: i, output_tokens: 1, cache_read_tokens: 2, cache_creation_tokens: 3 }).then((r) => r.status)
        : grpc
            .recordUsage({ id, inputTokens: BigInt(i), outputTokens: 1n, cacheReadTokens: 2n, cacheCreationTokens: 3n })
            .then(() => 200, (e: unknown) => ConnectError.from(e).code),
    );
    const statuses = await Promise.all(calls);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    const got = await grpc.getSession({ id });
    expect(got.usage).toMatchObject({ inputTokens: 499500n, outputTokens: 1000n, cacheReadTokens: 2000n, cacheCreationTokens: 3000n });
    expect(got.etag).toBe("session-v1001");
  });

  it("answers invalid_argument over gRPC for a negative delta", async () => {
    const id = await create();
    const error = await grpc.recordUsage({ id, inputTokens: -3n }).then(() => undefined, (e: unknown) => ConnectError.from(e));
    expect(error?.code).toBe(Code.InvalidArgument);
    expect(error?.rawMessage).toBe("input_tokens must be at least 0, got -3");
  });
});
