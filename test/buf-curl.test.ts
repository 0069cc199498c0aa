import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BadRequestSchema } from "../gen/google/rpc/error_details_pb.js";
import { buf, type BufResult } from "./helpers/buf.js";
import { AGENT_ID, DEFAULT_ORG_ID, MODEL_ID, SESSION_ID_PATTERN, startTestServer, type TestServer } from "./helpers/server.js";

// `--schema .` compiles buf.yaml's modules on every call: 0.5-0.9 s a call here, against
// 0.3 s with an image built once.
let workDir: string;
let image: string;
beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), "buf-curl-"));
  image = join(workDir, "image.binpb");
  const built = await buf(["build", "--output", image]);
  expect(built.stderr).toBe("");
  expect(built.exitCode).toBe(0);
});
afterAll(async () => {
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

function bufCurl(protocolFlags: readonly string[], url: string, body: unknown): Promise<BufResult> {
  return buf(["curl", "--schema", image, ...protocolFlags, "--data", JSON.stringify(body), url]);
}

/** buf curl exits with the gRPC code shifted left by three bits when an RPC fails. */
const exitCodeOf = (grpcCode: number) => grpcCode << 3;

const PROTOCOLS = [
  { name: "gRPC over h2c", flags: ["--protocol", "grpc", "--http2-prior-knowledge"] },
  { name: "gRPC-Web", flags: ["--protocol", "grpcweb"] },
  { name: "Connect", flags: ["--protocol", "connect"] },
] as const;

describe.each(PROTOCOLS)("buf curl, $name", ({ name, flags }) => {
  let server: TestServer;
  let method: (name: string) => string;
  beforeAll(async () => {
    server = await startTestServer();
    method = (rpc) => `${server.url}/sessions.v1.SessionService/${rpc}`;
  });
  afterAll(async () => {
    await server?.close();
  });

  it("creates a session and gets it back", async () => {
    const created = await bufCurl(flags, method("CreateSession"), {
      agent_id: AGENT_ID,
      model_id: MODEL_ID,
      title: "from buf curl",
      tags: ["cli"],
      capabilities: [{ capability_id: "web.search", config: { depth: 2, region: "eu" } }],
    });
    expect(created.stderr).toBe("");
    expect(created.exitCode).toBe(0);
    const session = JSON.parse(created.stdout);
    // buf curl prints proto3 JSON with lowerCamelCase names and without default values.
    expect(session).toStrictEqual({
      id: expect.stringMatching(SESSION_ID_PATTERN),
      orgId: DEFAULT_ORG_ID,
      agentId: AGENT_ID,
      modelId: MODEL_ID,
      capabilities: [{ capabilityId: "web.search", config: { depth: 2, region: "eu" } }],
      title: "from buf curl",
      tags: ["cli"],
      status: "SESSION_STATUS_PENDING",
      usage: {},
      createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$/),
      updatedAt: session.createdAt,
      etag: "session-v1",
    });

    const got = await bufCurl(flags, method("GetSession"), { id: session.id });
    expect(got.stderr).toBe("");
    expect(got.exitCode).toBe(0);
    expect(JSON.parse(got.stdout)).toStrictEqual(session);
  });

  it("exits with invalid_argument and prints the error with its BadRequest for a malformed agent id", async () => {
    const result = await bufCurl(flags, method("CreateSession"), { agent_id: "agent_" });
    expect(result.exitCode).toBe(exitCodeOf(3));
    expect(result.stdout).toBe("");
    const description = 'Invalid agent ID: agent_id must be "agent_" followed by 32 lowercase hex digits';
    const badRequest = create(BadRequestSchema, { fieldViolations: [{ field: "agent_id", description }] });
    const detail = {
      type: "google.rpc.BadRequest",
      value: Buffer.from(toBinary(BadRequestSchema, badRequest)).toString("base64").replace(/=+$/, ""),
      // Only the Connect protocol carries Connect's JSON "debug" form of a detail.
      ...(name === "Connect" ? { debug: { fieldViolations: [{ field: "agent_id", description }] } } : {}),
    };
    expect(JSON.parse(result.stderr)).toStrictEqual({ code: "invalid_argument", message: description, details: [detail] });
  });

  it("exits with not_found for a well-formed id that does not exist", async () => {
    const id = "session_0123456789abcdef0123456789abcdef";
    const result = await bufCurl(flags, method("GetSession"), { id });
    expect(result.exitCode).toBe(exitCodeOf(5));
    expect(result.stdout).toBe("");
    expect(JSON.parse(result.stderr)).toStrictEqual({ code: "not_found", message: `session ${id} not found` });
  });
});
