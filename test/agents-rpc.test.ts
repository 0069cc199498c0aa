import { create } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentSchema, type Agent } from "../gen/sessions/v1/agent_pb.js";
import { AgentService } from "../gen/sessions/v1/agent_service_pb.js";
import { BadRequestSchema } from "../gen/google/rpc/error_details_pb.js";
import { etagOf } from "../src/service/etag.js";
import { DEFAULT_ORG_ID, MODEL_ID, startTestServer, type TestServer } from "./helpers/server.js";
import { RPC_TRANSPORTS } from "./helpers/rpc-transports.js";

const AGENT_ID_PATTERN = /^agent_[0-9a-f]{32}$/;
const OTHER_MODEL_ID = "model_00000000000000000000000000000042";
const UNKNOWN_AGENT_ID = "agent_ffffffffffffffffffffffffffffffff";

/** Connect JSON (HTTP/1.1) and gRPC binary (HTTP/2): the two ends of what RPC clients use. */
const TRANSPORTS = RPC_TRANSPORTS.filter((t) => ["Connect JSON over HTTP/1.1", "gRPC binary over HTTP/2"].includes(t.name));

async function rpcError(promise: Promise<unknown>): Promise<ConnectError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof ConnectError) return error;
    throw error;
  }
  throw new Error("expected the call to fail");
}

function violationsOf(error: ConnectError): Array<[string, string]> {
  return error.findDetails(BadRequestSchema).flatMap((d) => d.fieldViolations.map((v): [string, string] => [v.field, v.description]));
}

describe.each(TRANSPORTS)("AgentService over $name", (transport) => {
  let server: TestServer;
  let client: Client<typeof AgentService>;
  beforeAll(async () => {
    server = await startTestServer({ seedAgent: false });
    client = createClient(AgentService, transport.create(server.url));
  });
  afterAll(async () => {
    await server?.close();
  });

  const newAgent = (name = "planner") => client.createAgent({ name, defaultModelId: MODEL_ID });

  it("creates an agent and gets it back with exact field values", async () => {
    const before = Date.now();
    const created = await client.createAgent({
      name: "Résumé ✓ 🚀",
      defaultModelId: MODEL_ID,
      capabilities: [
        { capabilityId: "web.search:v2", config: { max_results: 5, nested: { on: true, list: ["a", null] } } },
        { capabilityId: "code_exec" },
      ],
    });
    expect(created.id).toMatch(AGENT_ID_PATTERN);
    expect(timestampMs(created.createdAt!)).toBeGreaterThanOrEqual(before);
    expect(created).toStrictEqual(
      create(AgentSchema, {
        id: created.id,
        orgId: DEFAULT_ORG_ID,
        name: "Résumé ✓ 🚀",
        defaultModelId: MODEL_ID,
        capabilities: [
          { capabilityId: "web.search:v2", config: { max_results: 5, nested: { on: true, list: ["a", null] } } },
          { capabilityId: "code_exec" },
        ],
        createdAt: created.createdAt,
        updatedAt: created.createdAt,
        etag: etagOf("agent", 1),
      }),
    );
    expect(await client.getAgent({ id: created.id })).toStrictEqual(created);
  });

  it("answers invalid_argument with a BadRequest listing every problem of a create", async () => {
    const error = await rpcError(client.createAgent({ name: "x".repeat(129), defaultModelId: "model_", capabilities: [{ capabilityId: "" }] }));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(violationsOf(error)).toEqual([
      ["name", "name must be at most 128 characters, got 129"],
      ["default_model_id", 'Invalid model ID: default_model_id must be "model_" followed by 32 lowercase hex digits'],
      ["capabilities[0].capability_id", "capabilities[0].capability_id is required"],
    ]);
    expect(error.rawMessage).toBe(violationsOf(error).map(([, d]) => d).join("; "));
  });

  it("answers not_found for an unknown agent and invalid_argument for a malformed id", async () => {
    const missing = await rpcError(client.getAgent({ id: UNKNOWN_AGENT_ID }));
    expect([missing.code, missing.rawMessage]).toEqual([Code.NotFound, `agent ${UNKNOWN_AGENT_ID} not found`]);
    const malformed = await rpcError(client.getAgent({ id: "" }));
    expect(malformed.code).toBe(Code.InvalidArgument);
    expect(violationsOf(malformed)).toEqual([["id", "Invalid agent ID: id is required"]]);
  });

  it("pages through every agent newest first, without repeats or gaps", async () => {
    const created: string[] = [];
    for (let i = 0; i < 5; i++) created.push((await newAgent(`page ${i}`)).id);
    const all: string[] = [];
    let pageToken = "";
    const sizes: number[] = [];
    do {
      const page = await client.listAgents({ pageSize: 2, pageToken });
      sizes.push(page.agents.length);
      all.push(...page.agents.map((a) => a.id));
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    const onePage = await client.listAgents({ pageSize: 1000 });
    expect(all).toEqual(onePage.agents.map((a) => a.id));
    expect(onePage.nextPageToken).toBe("");
    expect(all.slice(0, 5)).toEqual([...created].reverse());
    expect(sizes.slice(0, -1).every((n) => n === 2)).toBe(true);
  });

  it("answers invalid_argument for a negative page_size and a malformed page_token", async () => {
    const negative = await rpcError(client.listAgents({ pageSize: -5 }));
    expect(negative.code).toBe(Code.InvalidArgument);
    expect(violationsOf(negative)).toEqual([["page_size", "page_size must be at least 0, got -5"]]);
    const token = await rpcError(client.listAgents({ pageToken: "%%%" }));
    expect(token.code).toBe(Code.InvalidArgument);
    expect(violationsOf(token)).toEqual([["page_token", "page_token is malformed"]]);
  });

  it("updates the fields the mask names and nothing else", async () => {
    const agent = await client.createAgent({ name: "before", defaultModelId: MODEL_ID, capabilities: [{ capabilityId: "shell" }] });
    const updated = await client.updateAgent({
      agent: { id: agent.id, name: "after", defaultModelId: OTHER_MODEL_ID, capabilities: [] },
      updateMask: { paths: ["name", "capabilities"] },
    });
    expect(updated).toStrictEqual(
      create(AgentSchema, { ...agent, name: "after", capabilities: [], updatedAt: updated.updatedAt, etag: etagOf("agent", 2) }),
    );
    expect(timestampMs(updated.updatedAt!)).toBeGreaterThanOrEqual(timestampMs(agent.updatedAt!));
    expect(await client.getAgent({ id: agent.id })).toStrictEqual(updated);
  });

  it("with an empty mask updates every field that has a value, keeping the capabilities when none are sent", async () => {
    const agent = await client.createAgent({ name: "before", defaultModelId: MODEL_ID, capabilities: [{ capabilityId: "shell" }] });
    const updated = await client.updateAgent({ agent: { id: agent.id, defaultModelId: OTHER_MODEL_ID } });
    expect(updated).toMatchObject({ name: "before", defaultModelId: OTHER_MODEL_ID, etag: etagOf("agent", 2) });
    expect(updated.capabilities.map((c) => c.capabilityId)).toEqual(["shell"]);
  });

  it("answers invalid_argument for a mask path that cannot be updated, and for a missing agent", async () => {
    const agent = await newAgent();
    const error = await rpcError(client.updateAgent({ agent: { id: agent.id, name: "x" }, updateMask: { paths: ["org_id"] } }));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(violationsOf(error)).toEqual([
      ["update_mask", 'update_mask: "org_id" cannot be updated; only name, default_model_id and capabilities can'],
    ]);
    const missing = await rpcError(client.updateAgent({}));
    expect(missing.code).toBe(Code.InvalidArgument);
    expect(violationsOf(missing)).toEqual([["agent.id", "Invalid agent ID: agent.id is required"]]);
  });

  it("answers aborted for a stale etag and not_found for an unknown agent", async () => {
    const agent = await newAgent();
    await client.updateAgent({ agent: { id: agent.id, name: "v2", etag: agent.etag } });
    const stale = await rpcError(client.updateAgent({ agent: { id: agent.id, name: "v3", etag: agent.etag } }));
    expect(stale.code).toBe(Code.Aborted);
    expect(stale.rawMessage).toBe(
      `agent ${agent.id} has changed since it was read: etag ${etagOf("agent", 1)} is not the current ${etagOf("agent", 2)}`,
    );
    expect((await client.getAgent({ id: agent.id })).name).toBe("v2");
    const missing = await rpcError(client.updateAgent({ agent: { id: UNKNOWN_AGENT_ID, name: "x" } }));
    expect([missing.code, missing.rawMessage]).toEqual([Code.NotFound, `agent ${UNKNOWN_AGENT_ID} not found`]);
  });

  it("deletes once; a second delete is not_found; a stale etag is aborted and keeps the agent", async () => {
    const agent = await newAgent();
    await client.updateAgent({ agent: { id: agent.id, name: "v2" } });
    const stale = await rpcError(client.deleteAgent({ id: agent.id, etag: agent.etag }));
    expect(stale.code).toBe(Code.Aborted);
    await client.getAgent({ id: agent.id });
    await client.deleteAgent({ id: agent.id, etag: etagOf("agent", 2) });
    const again = await rpcError(client.deleteAgent({ id: agent.id }));
    expect([again.code, again.rawMessage]).toEqual([Code.NotFound, `agent ${agent.id} not found`]);
    const got = await rpcError(client.getAgent({ id: agent.id }));
    expect(got.code).toBe(Code.NotFound);
  });

  it("serves what REST wrote, and REST serves what RPC wrote", async () => {
    const viaRpc: Agent = await newAgent("via rpc");
    const res = await fetch(`${server.url}/v1/agents/${viaRpc.id}`);
    expect(((await res.json()) as { name: string }).name).toBe("via rpc");
    const posted = await fetch(`${server.url}/v1/agents`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "via rest", default_model_id: MODEL_ID }),
    });
    const { id } = (await posted.json()) as { id: string };
    expect((await client.getAgent({ id })).name).toBe("via rest");
  });
});
