import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { etagOf } from "../src/service/etag.js";
import { encodePageToken } from "../src/service/page-token.js";
import { DEFAULT_ORG_ID, MODEL_ID, requestJson, startTestServer, type TestServer } from "./helpers/server.js";

const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const AGENT_ID_PATTERN = /^agent_[0-9a-f]{32}$/;
const OTHER_MODEL_ID = "model_00000000000000000000000000000042";
const UNKNOWN_AGENT_ID = "agent_ffffffffffffffffffffffffffffffff";
const BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest";

/** The REST error body of an invalid_argument listing these violations. */
function badRequest(...violations: Array<[field: string, description: string]>) {
  return {
    code: 3,
    message: violations.map(([, description]) => description).join("; "),
    details: [{ "@type": BAD_REQUEST, field_violations: violations.map(([field, description]) => ({ field, description })) }],
  };
}

async function createAgent(server: TestServer, body: Record<string, unknown> = {}) {
  const res = await requestJson(`${server.url}/v1/agents`, { body: { name: "planner", default_model_id: MODEL_ID, ...body } });
  expect(res.status).toBe(201);
  return res.body;
}

describe("REST: POST /v1/agents and GET /v1/agents/{id}", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server.close();
  });

  it("creates an agent: 201, Location, every field in snake_case and etag of version 1", async () => {
    const before = Date.now();
    const res = await requestJson(`${server.url}/v1/agents`, {
      body: {
        name: "Code reviewer ✓",
        default_model_id: MODEL_ID,
        capabilities: [{ capability_id: "web.search", config: { max_results: 5, domains: ["a.example"] } }, { capability_id: "shell" }],
      },
    });
    expect(res.status).toBe(201);
    expect(res.headers.get("content-type")).toBe("application/json");
    const { id, created_at, updated_at, ...rest } = res.body;
    expect(id).toMatch(AGENT_ID_PATTERN);
    expect(res.headers.get("location")).toBe(`/v1/agents/${id}`);
    expect(created_at).toMatch(ISO_MS);
    expect(updated_at).toBe(created_at);
    expect(Date.parse(created_at)).toBeGreaterThanOrEqual(before);
    expect(rest).toEqual({
      org_id: DEFAULT_ORG_ID,
      name: "Code reviewer ✓",
      default_model_id: MODEL_ID,
      capabilities: [
        { capability_id: "web.search", config: { max_results: 5, domains: ["a.example"] } },
        { capability_id: "shell" },
      ],
      etag: etagOf("agent", 1),
    });
  });

  it("accepts lowerCamelCase names and answers a minimal agent with an empty capability list", async () => {
    const res = await requestJson(`${server.url}/v1/agents`, { body: { name: "a", defaultModelId: MODEL_ID } });
    expect(res.status).toBe(201);
    expect(Object.keys(res.body).sort()).toEqual(
      ["capabilities", "created_at", "default_model_id", "etag", "id", "name", "org_id", "updated_at"],
    );
    expect(res.body.capabilities).toEqual([]);
  });

  it("gets what it created, the same JSON", async () => {
    const created = await createAgent(server, { name: "é 😀", capabilities: [{ capability_id: "x", config: {} }] });
    const got = await requestJson(`${server.url}/v1/agents/${created.id}`);
    expect(got.status).toBe(200);
    expect(got.body).toEqual(created);
  });

  it("hands out strictly increasing ids", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) ids.push((await createAgent(server)).id);
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids).size).toBe(10);
  });

  it("answers 404 with code 5 for a well-formed unknown id", async () => {
    const res = await requestJson(`${server.url}/v1/agents/${UNKNOWN_AGENT_ID}`);
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ code: 5, message: `agent ${UNKNOWN_AGENT_ID} not found`, details: [] });
  });

  it("answers 400 with a BadRequest detail for a malformed id", async () => {
    const res = await requestJson(`${server.url}/v1/agents/agent_XYZ`);
    expect(res.status).toBe(400);
    expect(res.body).toEqual(badRequest(["id", 'Invalid agent ID: id must be "agent_" followed by 32 lowercase hex digits']));
  });

  it("names every missing required field at once", async () => {
    const res = await requestJson(`${server.url}/v1/agents`, { body: {} });
    expect(res.status).toBe(400);
    expect(res.body).toEqual(
      badRequest(["name", "name is required"], ["default_model_id", "Invalid model ID: default_model_id is required"]),
    );
  });

  it("refuses a malformed default_model_id", async () => {
    const res = await requestJson(`${server.url}/v1/agents`, { body: { name: "a", default_model_id: "model_ABC" } });
    expect(res.status).toBe(400);
    expect(res.body).toEqual(
      badRequest(["default_model_id", 'Invalid model ID: default_model_id must be "model_" followed by 32 lowercase hex digits']),
    );
  });

  it("counts the name in code points: 128 emoji are accepted, 129 are not", async () => {
    const ok = await requestJson(`${server.url}/v1/agents`, { body: { name: "😀".repeat(128), default_model_id: MODEL_ID } });
    expect(ok.status).toBe(201);
    expect(ok.body.name).toBe("😀".repeat(128));
    const res = await requestJson(`${server.url}/v1/agents`, { body: { name: "😀".repeat(129), default_model_id: MODEL_ID } });
    expect(res.status).toBe(400);
    expect(res.body).toEqual(badRequest(["name", "name must be at most 128 characters, got 129"]));
  });

  it("refuses control characters in the name", async () => {
    const res = await requestJson(`${server.url}/v1/agents`, { body: { name: "a\tb", default_model_id: MODEL_ID } });
    expect(res.status).toBe(400);
    expect(res.body).toEqual(badRequest(["name", "name must not contain control characters"]));
  });

  it("refuses an unpaired surrogate in the name already while decoding JSON", async () => {
    const res = await requestJson(`${server.url}/v1/agents`, { body: '{"name": "a\\ud800", "default_model_id": "' + MODEL_ID + '"}' });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({
      code: 3,
      message: "invalid request body: cannot decode field sessions.v1.CreateAgentRequest.name from JSON: expected string: invalid UTF8",
      details: [],
    });
  });

  it("checks capabilities with the rules sessions use, naming each item", async () => {
    const res = await requestJson(`${server.url}/v1/agents`, {
      body: {
        name: "a",
        default_model_id: MODEL_ID,
        capabilities: [{ capability_id: "shell" }, { capability_id: "shell" }, { capability_id: "a b" }, { capability_id: "" }],
      },
    });
    expect(res.status).toBe(400);
    expect(res.body).toEqual(
      badRequest(
        ["capabilities[1].capability_id", "capabilities[1].capability_id duplicates capabilities[0].capability_id"],
        ["capabilities[2].capability_id", 'capabilities[2].capability_id must contain only letters, digits, "_", ".", ":" and "-"'],
        ["capabilities[3].capability_id", "capabilities[3].capability_id is required"],
      ),
    );
  });

  it("refuses more than 64 capabilities", async () => {
    const capabilities = Array.from({ length: 65 }, (_, i) => ({ capability_id: `c${i}` }));
    const res = await requestJson(`${server.url}/v1/agents`, { body: { name: "a", default_model_id: MODEL_ID, capabilities } });
    expect(res.status).toBe(400);
    expect(res.body).toEqual(badRequest(["capabilities", "capabilities must have at most 64 entries, got 65"]));
  });

  it("answers 400 for output-only fields sent on create", async () => {
    const res = await requestJson(`${server.url}/v1/agents`, { body: { name: "a", default_model_id: MODEL_ID, org_id: DEFAULT_ORG_ID } });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({
      code: 3,
      message: 'invalid request body: cannot decode message sessions.v1.CreateAgentRequest from JSON: key "org_id" is unknown',
      details: [],
    });
  });
});

describe("REST: GET /v1/agents", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ seedAgent: false });
  });
  afterAll(async () => {
    await server.close();
  });

  async function listAll(pageSize: number): Promise<{ ids: string[]; pages: number[] }> {
    const ids: string[] = [];
    const pages: number[] = [];
    let token = "";
    do {
      const query = `page_size=${pageSize}` + (token ? `&page_token=${encodeURIComponent(token)}` : "");
      const res = await requestJson(`${server.url}/v1/agents?${query}`);
      expect(res.status).toBe(200);
      pages.push(res.body.agents.length);
      ids.push(...res.body.agents.map((a: { id: string }) => a.id));
      token = res.body.next_page_token;
    } while (token !== "");
    return { ids, pages };
  }

  it("answers an empty list without a token when there are no agents", async () => {
    const res = await requestJson(`${server.url}/v1/agents`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ agents: [], next_page_token: "" });
  });

  it("pages newest first through every agent without repeats or gaps, the last page without a token", async () => {
    const created: string[] = [];
    for (let i = 0; i < 7; i++) created.push((await createAgent(server, { name: `agent ${i}` })).id);
    const { ids, pages } = await listAll(3);
    expect(pages).toEqual([3, 3, 1]);
    expect(ids).toEqual([...created].reverse());
  });

  it("lists whole agents, the same JSON as GET", async () => {
    const res = await requestJson(`${server.url}/v1/agents?page_size=1`);
    const got = await requestJson(`${server.url}/v1/agents/${res.body.agents[0].id}`);
    expect(res.body.agents).toEqual([got.body]);
  });

  it("neither repeats nor loses agents when some are created between pages", async () => {
    const before = (await listAll(1000)).ids;
    const first = await requestJson(`${server.url}/v1/agents?page_size=2`);
    const newer = await createAgent(server, { name: "newer" });
    let token = first.body.next_page_token;
    const rest: string[] = [];
    while (token !== "") {
      const res = await requestJson(`${server.url}/v1/agents?page_size=2&page_token=${encodeURIComponent(token)}`);
      rest.push(...res.body.agents.map((a: { id: string }) => a.id));
      token = res.body.next_page_token;
    }
    expect([...first.body.agents.map((a: { id: string }) => a.id), ...rest]).toEqual(before);
    expect(rest).not.toContain(newer.id);
  });

  it("lets the page size change between pages", async () => {
    const all = (await listAll(1000)).ids;
    const first = await requestJson(`${server.url}/v1/agents?page_size=2`);
    const second = await requestJson(`${server.url}/v1/agents?page_size=4&page_token=${first.body.next_page_token}`);
    expect(second.body.agents.map((a: { id: string }) => a.id)).toEqual(all.slice(2, 6));
  });

  it("answers 400 for a negative page_size", async () => {
    const res = await requestJson(`${server.url}/v1/agents?page_size=-1`);
    expect(res.status).toBe(400);
    expect(res.body).toEqual(badRequest(["page_size", "page_size must be at least 0, got -1"]));
  });

  it.each([
    ["not base64url", "not a token!"],
    ["base64url of something else", Buffer.from("hello").toString("base64url")],
    ["a cursor without its filter digest", Buffer.from(JSON.stringify({ c: 1, i: UNKNOWN_AGENT_ID })).toString("base64url")],
    ["a cursor with a negative time", Buffer.from(JSON.stringify({ c: -1, i: UNKNOWN_AGENT_ID, f: "x" })).toString("base64url")],
  ])("answers 400 for a page_token that is %s", async (_what, token) => {
    const res = await requestJson(`${server.url}/v1/agents?page_token=${encodeURIComponent(token)}`);
    expect(res.status).toBe(400);
    expect(res.body).toEqual(badRequest(["page_token", "page_token is malformed"]));
  });

  it("answers 400 for a page_token of another listing", async () => {
    const token = encodePageToken({ createdAt: Date.now(), id: UNKNOWN_AGENT_ID }, "sessions");
    const res = await requestJson(`${server.url}/v1/agents?page_token=${token}`);
    expect(res.status).toBe(400);
    expect(res.body).toEqual(badRequest(["page_token", "page_token was issued for different filters"]));
  });
});

describe("REST: GET /v1/agents page sizes", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ seedAgent: false });
    // Straight into the store: 1,001 agents through HTTP would only slow the test down.
    const base = Date.now() - 10_000;
    for (let i = 0; i < 1001; i++) {
      await server.store.insertAgent({
        id: `agent_${i.toString(16).padStart(32, "0")}`,
        orgId: DEFAULT_ORG_ID,
        name: `agent ${i}`,
        defaultModelId: MODEL_ID,
        capabilities: [],
        createdAt: base + i,
        updatedAt: base + i,
        version: 1,
      });
    }
  });
  afterAll(async () => {
    await server.close();
  });

  it("answers 50 agents when no page_size is given", async () => {
    const res = await requestJson(`${server.url}/v1/agents`);
    expect(res.body.agents).toHaveLength(50);
    expect(res.body.agents[0].id).toBe(`agent_${(1000).toString(16).padStart(32, "0")}`);
    expect(res.body.next_page_token).not.toBe("");
  });

  it("clamps a page_size over 1000 to 1000, and the next page holds the rest", async () => {
    const res = await requestJson(`${server.url}/v1/agents?page_size=5000`);
    expect(res.status).toBe(200);
    expect(res.body.agents).toHaveLength(1000);
    const next = await requestJson(`${server.url}/v1/agents?page_size=5000&page_token=${res.body.next_page_token}`);
    expect(next.body).toEqual({
      agents: [expect.objectContaining({ id: `agent_${"0".repeat(32)}` })],
      next_page_token: "",
    });
  });

  it("answers no token when the page ends exactly at the last agent", async () => {
    const first = await requestJson(`${server.url}/v1/agents?page_size=1000`);
    const last = await requestJson(`${server.url}/v1/agents?page_size=1&page_token=${first.body.next_page_token}`);
    expect(last.body.agents).toHaveLength(1);
    expect(last.body.next_page_token).toBe("");
  });
});

describe("REST: PATCH /v1/agents/{agent.id}", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server.close();
  });

  const patch = (id: string, body: unknown, query = "") =>
    requestJson(`${server.url}/v1/agents/${id}${query}`, { method: "PATCH", body });

  const capabilities = [{ capability_id: "shell", config: { timeout_s: 30 } }];

  it("updates only the fields named by update_mask as a query parameter, in snake_case", async () => {
    const agent = await createAgent(server, { capabilities });
    const res = await patch(
      agent.id,
      { name: "renamed", default_model_id: OTHER_MODEL_ID, capabilities: [] },
      "?update_mask=name,default_model_id",
    );
    expect(res.status).toBe(200);
    const { updated_at, ...rest } = res.body;
    const { updated_at: createdUpdatedAt, ...unchanged } = agent;
    expect(rest).toEqual({ ...unchanged, name: "renamed", default_model_id: OTHER_MODEL_ID, etag: etagOf("agent", 2) });
    expect(Date.parse(updated_at)).toBeGreaterThanOrEqual(Date.parse(createdUpdatedAt));
    expect((await requestJson(`${server.url}/v1/agents/${agent.id}`)).body).toEqual(res.body);
  });

  it("accepts update_mask in the query in lowerCamelCase too, with lowerCamelCase body keys", async () => {
    const agent = await createAgent(server, { capabilities });
    const res = await patch(agent.id, { name: "renamed", default_model_id: OTHER_MODEL_ID }, "?update_mask=name");
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ name: "renamed", default_model_id: MODEL_ID, capabilities, etag: etagOf("agent", 2) });
    const camel = await patch(agent.id, { defaultModelId: OTHER_MODEL_ID, name: "x" }, "?updateMask=defaultModelId");
    expect(camel.status).toBe(200);
    expect(camel.body).toMatchObject({ name: "renamed", default_model_id: OTHER_MODEL_ID, etag: etagOf("agent", 3) });
  });

  it('answers the curl user\'s PATCH ?update_mask=name with {"name": "x"}: 200, only the name changed', async () => {
    const agent = await createAgent(server, { capabilities });
    const res = await patch(agent.id, { name: "x" }, "?update_mask=name");
    expect(res.status).toBe(200);
    const { updated_at, ...rest } = res.body;
    const { updated_at: _created, ...unchanged } = agent;
    expect(rest).toEqual({ ...unchanged, name: "x", etag: etagOf("agent", 2) });
    expect((await requestJson(`${server.url}/v1/agents/${agent.id}`)).body).toEqual(res.body);
  });

  it("with an empty mask updates the fields present in the body", async () => {
    const agent = await createAgent(server, { capabilities });
    const res = await patch(agent.id, { name: "only the name" });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ name: "only the name", default_model_id: MODEL_ID, capabilities, etag: etagOf("agent", 2) });
  });

  it("with an empty mask clears the capabilities when the body sends an empty list", async () => {
    const agent = await createAgent(server, { capabilities });
    const res = await patch(agent.id, { capabilities: [] });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ name: "planner", capabilities: [], etag: etagOf("agent", 2) });
  });

  it("replaces the whole capability list when the mask names it", async () => {
    const agent = await createAgent(server, { capabilities });
    const replacement = [{ capability_id: "web.search" }, { capability_id: "shell", config: { timeout_s: 5 } }];
    const res = await patch(agent.id, { capabilities: replacement }, "?update_mask=capabilities");
    expect(res.status).toBe(200);
    expect(res.body.capabilities).toEqual(replacement);
  });

  it("allows id and etag in the mask and changes nothing for them", async () => {
    const agent = await createAgent(server);
    const res = await patch(agent.id, { etag: agent.etag }, "?update_mask=id,etag");
    expect(res.status).toBe(200);
    expect(res.body).toEqual(agent);
  });

  it("with a body that sets nothing answers the agent unchanged", async () => {
    const agent = await createAgent(server);
    const res = await patch(agent.id, {});
    expect(res.status).toBe(200);
    expect(res.body).toEqual(agent);
  });

  it("applies an update whose etag is current, then answers 409 with code 10 for the stale one", async () => {
    const agent = await createAgent(server);
    const current = await patch(agent.id, { name: "first", etag: etagOf("agent", 1) });
    expect(current.status).toBe(200);
    expect(current.body.etag).toBe(etagOf("agent", 2));
    const stale = await patch(agent.id, { name: "second", etag: etagOf("agent", 1) });
    expect(stale.status).toBe(409);
    expect(stale.body).toEqual({
      code: 10,
      message: `agent ${agent.id} has changed since it was read: etag ${etagOf("agent", 1)} is not the current ${etagOf("agent", 2)}`,
      details: [],
    });
    expect((await requestJson(`${server.url}/v1/agents/${agent.id}`)).body.name).toBe("first");
  });

  it("lets exactly one of many parallel updates with the same etag win; the others are 409", async () => {
    const agent = await createAgent(server);
    const answers = await Promise.all(
      Array.from({ length: 10 }, (_, i) => patch(agent.id, { name: `writer ${i}`, etag: agent.etag })),
    );
    expect(answers.map((a) => a.status).sort()).toEqual([200, ...Array(9).fill(409)]);
    const winner = answers.find((a) => a.status === 200)!;
    expect(winner.body.etag).toBe(etagOf("agent", 2));
    expect((await requestJson(`${server.url}/v1/agents/${agent.id}`)).body).toEqual(winner.body);
  });

  it("answers 409 for a stale etag even when there is nothing to change", async () => {
    const agent = await createAgent(server);
    await patch(agent.id, { name: "changed" });
    const res = await patch(agent.id, { etag: etagOf("agent", 1) }, "?update_mask=etag");
    expect(res.status).toBe(409);
    expect(res.body.code).toBe(10);
  });

  it("answers 404 for an unknown agent", async () => {
    const res = await patch(UNKNOWN_AGENT_ID, { name: "x" });
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ code: 5, message: `agent ${UNKNOWN_AGENT_ID} not found`, details: [] });
  });

  it("answers 400 naming each mask path that cannot be updated", async () => {
    const agent = await createAgent(server);
    const res = await patch(agent.id, { name: "x" }, "?update_mask=name,org_id,created_at");
    expect(res.status).toBe(400);
    expect(res.body).toEqual(
      badRequest(
        ["update_mask", 'update_mask: "org_id" cannot be updated; only name, default_model_id and capabilities can'],
        ["update_mask", 'update_mask: "created_at" cannot be updated; only name, default_model_id and capabilities can'],
      ),
    );
    expect((await requestJson(`${server.url}/v1/agents/${agent.id}`)).body).toEqual(agent);
  });

  it("answers 400 when an empty mask is filled with an output-only field the body sent", async () => {
    const agent = await createAgent(server);
    const res = await patch(agent.id, { name: "x", org_id: DEFAULT_ORG_ID });
    expect(res.status).toBe(400);
    expect(res.body).toEqual(
      badRequest(["update_mask", 'update_mask: "org_id" cannot be updated; only name, default_model_id and capabilities can']),
    );
  });

  it.each([
    ["org_id", { org_id: DEFAULT_ORG_ID }],
    ["created_at", { created_at: "2026-01-01T00:00:00Z" }],
    ["updated_at", { updated_at: "2026-01-01T00:00:00Z" }],
  ])("answers 400 naming %s when the body sends it without a mask, and changes nothing", async (field, body) => {
    const agent = await createAgent(server);
    const res = await patch(agent.id, { name: "x", ...body });
    expect(res.status).toBe(400);
    expect(res.body).toEqual(
      badRequest(["update_mask", `update_mask: "${field}" cannot be updated; only name, default_model_id and capabilities can`]),
    );
    expect((await requestJson(`${server.url}/v1/agents/${agent.id}`)).body).toEqual(agent);
  });

  it("accepts the id of the path in the body, so an agent read can be sent back", async () => {
    const agent = await createAgent(server);
    const res = await patch(agent.id, { id: agent.id, name: "round trip", etag: agent.etag }, "?update_mask=name");
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: agent.id, name: "round trip", etag: etagOf("agent", 2) });
  });

  it("answers 400 naming agent.id when the body's id is not the path's, and changes nothing", async () => {
    const agent = await createAgent(server);
    const other = await createAgent(server);
    const res = await patch(agent.id, { id: other.id, name: "x" }, "?update_mask=name");
    expect(res.status).toBe(400);
    expect(res.body).toEqual({
      code: 3,
      message: `invalid request body: "agent.id" is "${other.id}" but the path says "${agent.id}": leave it out of the body or send the same value`,
      details: [],
    });
    expect((await requestJson(`${server.url}/v1/agents/${agent.id}`)).body).toEqual(agent);
    expect((await requestJson(`${server.url}/v1/agents/${other.id}`)).body).toEqual(other);
  });

  it("answers 400 for the old request-shaped body, saying the body is the Agent and the mask goes in the query", async () => {
    const agent = await createAgent(server);
    const wrapped = await patch(agent.id, { agent: { name: "x" }, update_mask: "name" });
    expect(wrapped.status).toBe(400);
    expect(wrapped.body).toEqual({
      code: 3,
      message:
        'invalid request body: unknown field "agent": the body is the sessions.v1.Agent itself, not wrapped in "agent"; update_mask goes in the query string',
      details: [],
    });
    const maskInBody = await patch(agent.id, { name: "x", update_mask: "name" });
    expect(maskInBody.status).toBe(400);
    expect(maskInBody.body).toEqual({
      code: 3,
      message: 'invalid request body: unknown field "update_mask": the body is the sessions.v1.Agent; update_mask goes in the query string',
      details: [],
    });
    expect((await requestJson(`${server.url}/v1/agents/${agent.id}`)).body).toEqual(agent);
  });

  it("answers 400 naming every invalid new value under agent.", async () => {
    const agent = await createAgent(server);
    const res = await patch(
      agent.id,
      { name: "", default_model_id: "model_1", capabilities: [{ capability_id: "a" }, { capability_id: "a" }] },
      "?update_mask=name,default_model_id,capabilities",
    );
    expect(res.status).toBe(400);
    expect(res.body).toEqual(
      badRequest(
        ["agent.name", "agent.name is required"],
        ["agent.default_model_id", 'Invalid model ID: agent.default_model_id must be "model_" followed by 32 lowercase hex digits'],
        ["agent.capabilities[1].capability_id", "agent.capabilities[1].capability_id duplicates agent.capabilities[0].capability_id"],
      ),
    );
  });

  it("answers 400 when the body clears a required field", async () => {
    const agent = await createAgent(server);
    const res = await patch(agent.id, { default_model_id: "" });
    expect(res.status).toBe(400);
    expect(res.body).toEqual(badRequest(["agent.default_model_id", "Invalid model ID: agent.default_model_id is required"]));
  });

  it("answers 400 for a malformed id in the path", async () => {
    const res = await patch("agent_1", { name: "x" });
    expect(res.status).toBe(400);
    expect(res.body).toEqual(
      badRequest(["agent.id", 'Invalid agent ID: agent.id must be "agent_" followed by 32 lowercase hex digits']),
    );
  });
});

describe("REST: DELETE /v1/agents/{id}", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server.close();
  });

  const remove = (id: string, query = "") => requestJson(`${server.url}/v1/agents/${id}${query}`, { method: "DELETE" });

  it("deletes: 200 with {}, then GET and a second DELETE are 404", async () => {
    const agent = await createAgent(server);
    const first = await remove(agent.id);
    expect(first.status).toBe(200);
    expect(first.body).toEqual({});
    const notFound = { code: 5, message: `agent ${agent.id} not found`, details: [] };
    expect(await remove(agent.id)).toMatchObject({ status: 404, body: notFound });
    expect(await requestJson(`${server.url}/v1/agents/${agent.id}`)).toMatchObject({ status: 404, body: notFound });
  });

  it("keeps the agent for a stale etag (409) and deletes it for the current one", async () => {
    const agent = await createAgent(server);
    await requestJson(`${server.url}/v1/agents/${agent.id}`, { method: "PATCH", body: { name: "v2" } });
    const stale = await remove(agent.id, `?etag=${encodeURIComponent(etagOf("agent", 1))}`);
    expect(stale.status).toBe(409);
    expect(stale.body).toEqual({
      code: 10,
      message: `agent ${agent.id} has changed since it was read: etag ${etagOf("agent", 1)} is not the current ${etagOf("agent", 2)}`,
      details: [],
    });
    expect((await requestJson(`${server.url}/v1/agents/${agent.id}`)).status).toBe(200);
    const current = await remove(agent.id, `?etag=${encodeURIComponent(etagOf("agent", 2))}`);
    expect(current.status).toBe(200);
    expect((await requestJson(`${server.url}/v1/agents/${agent.id}`)).status).toBe(404);
  });

  it("answers 400 for a malformed id", async () => {
    const res = await remove("agent_");
    expect(res.status).toBe(400);
    expect(res.body).toEqual(badRequest(["id", 'Invalid agent ID: id must be "agent_" followed by 32 lowercase hex digits']));
  });

  it("removes the agent from listings", async () => {
    const agent = await createAgent(server);
    const listedIds = async () =>
      (await requestJson(`${server.url}/v1/agents?page_size=1000`)).body.agents.map((a: { id: string }) => a.id);
    expect(await listedIds()).toContain(agent.id);
    await remove(agent.id);
    expect(await listedIds()).not.toContain(agent.id);
  });
});
