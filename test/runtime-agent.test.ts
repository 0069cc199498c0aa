import { toJson } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RuntimeAgentSchema, SessionService } from "../gen/sessions/v1/session_service_pb.js";
import { MODEL_ID, requestJson, startTestServer, type TestServer } from "./helpers/server.js";
import { RPC_TRANSPORTS } from "./helpers/rpc-transports.js";

const SESSION_MODEL_ID = "model_5e5510115e5510115e5510115e551011";
const UNKNOWN_SESSION_ID = "session_ffffffffffffffffffffffffffffffff";
const GRPC = RPC_TRANSPORTS.find((t) => t.name === "gRPC binary over HTTP/2")!;

type Capability = { capability_id: string; config?: Record<string, unknown> };

/** GetRuntimeAgent over one protocol, answering REST's JSON (or the RPC error). */
interface RuntimeCaller {
  readonly name: string;
  runtime(server: TestServer, sessionId: string): Promise<{ ok: true; body: unknown } | { ok: false; code: Code; message: string; status?: number }>;
}

const REST: RuntimeCaller = {
  name: "REST",
  async runtime(server, sessionId) {
    const res = await requestJson(`${server.url}/v1/sessions/${sessionId}/runtime`);
    if (res.status === 200) return { ok: true, body: res.body };
    return { ok: false, code: res.body.code, message: res.body.message, status: res.status };
  },
};

function rpcCaller(): RuntimeCaller {
  const clients = new Map<TestServer, Client<typeof SessionService>>();
  return {
    name: GRPC.name,
    async runtime(server, sessionId) {
      let client = clients.get(server);
      if (!client) clients.set(server, (client = createClient(SessionService, GRPC.create(server.url))));
      try {
        const answer = await client.getRuntimeAgent({ id: sessionId });
        return { ok: true, body: toJson(RuntimeAgentSchema, answer, { useProtoFieldName: true, alwaysEmitImplicit: true }) };
      } catch (error) {
        if (!(error instanceof ConnectError)) throw error;
        return { ok: false, code: error.code, message: error.rawMessage };
      }
    },
  };
}

describe.each([REST, rpcCaller()])("GetRuntimeAgent over $name", (caller) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server.close();
  });

  async function agentWith(capabilities: Capability[]): Promise<string> {
    const res = await requestJson(`${server.url}/v1/agents`, { body: { name: "runtime", default_model_id: MODEL_ID, capabilities } });
    expect(res.status).toBe(201);
    return res.body.id;
  }

  async function sessionOf(agentId: string, body: { capabilities?: Capability[]; model_id?: string } = {}): Promise<string> {
    const res = await requestJson(`${server.url}/v1/sessions`, { body: { agent_id: agentId, ...body } });
    expect(res.status).toBe(201);
    return res.body.id;
  }

  /** The effective capabilities of a session running an agent with these capabilities. */
  async function merged(agent: Capability[], session: Capability[]): Promise<unknown> {
    const agentId = await agentWith(agent);
    const sessionId = await sessionOf(agentId, { capabilities: session });
    const answer = await caller.runtime(server, sessionId);
    expect(answer.ok).toBe(true);
    return (answer as { body: { capabilities: unknown } }).body.capabilities;
  }

  it("answers the session, its agent, the agent's default model and the agent's capabilities", async () => {
    const agentId = await agentWith([{ capability_id: "shell", config: { timeout_s: 30 } }, { capability_id: "web.search" }]);
    const sessionId = await sessionOf(agentId);
    expect(await caller.runtime(server, sessionId)).toEqual({
      ok: true,
      body: {
        session_id: sessionId,
        agent_id: agentId,
        model_id: MODEL_ID,
        capabilities: [{ capability_id: "shell", config: { timeout_s: 30 } }, { capability_id: "web.search" }],
      },
    });
  });

  it("answers the session's model_id over the agent's default", async () => {
    const agentId = await agentWith([]);
    const sessionId = await sessionOf(agentId, { model_id: SESSION_MODEL_ID });
    expect(await caller.runtime(server, sessionId)).toEqual({
      ok: true,
      body: { session_id: sessionId, agent_id: agentId, model_id: SESSION_MODEL_ID, capabilities: [] },
    });
  });

  it("uses the agent's default model as it is now, not as it was when the session was created", async () => {
    const agentId = await agentWith([]);
    const sessionId = await sessionOf(agentId);
    const other = "model_0000000000000000000000000000abcd";
    const patched = await requestJson(`${server.url}/v1/agents/${agentId}`, { method: "PATCH", body: { default_model_id: other } });
    expect(patched.status).toBe(200);
    expect(await caller.runtime(server, sessionId)).toMatchObject({ ok: true, body: { model_id: other } });
  });

  it("answers only the session's capabilities when the agent has none", async () => {
    expect(await merged([], [{ capability_id: "b", config: { x: 1 } }, { capability_id: "a" }])).toEqual([
      { capability_id: "b", config: { x: 1 } },
      { capability_id: "a" },
    ]);
  });

  it("lists the agent's capabilities first in the agent's order, then the session's new ones in the session's order", async () => {
    expect(
      await merged(
        [{ capability_id: "z" }, { capability_id: "m" }, { capability_id: "a" }],
        [{ capability_id: "y" }, { capability_id: "a", config: { s: 1 } }, { capability_id: "b" }],
      ),
    ).toEqual([
      { capability_id: "z" },
      { capability_id: "m" },
      { capability_id: "a", config: { s: 1 } },
      { capability_id: "y" },
      { capability_id: "b" },
    ]);
  });

  it("merges a capability both name at the agent's position: the session's top-level keys win, the agent's others stay", async () => {
    expect(
      await merged(
        [{ capability_id: "first" }, { capability_id: "shell", config: { timeout_s: 30, shell: "bash", env: { A: "1" } } }],
        [{ capability_id: "shell", config: { timeout_s: 5, cwd: "/tmp" } }],
      ),
    ).toEqual([
      { capability_id: "first" },
      { capability_id: "shell", config: { timeout_s: 5, shell: "bash", env: { A: "1" }, cwd: "/tmp" } },
    ]);
  });

  it("replaces nested objects and lists whole rather than merging into them", async () => {
    expect(
      await merged(
        [{ capability_id: "web", config: { limits: { rps: 10, burst: 20 }, domains: ["a", "b"], keep: true } }],
        [{ capability_id: "web", config: { limits: { rps: 1 }, domains: ["c"] } }],
      ),
    ).toEqual([{ capability_id: "web", config: { limits: { rps: 1 }, domains: ["c"], keep: true } }]);
  });

  it("lets the session set a key to null, overriding the agent's value", async () => {
    expect(
      await merged([{ capability_id: "web", config: { proxy: "http://p", n: 1 } }], [{ capability_id: "web", config: { proxy: null } }]),
    ).toEqual([{ capability_id: "web", config: { proxy: null, n: 1 } }]);
  });

  it("keeps the agent's config when the session names the capability without one", async () => {
    expect(await merged([{ capability_id: "shell", config: { timeout_s: 30 } }], [{ capability_id: "shell" }])).toEqual([
      { capability_id: "shell", config: { timeout_s: 30 } },
    ]);
  });

  it("takes the session's config when the agent's capability has none", async () => {
    expect(await merged([{ capability_id: "shell" }], [{ capability_id: "shell", config: { timeout_s: 5 } }])).toEqual([
      { capability_id: "shell", config: { timeout_s: 5 } },
    ]);
  });

  it("answers no config when neither side has one, and an empty one when one side's is empty", async () => {
    expect(await merged([{ capability_id: "a" }, { capability_id: "b", config: {} }], [{ capability_id: "a" }, { capability_id: "b" }])).toEqual([
      { capability_id: "a" },
      { capability_id: "b", config: {} },
    ]);
  });

  it("answers failed_precondition when the session's agent was deleted", async () => {
    const agentId = await agentWith([]);
    const sessionId = await sessionOf(agentId);
    const deleted = await requestJson(`${server.url}/v1/agents/${agentId}`, { method: "DELETE" });
    expect(deleted.status).toBe(200);
    const answer = await caller.runtime(server, sessionId);
    expect(answer).toMatchObject({
      ok: false,
      code: Code.FailedPrecondition,
      message: `session ${sessionId} runs agent ${agentId}, which no longer exists`,
    });
    if (caller === REST) expect(answer).toMatchObject({ status: 400 });
  });

  it("answers not_found for an unknown session", async () => {
    const answer = await caller.runtime(server, UNKNOWN_SESSION_ID);
    expect(answer).toMatchObject({ ok: false, code: Code.NotFound, message: `session ${UNKNOWN_SESSION_ID} not found` });
    if (caller === REST) expect(answer).toMatchObject({ status: 404 });
  });

  it("answers invalid_argument for a malformed session id", async () => {
    expect(await caller.runtime(server, "session_1")).toMatchObject({
      ok: false,
      code: Code.InvalidArgument,
      message: 'Invalid session ID: id must be "session_" followed by 32 lowercase hex digits',
    });
  });
});
