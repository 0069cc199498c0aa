import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SessionService } from "../gen/sessions/v1/session_service_pb.js";
import { BadRequestSchema } from "../gen/google/rpc/error_details_pb.js";
import type { SqliteStore } from "../src/store/sqlite.js";
import { MODEL_ID, requestJson, seedTestAgent, startTestServer, type TestServer } from "./helpers/server.js";
import { RPC_TRANSPORTS } from "./helpers/rpc-transports.js";

const OTHER_ORG_ID = "org_" + "2".repeat(32);
const OTHER_ORG_AGENT_ID = "agent_" + "2".repeat(32);
const UNKNOWN_AGENT_ID = "agent_" + "f".repeat(32);
const CONNECT = RPC_TRANSPORTS.find((t) => t.name === "Connect JSON over HTTP/1.1")!;

const doesNotExist = (agentId: string) => `Invalid agent ID: agent ${agentId} does not exist`;

describe("CreateSession checks that its agent exists in the caller's organisation", () => {
  let server: TestServer;
  let client: Client<typeof SessionService>;
  beforeAll(async () => {
    server = await startTestServer();
    await seedTestAgent(server.store, OTHER_ORG_AGENT_ID, OTHER_ORG_ID);
    client = createClient(SessionService, CONNECT.create(server.url));
  });
  afterAll(async () => {
    await server.close();
  });

  async function createAgent(): Promise<string> {
    const res = await requestJson(`${server.url}/v1/agents`, { body: { name: "checked", default_model_id: MODEL_ID } });
    expect(res.status).toBe(201);
    return res.body.id;
  }

  /** POST /v1/sessions must answer exactly this 400, and Connect the same invalid_argument. */
  async function expectRefused(agentId: string): Promise<void> {
    const message = doesNotExist(agentId);
    const res = await requestJson(`${server.url}/v1/sessions`, { body: { agent_id: agentId } });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({
      code: 3,
      message,
      details: [{ "@type": "type.googleapis.com/google.rpc.BadRequest", field_violations: [{ field: "agent_id", description: message }] }],
    });
    let error: unknown;
    try {
      await client.createSession({ agentId });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConnectError);
    const connectError = error as ConnectError;
    expect([connectError.code, connectError.rawMessage]).toEqual([Code.InvalidArgument, message]);
    expect(connectError.findDetails(BadRequestSchema)[0]?.fieldViolations.map((v) => [v.field, v.description])).toEqual([
      ["agent_id", message],
    ]);
  }

  it("creates a session for an agent created through the API", async () => {
    const agentId = await createAgent();
    const res = await requestJson(`${server.url}/v1/sessions`, { body: { agent_id: agentId } });
    expect(res.status).toBe(201);
    expect(res.body.agent_id).toBe(agentId);
    expect((await client.createSession({ agentId })).agentId).toBe(agentId);
  });

  it("refuses a well-formed agent id that no agent has", async () => {
    await expectRefused(UNKNOWN_AGENT_ID);
  });

  it("refuses an agent of another organisation, which the caller cannot see either", async () => {
    expect(await server.store.findAgent(OTHER_ORG_ID, OTHER_ORG_AGENT_ID)).toMatchObject({ orgId: OTHER_ORG_ID });
    expect((await requestJson(`${server.url}/v1/agents/${OTHER_ORG_AGENT_ID}`)).status).toBe(404);
    await expectRefused(OTHER_ORG_AGENT_ID);
  });

  it("refuses an agent deleted before the create, and stores no session for it", async () => {
    const agentId = await createAgent();
    expect((await requestJson(`${server.url}/v1/agents/${agentId}`, { method: "DELETE" })).status).toBe(200);
    await expectRefused(agentId);
    const stored = (server.store as SqliteStore).db.prepare("SELECT count(*) FROM sessions WHERE agent_id = ?").pluck().get(agentId);
    expect(stored).toBe(0);
  });

  it("keeps the sessions of an agent deleted after they were created", async () => {
    const agentId = await createAgent();
    const session = await requestJson(`${server.url}/v1/sessions`, { body: { agent_id: agentId } });
    expect((await requestJson(`${server.url}/v1/agents/${agentId}`, { method: "DELETE" })).status).toBe(200);
    const got = await requestJson(`${server.url}/v1/sessions/${session.body.id}`);
    expect(got.status).toBe(200);
    expect(got.body).toEqual(session.body);
  });
});
