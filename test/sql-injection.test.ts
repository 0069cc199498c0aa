import { toJson, type JsonObject } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SessionService } from "../gen/sessions/v1/session_service_pb.js";
import { AgentService } from "../gen/sessions/v1/agent_service_pb.js";
import { AgentSchema } from "../gen/sessions/v1/agent_pb.js";
import { SessionSchema, SessionStatus } from "../gen/sessions/v1/session_pb.js";
import type { SqliteStore } from "../src/store/sqlite.js";
import { AGENT_ID, MODEL_ID, requestJson, startTestServer, type TestServer } from "./helpers/server.js";

/**
 * SQL injection in every string field and every list filter, over REST and gRPC: each
 * attempt is stored and answered byte for byte, or refused by validation (400 /
 * invalid_argument) where the field's documented rules forbid its characters, and the
 * tables are whole afterwards. A tag filter matches literally: no quoting, no LIKE.
 */

const INJECTIONS = [
  "'; DROP TABLE sessions; --",
  "\" OR 1=1 --",
  "%' OR '1'='1",
  "') ; DELETE FROM sessions WHERE ('1'='1",
  "1; SELECT * FROM sqlite_master",
  "' UNION SELECT id, org_id, hash FROM api_keys --",
  "Robert'); DROP TABLE agents;--",
  "a\u0000b", // NUL inside
  "\u0000'; DROP TABLE sessions; --",
  "’ ‘ ” “ ＇ ＂ ʼ", // quotes SQLite does not treat as quotes
  "\\'; --",
  "%",
  "_",
  "[a-z]*",
  "*/ /*",
  "x:--",
  "?1 :name @name $name", // SQLite's parameter forms
  "'",
];
/** Test names show each attempt as JSON, with "$" kept from vitest's name interpolation. */
const CASES = INJECTIONS.map((text) => ({ text, shown: JSON.stringify(text).replaceAll("$", "＄") }));

const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
/** The documented rules (README "Limits") for the fields that restrict characters. */
const ACCEPTS = {
  title: () => true,
  tag: (s: string) => s !== "" && !CONTROL.test(s),
  capabilityId: (s: string) => /^[A-Za-z0-9_.:-]+$/.test(s),
  agentName: (s: string) => s !== "" && !CONTROL.test(s),
  anyText: () => true,
};

type Result<T> = { ok: true; value: T } | { ok: false; code: Code };

/** The same operations over REST and over one RPC protocol, answering snake_case JSON. */
interface Api {
  createSession(body: JsonObject): Promise<Result<JsonObject>>;
  getSession(id: string): Promise<JsonObject>;
  start(id: string): Promise<void>;
  recordUsage(id: string, prompt: string, response: string): Promise<Result<JsonObject>>;
  fail(id: string, error: string): Promise<Result<JsonObject>>;
  createAgent(name: string): Promise<Result<JsonObject>>;
  listIds(filter: { tag?: string[]; agentId?: string; status?: string[] }): Promise<Result<string[]>>;
}

function restApi(server: TestServer): Api {
  const call = async (path: string, body?: unknown): Promise<Result<JsonObject>> => {
    const res = await requestJson(`${server.url}${path}`, body === undefined ? {} : { body });
    if (res.status < 300) return { ok: true, value: res.body };
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    return { ok: false, code: res.body.code };
  };
  const must = async (result: Promise<Result<JsonObject>>) => {
    const r = await result;
    if (!r.ok) throw new Error(`failed with code ${r.code}`);
    return r.value;
  };
  return {
    createSession: (body) => call("/v1/sessions", { agent_id: AGENT_ID, ...body }),
    getSession: (id) => must(call(`/v1/sessions/${id}`)),
    start: async (id) => void (await must(call(`/v1/sessions/${id}:start`, {}))),
    recordUsage: (id, prompt, response) =>
      call(`/v1/sessions/${id}:recordUsage`, { input_tokens: "1", prompt_preview: prompt, response_preview: response }),
    fail: (id, error) => call(`/v1/sessions/${id}:fail`, { error }),
    createAgent: (name) => call("/v1/agents", { name, default_model_id: MODEL_ID }),
    async listIds({ tag = [], agentId, status = [] }) {
      const query = new URLSearchParams({ page_size: "1000" });
      for (const t of tag) query.append("tag", t);
      if (agentId !== undefined) query.append("agent_id", agentId);
      for (const s of status) query.append("status", s);
      const r = await call(`/v1/sessions?${query}`);
      return r.ok ? { ok: true, value: (r.value.sessions as Array<{ id: string }>).map((s) => s.id) } : r;
    },
  };
}

function grpcApi(server: TestServer): Api {
  const transport = createGrpcTransport({ baseUrl: server.url });
  const sessions = createClient(SessionService, transport);
  const agents = createClient(AgentService, transport);
  const json = { useProtoFieldName: true, alwaysEmitImplicit: true } as const;
  const attempt = async <T>(run: () => Promise<T>): Promise<Result<T>> => {
    try {
      return { ok: true, value: await run() };
    } catch (err) {
      const code = ConnectError.from(err).code;
      expect(code, String(err)).toBe(Code.InvalidArgument);
      return { ok: false, code };
    }
  };
  const session = async (promise: ReturnType<typeof sessions.getSession>) => toJson(SessionSchema, await promise, json) as JsonObject;
  return {
    createSession: (body) =>
      attempt(() =>
        session(
          sessions.createSession({
            agentId: AGENT_ID,
            title: body.title as string | undefined,
            tags: body.tags as string[] | undefined,
            capabilities: (body.capabilities as Array<{ capability_id: string; config?: JsonObject }> | undefined)?.map((c) => ({
              capabilityId: c.capability_id,
              config: c.config,
            })),
          }),
        ),
      ),
    getSession: (id) => session(sessions.getSession({ id })),
    start: async (id) => void (await sessions.startSession({ id })),
    recordUsage: (id, prompt, response) =>
      attempt(() => session(sessions.recordUsage({ id, inputTokens: 1n, promptPreview: prompt, responsePreview: response }))),
    fail: (id, error) => attempt(() => session(sessions.failSession({ id, error }))),
    createAgent: (name) =>
      attempt(async () => toJson(AgentSchema, await agents.createAgent({ name, defaultModelId: MODEL_ID }), json) as JsonObject),
    listIds: ({ tag = [], agentId = "", status = [] }) =>
      attempt(async () => {
        // A status name the enum lacks cannot travel as a number: send one no status has.
        const statuses = status.map((s) => SessionStatus[s as keyof typeof SessionStatus] ?? 99);
        return (await sessions.listSessions({ pageSize: 1000, tag, agentId, status: statuses })).sessions.map((s) => s.id);
      }),
  };
}

describe.each([
  { name: "REST", api: restApi },
  { name: "gRPC", api: grpcApi },
])("SQL injection over $name", ({ api: makeApi }) => {
  let server: TestServer;
  let api: Api;
  let db: SqliteStore["db"];
  let tables: unknown[];
  let control: JsonObject;

  beforeAll(async () => {
    server = await startTestServer();
    api = makeApi(server);
    db = (server.store as SqliteStore).db;
    tables = db.prepare("SELECT type, name, sql FROM sqlite_master ORDER BY name").all();
    const created = await api.createSession({ title: "control", tags: ["control"] });
    if (!created.ok) throw new Error("control session refused");
    control = created.value;
  });
  afterAll(async () => {
    await server.close();
  });

  /** Stored: the answer and a later read both hold the text exactly. Refused: invalid_argument. */
  async function expectStoredOrRefused(
    accepted: boolean,
    result: Result<JsonObject>,
    read: (session: JsonObject) => unknown,
    expected: unknown,
  ): Promise<void> {
    if (!accepted) {
      expect(result).toEqual({ ok: false, code: Code.InvalidArgument });
      return;
    }
    expect(result.ok, JSON.stringify(result)).toBe(true);
    const session = (result as { value: JsonObject }).value;
    expect(read(session)).toStrictEqual(expected);
    expect(read(await api.getSession(session.id as string))).toStrictEqual(expected);
  }

  it.each(CASES)("stores $shown literally as a title, or in a tag, capability id and config where the rules allow it", async ({ text }) => {
    await expectStoredOrRefused(true, await api.createSession({ title: text }), (s) => s.title, text);
    await expectStoredOrRefused(ACCEPTS.tag(text), await api.createSession({ tags: [text, "other"] }), (s) => s.tags, [text, "other"]);
    await expectStoredOrRefused(
      ACCEPTS.capabilityId(text),
      await api.createSession({ capabilities: [{ capability_id: text }] }),
      (s) => (s.capabilities as JsonObject[])[0]!.capability_id,
      text,
    );
    const config = { [text]: text, nested: { [text]: [text, { [text]: null }] } };
    await expectStoredOrRefused(
      true,
      await api.createSession({ capabilities: [{ capability_id: "web.search", config }] }),
      (s) => (s.capabilities as JsonObject[])[0]!.config,
      config,
    );
  });

  it.each(CASES)("stores $shown literally as a failure's error and as both previews", async ({ text }) => {
    const created = await api.createSession({ title: "lifecycle" });
    if (!created.ok) throw new Error("refused");
    const id = created.value.id as string;
    await api.start(id);
    await expectStoredOrRefused(
      true,
      await api.recordUsage(id, text, text),
      (s) => [s.prompt_preview, s.response_preview],
      [text, text],
    );
    await expectStoredOrRefused(true, await api.fail(id, text), (s) => s.error, text);
  });

  it.each(CASES)("stores $shown literally as an agent's name where the rules allow it", async ({ text }) => {
    const result = await api.createAgent(text);
    if (!ACCEPTS.agentName(text)) {
      expect(result).toEqual({ ok: false, code: Code.InvalidArgument });
      return;
    }
    expect(result.ok).toBe(true);
    expect((result as { value: JsonObject }).value.name).toBe(text);
  });

  it.each(CASES)("filters by the tag $shown literally, and refuses it as agent_id or status", async ({ text }) => {
    const tagged = ACCEPTS.tag(text) ? await api.createSession({ title: "filter", tags: [text] }) : undefined;
    const byTag = await api.listIds({ tag: [text] });
    expect(byTag.ok).toBe(true);
    // Only sessions carrying exactly this tag: the earlier tests stored some too.
    const expected = db
      .prepare("SELECT session_id FROM session_tags WHERE tag = ? ORDER BY created_at DESC, session_id DESC")
      .pluck()
      .all(text);
    expect((byTag as { value: string[] }).value).toEqual(expected);
    if (tagged?.ok) expect(expected).toContain(tagged.value.id);
    expect((byTag as { value: string[] }).value).not.toContain(control.id);

    expect(await api.listIds({ agentId: text })).toEqual({ ok: false, code: Code.InvalidArgument });
    expect(await api.listIds({ status: [text] })).toEqual({ ok: false, code: Code.InvalidArgument });
  });

  it("matches a tag with a quote only literally: it's is neither its, it''s nor it", async () => {
    const ids: Record<string, string> = {};
    for (const tag of ["it's", "its", "it''s", "it", "s", "it%s", "it_s"]) {
      const created = await api.createSession({ title: tag, tags: [tag, "quote-test"] });
      if (!created.ok) throw new Error(`refused ${tag}`);
      ids[tag] = created.value.id as string;
    }
    for (const tag of ["it's", "it''s", "it%s", "it_s"]) {
      expect(await api.listIds({ tag: [tag, "quote-test"] })).toEqual({ ok: true, value: [ids[tag]] });
    }
    expect(await api.listIds({ tag: ["it'%", "quote-test"] })).toEqual({ ok: true, value: [] });
  });

  it("leaves every table, index and row count sound", async () => {
    expect(db.prepare("SELECT type, name, sql FROM sqlite_master ORDER BY name").all()).toEqual(tables);
    expect(db.pragma("integrity_check")).toEqual([{ integrity_check: "ok" }]);
    expect(await api.getSession(control.id as string)).toStrictEqual(control);
    const sessions = db.prepare("SELECT count(*) FROM sessions").pluck().get() as number;
    const tagRows = db.prepare("SELECT count(*) FROM session_tags").pluck().get() as number;
    const tagsInSessions = (db.prepare("SELECT tags FROM sessions").pluck().all() as string[])
      .map((tags) => (JSON.parse(tags) as string[]).length)
      .reduce((a, b) => a + b, 0);
    // The control; per attempt a title, a config and a lifecycle session, plus a tag, a
    // capability id and a filter session where accepted; the seven of the quote test.
    const accepted = (rule: (s: string) => boolean) => INJECTIONS.filter(rule).length;
    expect(sessions).toBe(1 + 3 * INJECTIONS.length + 2 * accepted(ACCEPTS.tag) + accepted(ACCEPTS.capabilityId) + 7);
    expect(tagRows).toBe(tagsInSessions);
    const agents = db.prepare("SELECT count(*) FROM agents").pluck().get() as number;
    expect(agents).toBe(1 + INJECTIONS.filter(ACCEPTS.agentName).length);
  });
});
