import { fromJson, toJson, type JsonObject } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CreateSessionRequestSchema, SessionService } from "../gen/sessions/v1/session_service_pb.js";
import { SessionSchema } from "../gen/sessions/v1/session_pb.js";
import { BadRequestSchema } from "../gen/google/rpc/error_details_pb.js";
import { AGENT_ID, MODEL_ID, requestJson, SESSION_ID_PATTERN, startTestServer, type TestServer } from "./helpers/server.js";

interface Violation {
  readonly field: string;
  readonly description: string;
}

interface ValidationCase {
  readonly name: string;
  /** A CreateSessionRequest in proto3 JSON with proto field names. */
  readonly request: JsonObject;
  /** The violations expected, in order; none means the request is accepted. */
  readonly violations: readonly Violation[];
}

const EMOJI = "🚀"; // one code point, two UTF-16 units, four UTF-8 bytes
const AGENT_FORM = 'Invalid agent ID: agent_id must be "agent_" followed by 32 lowercase hex digits';
const MODEL_FORM = 'model_id must be "model_" followed by 32 lowercase hex digits, or empty';
const CAPABILITY_CHARSET = (i: number) =>
  `capabilities[${i}].capability_id must contain only letters, digits, "_", ".", ":" and "-"`;

const ok = (name: string, request: JsonObject): ValidationCase => ({ name, request: { agent_id: AGENT_ID, ...request }, violations: [] });
const bad = (name: string, request: JsonObject, ...violations: Array<[string, string]>): ValidationCase => ({
  name,
  request: { agent_id: AGENT_ID, ...request },
  violations: violations.map(([field, description]) => ({ field, description })),
});

const tags = (n: number) => Array.from({ length: n }, (_, i) => `tag-${i}`);
const capabilities = (n: number) => Array.from({ length: n }, (_, i) => ({ capability_id: `cap.${i}` }));
/** A config whose compact JSON, `{"k":"…"}`, is exactly `bytes` long in UTF-8. */
const configOfBytes = (bytes: number, unit = "x") => ({ k: unit.repeat((bytes - 8) / Buffer.byteLength(unit)) });

const CASES: readonly ValidationCase[] = [
  ok("a title of 256 characters", { title: "t".repeat(256) }),
  bad("a title of 257 characters", { title: "t".repeat(257) }, ["title", "title must be at most 256 characters, got 257"]),
  ok("a title of 256 emoji (512 UTF-16 units)", { title: EMOJI.repeat(256) }),
  bad("a title of 257 emoji", { title: EMOJI.repeat(257) }, ["title", "title must be at most 256 characters, got 257"]),

  ok("32 tags", { tags: tags(32) }),
  bad("33 tags", { tags: tags(33) }, ["tags", "tags must have at most 32 entries, got 33"]),
  ok("a tag of 64 characters", { tags: ["g".repeat(64)] }),
  ok("a tag of 64 emoji", { tags: [EMOJI.repeat(64)] }),
  bad("a tag of 65 characters", { tags: ["ok", "g".repeat(65)] }, ["tags[1]", "tags[1] must be at most 64 characters, got 65"]),
  bad("an empty tag", { tags: ["ok", ""] }, ["tags[1]", "tags[1] must not be empty"]),
  bad(
    "tags with C0, DEL and C1 control characters",
    { tags: ["line\nbreak", "del\u007f", "nel\u0085", "nul\u0000"] },
    ["tags[0]", "tags[0] must not contain control characters"],
    ["tags[1]", "tags[1] must not contain control characters"],
    ["tags[2]", "tags[2] must not contain control characters"],
    ["tags[3]", "tags[3] must not contain control characters"],
  ),
  bad("a duplicate tag", { tags: ["a", "b", "a"] }, ["tags[2]", "tags[2] duplicates tags[0]"]),

  ok("64 capabilities", { capabilities: capabilities(64) }),
  bad("65 capabilities", { capabilities: capabilities(65) }, ["capabilities", "capabilities must have at most 64 entries, got 65"]),
  ok("a capability id using every allowed kind of character", { capabilities: [{ capability_id: "Az09_.:-" }] }),
  bad(
    "capability ids with a space, a slash and a non-ASCII letter",
    { capabilities: [{ capability_id: "web search" }, { capability_id: "web/search" }, { capability_id: "café" }] },
    ["capabilities[0].capability_id", CAPABILITY_CHARSET(0)],
    ["capabilities[1].capability_id", CAPABILITY_CHARSET(1)],
    ["capabilities[2].capability_id", CAPABILITY_CHARSET(2)],
  ),
  ok("a capability id of 128 characters", { capabilities: [{ capability_id: "c".repeat(128) }] }),
  bad("a capability id of 129 characters", { capabilities: [{ capability_id: "c".repeat(129) }] }, [
    "capabilities[0].capability_id",
    "capabilities[0].capability_id must be at most 128 characters, got 129",
  ]),
  bad(
    "a capability id of 100 emoji is refused for its characters, not counted as 200",
    { capabilities: [{ capability_id: EMOJI.repeat(100) }] },
    ["capabilities[0].capability_id", CAPABILITY_CHARSET(0)],
  ),
  bad("a duplicate capability id", { capabilities: [{ capability_id: "a" }, { capability_id: "b" }, { capability_id: "a" }] }, [
    "capabilities[2].capability_id",
    "capabilities[2].capability_id duplicates capabilities[0].capability_id",
  ]),
  bad("an empty capability id", { capabilities: [{ capability_id: "", config: { a: 1 } }] }, [
    "capabilities[0].capability_id",
    "capabilities[0].capability_id is required",
  ]),
  ok("a config of exactly 64 KiB as compact JSON", { capabilities: [{ capability_id: "c", config: configOfBytes(65_536) }] }),
  bad("a config of 64 KiB + 1 byte", { capabilities: [{ capability_id: "c", config: configOfBytes(65_537) }] }, [
    "capabilities[0].config",
    "capabilities[0].config must be at most 64 KiB as compact JSON, got 65537 bytes",
  ]),
  ok("a config of exactly 64 KiB counted in UTF-8 bytes", {
    capabilities: [{ capability_id: "c", config: configOfBytes(65_536, "é") }],
  }),
  bad("a config of 64 KiB + 2 bytes counted in UTF-8 bytes", {
    capabilities: [{ capability_id: "c", config: configOfBytes(65_538, "é") }],
  }, ["capabilities[0].config", "capabilities[0].config must be at most 64 KiB as compact JSON, got 65538 bytes"]),

  ok("a well-formed model id", { model_id: MODEL_ID }),
  bad("a model id that is too short", { model_id: "model_0123" }, ["model_id", MODEL_FORM]),
  bad("a model id in upper-case hex", { model_id: MODEL_ID.toUpperCase().replace("MODEL_", "model_") }, ["model_id", MODEL_FORM]),
  bad("an agent id given as a model id", { model_id: AGENT_ID }, ["model_id", MODEL_FORM]),

  {
    name: "a missing agent id",
    request: { title: "no agent" },
    violations: [{ field: "agent_id", description: "Invalid agent ID: agent_id is required" }],
  },
  bad("an empty agent id", { agent_id: "" }, ["agent_id", "Invalid agent ID: agent_id is required"]),
  bad("a malformed agent id", { agent_id: "agent_xyz" }, ["agent_id", AGENT_FORM]),
  bad("an agent id with a trailing newline", { agent_id: `${AGENT_ID}\n` }, ["agent_id", AGENT_FORM]),

  bad(
    "several violations at once, listed in field order",
    { agent_id: "", model_id: "m", title: "t".repeat(300), tags: ["", "x", "x"], capabilities: [{ capability_id: "a b" }] },
    ["agent_id", "Invalid agent ID: agent_id is required"],
    ["model_id", MODEL_FORM],
    ["title", "title must be at most 256 characters, got 300"],
    ["tags[0]", "tags[0] must not be empty"],
    ["tags[2]", "tags[2] duplicates tags[1]"],
    ["capabilities[0].capability_id", CAPABILITY_CHARSET(0)],
  ),
];

/** What an accepted request must come back as: every field it set, the rest empty. */
function expectEcho(session: JsonObject, request: JsonObject): void {
  expect(session.id).toMatch(SESSION_ID_PATTERN);
  expect({
    agent_id: session.agent_id,
    model_id: session.model_id,
    title: session.title,
    tags: session.tags,
    capabilities: session.capabilities,
  }).toStrictEqual({
    agent_id: request.agent_id,
    model_id: request.model_id ?? "",
    title: request.title ?? "",
    tags: request.tags ?? [],
    capabilities: request.capabilities ?? [],
  });
}

const messageOf = (violations: readonly Violation[]) => violations.map((v) => v.description).join("; ");

describe("CreateSession validation", () => {
  let server: TestServer;
  let connect: Client<typeof SessionService>;
  beforeAll(async () => {
    server = await startTestServer();
    connect = createClient(SessionService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }));
  });
  afterAll(async () => {
    await server?.close();
  });

  describe("over REST", () => {
    it.each(CASES)("$name", async ({ request, violations }) => {
      const response = await requestJson(`${server.url}/v1/sessions`, { body: request });
      if (violations.length === 0) {
        expect(response.status).toBe(201);
        expectEcho(response.body, request);
        return;
      }
      expect(response.status).toBe(400);
      expect(response.body).toStrictEqual({
        code: 3,
        message: messageOf(violations),
        details: [{ "@type": "type.googleapis.com/google.rpc.BadRequest", field_violations: violations }],
      });
    });

    it("refuses an unknown JSON field with 400", async () => {
      const response = await requestJson(`${server.url}/v1/sessions`, { body: { agent_id: AGENT_ID, colour: "blue" } });
      expect(response.status).toBe(400);
      expect(response.body).toStrictEqual({
        code: 3,
        message: 'invalid request body: cannot decode message sessions.v1.CreateSessionRequest from JSON: key "colour" is unknown',
        details: [],
      });
    });

    it("accepts lowerCamelCase field names", async () => {
      const response = await requestJson(`${server.url}/v1/sessions`, {
        body: { agentId: AGENT_ID, modelId: MODEL_ID, capabilities: [{ capabilityId: "c", config: { a: [1] } }], tags: ["x"] },
      });
      expect(response.status).toBe(201);
      expectEcho(response.body, {
        agent_id: AGENT_ID,
        model_id: MODEL_ID,
        capabilities: [{ capability_id: "c", config: { a: [1] } }],
        tags: ["x"],
      });
    });
  });

  describe("over Connect JSON", () => {
    it.each(CASES)("$name", async ({ request, violations }) => {
      const message = fromJson(CreateSessionRequestSchema, request);
      let session;
      try {
        session = await connect.createSession(message);
      } catch (error) {
        if (!(error instanceof ConnectError) || violations.length === 0) throw error;
        expect(error.code).toBe(Code.InvalidArgument);
        expect(error.rawMessage).toBe(messageOf(violations));
        const found = error.findDetails(BadRequestSchema).map((detail) =>
          detail.fieldViolations.map(({ field, description }) => ({ field, description })),
        );
        expect(found).toStrictEqual([violations]);
        return;
      }
      expect(violations).toStrictEqual([]);
      expectEcho(toJson(SessionSchema, session, { useProtoFieldName: true, alwaysEmitImplicit: true }) as JsonObject, request);
    });

    it("accepts lowerCamelCase and proto field names in one body", async () => {
      const response = await requestJson(`${server.url}/sessions.v1.SessionService/CreateSession`, {
        body: { agentId: AGENT_ID, model_id: MODEL_ID, capabilities: [{ capabilityId: "c" }] },
      });
      expect(response.status).toBe(200);
      expect(response.body).toMatchObject({ agentId: AGENT_ID, modelId: MODEL_ID, capabilities: [{ capabilityId: "c" }] });
    });
  });

  describe("over gRPC (binary, where a Struct can hold what JSON cannot)", () => {
    it("refuses NaN and Infinity in a config, which storing as JSON would turn into null", async () => {
      const grpc = createClient(SessionService, createGrpcTransport({ baseUrl: server.url }));
      const error = await grpc
        .createSession({
          agentId: AGENT_ID,
          capabilities: [
            { capabilityId: "a", config: { fine: 1 } },
            { capabilityId: "b", config: { nested: { n: Number.NaN } } },
            { capabilityId: "c", config: { list: [Number.NEGATIVE_INFINITY] } },
          ],
        })
        .then(
          (session) => session,
          (e: unknown) => e,
        );
      expect(error).toBeInstanceOf(ConnectError);
      const connectError = error as ConnectError;
      expect(connectError.code).toBe(Code.InvalidArgument);
      const violations = [
        { field: "capabilities[1].config", description: "capabilities[1].config must not contain NaN or Infinity" },
        { field: "capabilities[2].config", description: "capabilities[2].config must not contain NaN or Infinity" },
      ];
      expect(connectError.rawMessage).toBe(messageOf(violations));
      expect(
        connectError.findDetails(BadRequestSchema).map((d) => d.fieldViolations.map(({ field, description }) => ({ field, description }))),
      ).toStrictEqual([violations]);
    });
  });
});
