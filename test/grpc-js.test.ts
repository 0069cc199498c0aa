import * as grpc from "@grpc/grpc-js";
import { createRegistry, fromBinary, toJson } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StatusSchema } from "../gen/google/rpc/status_pb.js";
import { BadRequestSchema } from "../gen/google/rpc/error_details_pb.js";
import { GrpcJsSessionService } from "./helpers/grpc-js.js";
import { AGENT_ID, DEFAULT_ORG_ID, MODEL_ID, SESSION_ID_PATTERN, startTestServer, type TestServer } from "./helpers/server.js";

type Unary = (request: object, callback: (error: grpc.ServiceError | null, response: any) => void) => grpc.ClientUnaryCall;

/** The response, or the ServiceError whose metadata holds the trailers. */
function call(client: grpc.Client, method: "CreateSession" | "GetSession", request: object): Promise<any> {
  const fn = (client as unknown as Record<string, Unary>)[method]!.bind(client);
  return new Promise((resolve, reject) => {
    fn(request, (error, response) => (error ? reject(error) : resolve(response)));
  });
}

function callError(client: grpc.Client, method: "CreateSession" | "GetSession", request: object): Promise<grpc.ServiceError> {
  return call(client, method, request).then(
    (response) => {
      throw new Error(`expected ${method} to fail, got ${JSON.stringify(response)}`);
    },
    (error: grpc.ServiceError) => error,
  );
}

/** google.rpc.Status from the grpc-status-details-bin trailer, as proto3 JSON. */
function statusDetails(error: grpc.ServiceError): unknown {
  const values = error.metadata.get("grpc-status-details-bin");
  expect(values).toHaveLength(1);
  const status = fromBinary(StatusSchema, values[0] as Buffer);
  return toJson(StatusSchema, status, { registry: createRegistry(BadRequestSchema) });
}

const AGENT_ID_FORM = 'Invalid agent ID: agent_id must be "agent_" followed by 32 lowercase hex digits';
const SESSION_ID_FORM = 'Invalid session ID: id must be "session_" followed by 32 lowercase hex digits';

describe("gRPC with a grpc-js client loaded from the .proto", () => {
  let server: TestServer;
  let client: grpc.Client;
  beforeAll(async () => {
    server = await startTestServer();
    client = new GrpcJsSessionService(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
  });
  afterAll(async () => {
    client?.close();
    await server?.close();
  });

  it("creates a session with every field, Struct config included, and gets it back unchanged", async () => {
    const before = Date.now();
    const created = await call(client, "CreateSession", {
      agent_id: AGENT_ID,
      model_id: MODEL_ID,
      title: "Fix the flaky test",
      tags: ["ci", "urgent"],
      capabilities: [
        {
          capability_id: "web.search:v2",
          config: {
            fields: {
              max_results: { numberValue: 5 },
              region: { stringValue: "eu" },
              safe: { boolValue: true },
              proxy: { nullValue: "NULL_VALUE" },
              domains: { listValue: { values: [{ stringValue: "example.com" }] } },
              limits: { structValue: { fields: { depth: { numberValue: 2.5 } } } },
            },
          },
        },
        { capability_id: "code_exec" },
      ],
    });
    const after = Date.now();

    expect(created).toStrictEqual({
      id: expect.stringMatching(SESSION_ID_PATTERN),
      org_id: DEFAULT_ORG_ID,
      agent_id: AGENT_ID,
      model_id: MODEL_ID,
      title: "Fix the flaky test",
      tags: ["ci", "urgent"],
      capabilities: [
        {
          capability_id: "web.search:v2",
          config: {
            fields: {
              max_results: { numberValue: 5, kind: "numberValue" },
              region: { stringValue: "eu", kind: "stringValue" },
              safe: { boolValue: true, kind: "boolValue" },
              proxy: { nullValue: "NULL_VALUE", kind: "nullValue" },
              domains: {
                listValue: { values: [{ stringValue: "example.com", kind: "stringValue" }] },
                kind: "listValue",
              },
              limits: {
                structValue: { fields: { depth: { numberValue: 2.5, kind: "numberValue" } } },
                kind: "structValue",
              },
            },
          },
        },
        // proto-loader's `defaults` leaves an unset message field null.
        { capability_id: "code_exec", config: null },
      ],
      status: "SESSION_STATUS_PENDING",
      usage: { input_tokens: "0", output_tokens: "0", cache_read_tokens: "0", cache_creation_tokens: "0" },
      prompt_preview: "",
      response_preview: "",
      created_at: { seconds: expect.any(String), nanos: expect.any(Number) },
      updated_at: created.created_at,
      started_at: null,
      finished_at: null,
      error: "",
      etag: "session-v1",
    });
    const createdMs = Number(created.created_at.seconds) * 1000 + created.created_at.nanos / 1e6;
    expect(createdMs).toBeGreaterThanOrEqual(before);
    expect(createdMs).toBeLessThanOrEqual(after);

    const got = await call(client, "GetSession", { id: created.id });
    expect(got).toStrictEqual(created);
  });

  it("answers INVALID_ARGUMENT for a malformed agent id, with a google.rpc.BadRequest in grpc-status-details-bin", async () => {
    const error = await callError(client, "CreateSession", { agent_id: "agent_123" });
    expect(error.code).toBe(grpc.status.INVALID_ARGUMENT);
    // connect-node percent-encodes grpc-message with encodeURIComponent, and grpc-js
    // decodes it with decodeURI, which leaves reserved characters such as ":" encoded.
    // The exact text arrives in grpc-status-details-bin (checked below).
    expect(error.details).toBe(AGENT_ID_FORM.replace(":", "%3A"));
    expect(statusDetails(error)).toStrictEqual({
      code: 3,
      message: AGENT_ID_FORM,
      details: [
        {
          "@type": "type.googleapis.com/google.rpc.BadRequest",
          fieldViolations: [{ field: "agent_id", description: AGENT_ID_FORM }],
        },
      ],
    });
  });

  it("lists every violation of a request in one BadRequest", async () => {
    const error = await callError(client, "CreateSession", { agent_id: "", model_id: "model_x", tags: ["a", ""] });
    expect(error.code).toBe(grpc.status.INVALID_ARGUMENT);
    const violations = [
      { field: "agent_id", description: "Invalid agent ID: agent_id is required" },
      { field: "model_id", description: 'model_id must be "model_" followed by 32 lowercase hex digits, or empty' },
      { field: "tags[1]", description: "tags[1] must not be empty" },
    ];
    expect(statusDetails(error)).toStrictEqual({
      code: 3,
      message: violations.map((v) => v.description).join("; "),
      details: [{ "@type": "type.googleapis.com/google.rpc.BadRequest", fieldViolations: violations }],
    });
  });

  it("answers INVALID_ARGUMENT for a malformed session id", async () => {
    const error = await callError(client, "GetSession", { id: "session_XYZ" });
    expect(error.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(error.details).toBe(SESSION_ID_FORM.replace(":", "%3A"));
    expect(statusDetails(error)).toStrictEqual({
      code: 3,
      message: SESSION_ID_FORM,
      details: [
        {
          "@type": "type.googleapis.com/google.rpc.BadRequest",
          fieldViolations: [{ field: "id", description: SESSION_ID_FORM }],
        },
      ],
    });
  });

  it("answers NOT_FOUND for a well-formed id that does not exist", async () => {
    const id = "session_0123456789abcdef0123456789abcdef";
    const error = await callError(client, "GetSession", { id });
    expect(error.code).toBe(grpc.status.NOT_FOUND);
    expect(error.details).toBe(`session ${id} not found`);
    expect(error.metadata.get("grpc-status-details-bin")).toEqual([]);
  });

  it("answers RESOURCE_EXHAUSTED for a message over 1 MiB and keeps serving the connection", async () => {
    const error = await callError(client, "CreateSession", { agent_id: AGENT_ID, title: "x".repeat(2 * 1024 * 1024) });
    expect(error.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    // 2 MiB of title + 5 bytes of tag and length + 40 bytes of agent_id.
    expect(error.details).toBe("message size 2097197 is larger than configured readMaxBytes 1048576");

    const created = await call(client, "CreateSession", { agent_id: AGENT_ID });
    expect(created.id).toMatch(SESSION_ID_PATTERN);
  });
});
