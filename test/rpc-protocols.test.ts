import { create, toBinary, toJson } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { Http2SessionManager } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CreateSessionRequestSchema, SessionService } from "../gen/sessions/v1/session_service_pb.js";
import { SessionSchema, SessionStatus, type Session } from "../gen/sessions/v1/session_pb.js";
import { BadRequestSchema } from "../gen/google/rpc/error_details_pb.js";
import {
  AGENT_ID,
  DEFAULT_ORG_ID,
  MODEL_ID,
  requestJson,
  SESSION_ID_PATTERN,
  startTestServer,
  type TestServer,
} from "./helpers/server.js";
import { RPC_TRANSPORTS } from "./helpers/rpc-transports.js";

/** The JSON REST answers with: proto field names, every implicit field present. */
const restJson = (session: Session) => toJson(SessionSchema, session, { useProtoFieldName: true, alwaysEmitImplicit: true });

const AGENT_ID_FORM = 'Invalid agent ID: agent_id must be "agent_" followed by 32 lowercase hex digits';

async function rpcError(promise: Promise<unknown>): Promise<ConnectError> {
  try {
    const response = await promise;
    throw new Error(`expected the call to fail, got ${JSON.stringify(response, (_, v) => (typeof v === "bigint" ? `${v}` : v))}`);
  } catch (error) {
    if (!(error instanceof ConnectError)) throw error;
    return error;
  }
}

function violationsOf(error: ConnectError): Array<{ field: string; description: string }> {
  return error.findDetails(BadRequestSchema).flatMap((detail) =>
    detail.fieldViolations.map(({ field, description }) => ({ field, description })),
  );
}

describe.each(RPC_TRANSPORTS)("$name", (transport) => {
  let server: TestServer;
  let client: Client<typeof SessionService>;
  beforeAll(async () => {
    server = await startTestServer();
    client = createClient(SessionService, transport.create(server.url));
  });
  afterAll(async () => {
    await server?.close();
  });

  it("creates a session and gets it back with exact field values", async () => {
    const before = Date.now();
    const created = await client.createSession({
      agentId: AGENT_ID,
      modelId: MODEL_ID,
      title: "Résumé ✓ 🚀",
      tags: ["alpha", "beta"],
      capabilities: [
        { capabilityId: "web.search:v2", config: { max_results: 5, nested: { on: true, list: ["a", null] } } },
        { capabilityId: "code_exec" },
      ],
    });
    const after = Date.now();

    expect(created.id).toMatch(SESSION_ID_PATTERN);
    expect(created).toStrictEqual(
      create(SessionSchema, {
        id: created.id,
        orgId: DEFAULT_ORG_ID,
        agentId: AGENT_ID,
        modelId: MODEL_ID,
        title: "Résumé ✓ 🚀",
        tags: ["alpha", "beta"],
        capabilities: [
          { capabilityId: "web.search:v2", config: { max_results: 5, nested: { on: true, list: ["a", null] } } },
          { capabilityId: "code_exec" },
        ],
        status: SessionStatus.PENDING,
        usage: { inputTokens: 0n, outputTokens: 0n, cacheReadTokens: 0n, cacheCreationTokens: 0n },
        promptPreview: "",
        responsePreview: "",
        error: "",
        etag: "session-v1",
        createdAt: created.createdAt,
        updatedAt: created.createdAt,
      }),
    );
    expect(created.startedAt).toBeUndefined();
    expect(created.finishedAt).toBeUndefined();
    const createdMs = timestampMs(created.createdAt!);
    expect(createdMs).toBeGreaterThanOrEqual(before);
    expect(createdMs).toBeLessThanOrEqual(after);

    const got = await client.getSession({ id: created.id });
    expect(got).toStrictEqual(created);
  });

  it("answers invalid_argument with the exact message and a BadRequest detail for a malformed agent id", async () => {
    const error = await rpcError(client.createSession({ agentId: "agent_0123" }));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toBe(AGENT_ID_FORM);
    expect(violationsOf(error)).toStrictEqual([{ field: "agent_id", description: AGENT_ID_FORM }]);
  });

  it("answers invalid_argument for a malformed session id", async () => {
    const error = await rpcError(client.getSession({ id: "session_0123" }));
    expect(error.code).toBe(Code.InvalidArgument);
    const description = 'Invalid session ID: id must be "session_" followed by 32 lowercase hex digits';
    expect(error.rawMessage).toBe(description);
    expect(violationsOf(error)).toStrictEqual([{ field: "id", description }]);
  });

  it("answers not_found without details for a well-formed id that does not exist", async () => {
    const id = "session_0123456789abcdef0123456789abcdef";
    const error = await rpcError(client.getSession({ id }));
    expect(error.code).toBe(Code.NotFound);
    expect(error.rawMessage).toBe(`session ${id} not found`);
    expect(error.details).toStrictEqual([]);
  });

  it("serves a session it created over REST as the same JSON", async () => {
    const created = await client.createSession({
      agentId: AGENT_ID,
      title: "made over RPC",
      tags: ["x"],
      capabilities: [{ capabilityId: "c", config: { n: 1.5, s: "v" } }],
    });
    const rest = await requestJson(`${server.url}/v1/sessions/${created.id}`);
    expect(rest.status).toBe(200);
    expect(rest.body).toStrictEqual(restJson(created));
  });

  it("serves a session created over REST as the same JSON", async () => {
    const rest = await requestJson(`${server.url}/v1/sessions`, {
      body: {
        agent_id: AGENT_ID,
        model_id: MODEL_ID,
        title: "made over REST",
        tags: ["y", "z"],
        capabilities: [{ capability_id: "c", config: { deep: { list: [1, "two", false] } } }],
      },
    });
    expect(rest.status).toBe(201);
    const got = await client.getSession({ id: rest.body.id });
    expect(restJson(got)).toStrictEqual(rest.body);
  });

  it("answers resource_exhausted for a request over 1 MiB", async () => {
    // A client and connection of its own, closed at the end. The server answers before it
    // has read the whole request and leaves the rest unread (reported): over HTTP/1.1 it
    // then resets the connection, so a pooled client's next call on it fails; over HTTP/2
    // the request stream stays half-open, holding the server's stop for its full
    // deadline, until the client closes the connection.
    const manager = transport.httpVersion === "2" ? new Http2SessionManager(server.url) : undefined;
    const oneShot = createClient(SessionService, transport.create(server.url, manager));
    const request = { agentId: AGENT_ID, title: "x".repeat(2 * 1024 * 1024) };
    try {
      const error = await rpcError(oneShot.createSession(request));
      expect(error.code).toBe(Code.ResourceExhausted);
      // The size is named when the protocol's envelope declared it (gRPC, gRPC-Web), not
      // when the server stopped reading a Connect unary body past the limit.
      const bytes = transport.codec === "binary"
        ? toBinary(CreateSessionRequestSchema, create(CreateSessionRequestSchema, request)).length
        : JSON.stringify(request).length;
      const size = transport.protocol === "connect" ? "" : `${bytes} `;
      expect(error.rawMessage).toBe(`message size ${size}is larger than configured readMaxBytes 1048576`);
    } finally {
      manager?.abort();
    }
  });
});
