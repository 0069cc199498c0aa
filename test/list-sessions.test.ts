import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { SessionService, type ListSessionsRequestSchema } from "../gen/sessions/v1/session_service_pb.js";
import { SessionStatus, type Session } from "../gen/sessions/v1/session_pb.js";
import { BadRequestSchema } from "../gen/google/rpc/error_details_pb.js";
import { createIdGenerator } from "../src/ids.js";
import type { SessionRecord } from "../src/store/store.js";
import {
  AGENT_ID, requestJson, seedTestAgent, startTestServer, type TestServer,
} from "./helpers/server.js";
import { RPC_TRANSPORTS } from "./helpers/rpc-transports.js";
import { storedSession } from "./helpers/stored-session.js";

/**
 * ListSessions over REST: GET /v1/sessions with page_size, page_token, agent_id, status
 * (repeatable: any of), tag (repeatable: all of), created_after and created_before; then
 * over Connect and gRPC, including what only a binary client can send. Query plans are
 * in list-query-plan.test.ts.
 */

const OTHER_AGENT_ID = "agent_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const UNKNOWN_AGENT_ID = "agent_cccccccccccccccccccccccccccccccc";

type Json = Record<string, any>;

async function createSession(server: TestServer, body: Json): Promise<Json> {
  const res = await requestJson(`${server.url}/v1/sessions`, { body: { agent_id: AGENT_ID, ...body } });
  expect(res.status).toBe(201);
  return res.body;
}

/** GET /v1/sessions with the query given; fails the test unless the answer is 200. */
async function listPage(server: TestServer, query = ""): Promise<{ sessions: Json[]; next_page_token: string }> {
  const res = await requestJson(`${server.url}/v1/sessions${query === "" ? "" : "?" + query}`);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body;
}

/** Every page of a listing, following next_page_token until it is empty. */
async function walk(server: TestServer, query: string): Promise<Json[][]> {
  const pages: Json[][] = [];
  let token = "";
  do {
    const page = await listPage(server, `${query}${token === "" ? "" : `&page_token=${encodeURIComponent(token)}`}`);
    pages.push(page.sessions);
    token = page.next_page_token;
  } while (token !== "");
  return pages;
}

const ids = (sessions: readonly Json[]) => sessions.map((s) => s.id as string);
const titles = (sessions: readonly Json[]) => sessions.map((s) => s.title as string);
const nextMillisecond = () => new Promise((resolve) => setTimeout(resolve, 2));

function badRequest(field: string, description: string) {
  return {
    code: 3,
    message: description,
    details: [{ "@type": "type.googleapis.com/google.rpc.BadRequest", field_violations: [{ field, description }] }],
  };
}

describe("REST GET /v1/sessions: pages", () => {
  let server: TestServer;
  /** 120 sessions, oldest first. */
  const created: Json[] = [];
  beforeAll(async () => {
    server = await startTestServer();
    for (let i = 0; i < 120; i++) created.push(await createSession(server, { title: `s${i}` }));
  });
  afterAll(async () => {
    await server.close();
  });

  it("lists newest first, 50 by default, each session exactly as GetSession returns it", async () => {
    const page = await listPage(server);
    expect(page.sessions).toHaveLength(50);
    expect(page.sessions).toEqual(created.slice(70).reverse());
    expect(page.next_page_token).toMatch(/^[A-Za-z0-9_-]+$/);
    const got = await requestJson(`${server.url}/v1/sessions/${page.sessions[0]!.id}`);
    expect(page.sessions[0]).toEqual(got.body);
  });

  it("treats page_size=0 as the default", async () => {
    expect(ids((await listPage(server, "page_size=0")).sessions)).toEqual(ids(created.slice(70).reverse()));
  });

  it("walks every page of 7: each session exactly once, newest first, and an empty token only on the last page", async () => {
    const pages = await walk(server, "page_size=7");
    expect(pages.map((p) => p.length)).toEqual([...Array(17).fill(7), 1]);
    expect(ids(pages.flat())).toEqual(ids(created).reverse());
  });

  it("ends on a full last page without a trailing empty page", async () => {
    const pages = await walk(server, "page_size=60");
    expect(pages.map((p) => p.length)).toEqual([60, 60]);
    expect(ids(pages.flat())).toEqual(ids(created).reverse());
  });

  it("lets page_size change between pages (it is not part of the token's filters)", async () => {
    const first = await listPage(server, "page_size=100");
    const second = await listPage(server, `page_size=3&page_token=${first.next_page_token}`);
    expect(titles(second.sessions)).toEqual(["s19", "s18", "s17"]);
  });

  it("answers 400 naming page_size for a negative page size", async () => {
    const res = await requestJson(`${server.url}/v1/sessions?page_size=-1`);
    expect(res.status).toBe(400);
    expect(res.body).toEqual(badRequest("page_size", "page_size must be at least 0, got -1"));
  });

  it("answers 400 for a page token used with different filters", async () => {
    const token = (await listPage(server, "page_size=2")).next_page_token;
    for (const query of ["tag=a", "agent_id=" + AGENT_ID, "status=SESSION_STATUS_PENDING", "created_after=2000-01-01T00:00:00Z"]) {
      const res = await requestJson(`${server.url}/v1/sessions?page_size=2&${query}&page_token=${token}`);
      expect(res.status, query).toBe(400);
      expect(res.body).toEqual(badRequest("page_token", "page_token was issued for different filters"));
    }
  });

  it("answers 400 for a ListAgents page token", async () => {
    await seedTestAgent(server.store, OTHER_AGENT_ID);
    const agents = await requestJson(`${server.url}/v1/agents?page_size=1`);
    expect(agents.body.next_page_token).not.toBe("");
    const res = await requestJson(`${server.url}/v1/sessions?page_token=${agents.body.next_page_token}`);
    expect(res.status).toBe(400);
    expect(res.body).toEqual(badRequest("page_token", "page_token was issued for different filters"));
  });

  it("accepts a page token with the same filters given in another order or repeated", async () => {
    const first = await listPage(server, "page_size=2&status=SESSION_STATUS_PENDING&status=SESSION_STATUS_RUNNING");
    const second = await listPage(
      server,
      `page_size=2&status=SESSION_STATUS_RUNNING&status=SESSION_STATUS_PENDING&status=SESSION_STATUS_RUNNING&page_token=${first.next_page_token}`,
    );
    expect(titles(second.sessions)).toEqual(["s117", "s116"]);
  });

  it.each([
    ["not base64url", "%%%"],
    ["base64url of something else", "YWJj"],
    ["a cut-off token", "eyJjIjox"],
    ["JSON with the wrong fields", Buffer.from('{"c":"1","i":"x","f":"y"}').toString("base64url")],
  ])("answers 400 for a malformed page token: %s", async (_name, token) => {
    const res = await requestJson(`${server.url}/v1/sessions?page_token=${encodeURIComponent(token)}`);
    expect(res.status).toBe(400);
    expect(res.body).toEqual(badRequest("page_token", "page_token is malformed"));
  });
});

describe("REST GET /v1/sessions: page size limit", () => {
  let server: TestServer;
  /** 1,001 sessions stored straight through the store, oldest first. */
  const stored: SessionRecord[] = [];
  beforeAll(async () => {
    server = await startTestServer();
    const newId = createIdGenerator();
    const start = Date.now() - 10_000;
    for (let i = 0; i < 1001; i++) {
      const record = storedSession(newId("session"), start + i, { title: `s${i}` });
      expect(await server.store.insertSession(record)).toBe(true);
      stored.push(record);
    }
  });
  afterAll(async () => {
    await server.close();
  });

  it.each([1000, 1001, 5000, 2147483647])("clamps page_size=%i to 1000", async (pageSize) => {
    const first = await listPage(server, `page_size=${pageSize}`);
    expect(first.sessions).toHaveLength(1000);
    expect(first.sessions[0]!.title).toBe("s1000");
    expect(first.sessions[999]!.title).toBe("s1");
    const second = await listPage(server, `page_size=${pageSize}&page_token=${first.next_page_token}`);
    expect(titles(second.sessions)).toEqual(["s0"]);
    expect(second.next_page_token).toBe("");
  });
});

describe("REST GET /v1/sessions: writes while paging", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server.close();
  });

  it("shows sessions created after the first page in none of the later pages, and repeats or skips nothing", async () => {
    const before: Json[] = [];
    for (let i = 0; i < 25; i++) before.push(await createSession(server, { title: `old${i}` }));
    const first = await listPage(server, "page_size=10");
    expect(titles(first.sessions)).toEqual(before.slice(15).reverse().map((s) => s.title));

    // New sessions are newer than the cursor (later created_at, or the same millisecond
    // and a larger id), so the pages after it show exactly what was older than it.
    const added: Json[] = [];
    let token = first.next_page_token;
    const rest: Json[] = [];
    while (token !== "") {
      added.push(await createSession(server, { title: `new${added.length}` }));
      const page = await listPage(server, `page_size=10&page_token=${token}`);
      rest.push(...page.sessions);
      token = page.next_page_token;
    }
    expect(added).toHaveLength(2);
    expect(titles(rest)).toEqual(before.slice(0, 15).reverse().map((s) => s.title));

    // A fresh listing has the new ones on top.
    expect(titles((await listPage(server, "page_size=3")).sessions)).toEqual(["new1", "new0", "old24"]);
  });

  it("drops a session deleted while paging without shifting the others", async () => {
    const all = (await walk(server, "page_size=1000")).flat();
    const first = await listPage(server, "page_size=5");
    const doomed = all[7]!;
    expect((await requestJson(`${server.url}/v1/sessions/${doomed.id}`, { method: "DELETE" })).status).toBe(200);
    const second = await listPage(server, `page_size=5&page_token=${first.next_page_token}`);
    expect(ids(second.sessions)).toEqual(ids([...all.slice(5, 7), ...all.slice(8, 11)]));
  });
});

describe("REST GET /v1/sessions: filters", () => {
  let server: TestServer;
  /** By title; created in this order, each in its own millisecond. */
  const byTitle = new Map<string, Json>();
  const at = (title: string) => byTitle.get(title)!.created_at as string;

  // title, agent, tags, moves from PENDING
  const FIXTURE: Array<[string, string, string[], string[]]> = [
    ["s0", AGENT_ID, [], []],
    ["s1", AGENT_ID, ["a"], ["start"]],
    ["s2", OTHER_AGENT_ID, ["a", "b"], ["start"]],
    ["s3", AGENT_ID, ["b"], ["start", "complete"]],
    ["s4", OTHER_AGENT_ID, ["a", "b", "c"], ["start", "fail"]],
    ["s5", AGENT_ID, ["b", "a"], ["cancel"]],
    ["s6", OTHER_AGENT_ID, [], []],
    ["s7", AGENT_ID, ["c"], ["start"]],
    ["s8", OTHER_AGENT_ID, ["a"], ["start", "complete"]],
    ["s9", AGENT_ID, ["a", "b"], ["start"]],
  ];

  beforeAll(async () => {
    server = await startTestServer();
    await seedTestAgent(server.store, OTHER_AGENT_ID);
    for (const [title, agentId, tags] of FIXTURE) {
      byTitle.set(title, await createSession(server, { title, agent_id: agentId, tags }));
      await nextMillisecond();
    }
    // Status moves after every create: they change updated_at, never the listing order.
    for (const [title, , , moves] of FIXTURE) {
      for (const move of moves) {
        const body = move === "fail" ? { error: "boom" } : {};
        const res = await requestJson(`${server.url}/v1/sessions/${byTitle.get(title)!.id}:${move}`, { body });
        expect(res.status, JSON.stringify(res.body)).toBe(200);
      }
    }
  });
  afterAll(async () => {
    await server.close();
  });

  it("lists everything newest first with the statuses the moves set", async () => {
    const page = await listPage(server);
    expect(page.sessions.map((s) => [s.title, s.status])).toEqual([
      ["s9", "SESSION_STATUS_RUNNING"],
      ["s8", "SESSION_STATUS_COMPLETED"],
      ["s7", "SESSION_STATUS_RUNNING"],
      ["s6", "SESSION_STATUS_PENDING"],
      ["s5", "SESSION_STATUS_CANCELLED"],
      ["s4", "SESSION_STATUS_FAILED"],
      ["s3", "SESSION_STATUS_COMPLETED"],
      ["s2", "SESSION_STATUS_RUNNING"],
      ["s1", "SESSION_STATUS_RUNNING"],
      ["s0", "SESSION_STATUS_PENDING"],
    ]);
    expect(page.next_page_token).toBe("");
  });

  const RUNNING = "status=SESSION_STATUS_RUNNING";
  const FAILED = "status=SESSION_STATUS_FAILED";
  it.each([
    ["agent_id alone", `agent_id=${OTHER_AGENT_ID}`, ["s8", "s6", "s4", "s2"]],
    ["an agent without sessions", `agent_id=${UNKNOWN_AGENT_ID}`, []],
    ["one status", RUNNING, ["s9", "s7", "s2", "s1"]],
    ["two statuses: any of them", `${RUNNING}&${FAILED}`, ["s9", "s7", "s4", "s2", "s1"]],
    ["three statuses", "status=SESSION_STATUS_PENDING&status=SESSION_STATUS_CANCELLED&status=SESSION_STATUS_COMPLETED", ["s8", "s6", "s5", "s3", "s0"]],
    ["a repeated status", `${RUNNING}&${RUNNING}`, ["s9", "s7", "s2", "s1"]],
    ["one tag", "tag=a", ["s9", "s8", "s5", "s4", "s2", "s1"]],
    ["two tags: all of them", "tag=a&tag=b", ["s9", "s5", "s4", "s2"]],
    ["two tags in the other order", "tag=b&tag=a", ["s9", "s5", "s4", "s2"]],
    ["three tags", "tag=c&tag=a&tag=b", ["s4"]],
    ["a repeated tag", "tag=c&tag=c", ["s7", "s4"]],
    ["a tag no session has", "tag=zzz", []],
    ["agent and status", `agent_id=${AGENT_ID}&${RUNNING}`, ["s9", "s7", "s1"]],
    ["agent and two statuses", `agent_id=${OTHER_AGENT_ID}&${RUNNING}&${FAILED}`, ["s4", "s2"]],
    ["tag and status", `tag=a&${RUNNING}`, ["s9", "s2", "s1"]],
    ["tag and agent", `tag=b&agent_id=${AGENT_ID}`, ["s9", "s5", "s3"]],
    ["two tags, agent and two statuses", `tag=a&tag=b&agent_id=${AGENT_ID}&${RUNNING}&status=SESSION_STATUS_CANCELLED`, ["s9", "s5"]],
  ])("filters by %s", async (_name, query, expected) => {
    const page = await listPage(server, query);
    expect(titles(page.sessions)).toEqual(expected);
    expect(page.next_page_token).toBe("");
  });

  it("treats created_after and created_before as exclusive bounds", async () => {
    expect(titles((await listPage(server, `created_after=${at("s4")}`)).sessions)).toEqual(["s9", "s8", "s7", "s6", "s5"]);
    expect(titles((await listPage(server, `created_before=${at("s4")}`)).sessions)).toEqual(["s3", "s2", "s1", "s0"]);
    expect(titles((await listPage(server, `created_after=${at("s2")}&created_before=${at("s7")}`)).sessions)).toEqual([
      "s6", "s5", "s4", "s3",
    ]);
  });

  it("compares sub-millisecond bounds exactly: 0.5 µs either side of a session includes it", async () => {
    const created = Date.parse(at("s4"));
    const justBefore = new Date(created - 1).toISOString().replace("Z", "999500Z");
    const justAfter = at("s4").replace("Z", "000500Z");
    expect(titles((await listPage(server, `created_after=${justBefore}&created_before=${justAfter}`)).sessions)).toEqual(["s4"]);
    expect(titles((await listPage(server, `created_after=${justAfter}&created_before=${at("s6")}`)).sessions)).toEqual(["s5"]);
  });

  it("combines time bounds with the other filters", async () => {
    const query = `created_after=${at("s1")}&created_before=${at("s9")}&tag=a&${RUNNING}&${FAILED}`;
    expect(titles((await listPage(server, query)).sessions)).toEqual(["s4", "s2"]);
  });

  it.each([
    ["agent", `agent_id=${AGENT_ID}`, ["s9", "s7", "s5", "s3", "s1", "s0"]],
    ["two statuses", `${RUNNING}&${FAILED}`, ["s9", "s7", "s4", "s2", "s1"]],
    ["two tags", "tag=a&tag=b", ["s9", "s5", "s4", "s2"]],
    ["tag, status and time", `tag=a&${RUNNING}&created_before=@s9`, ["s2", "s1"]],
  ])("pages through a filtered listing (%s) one session at a time", async (_name, query, expected) => {
    // "@s9" stands for s9's created_at, known only once the fixture exists.
    const pages = await walk(server, `page_size=1&${query.replace(/@(s\d)/g, (_, title: string) => at(title))}`);
    expect(pages.map((p) => titles(p))).toEqual(expected.map((title) => [title]));
  });

  it("answers 400 when created_after is not before created_before", async () => {
    for (const query of [`created_after=${at("s4")}&created_before=${at("s4")}`, `created_after=${at("s5")}&created_before=${at("s4")}`]) {
      const res = await requestJson(`${server.url}/v1/sessions?${query}`);
      expect(res.status).toBe(400);
      expect(res.body).toEqual(badRequest("created_after", "created_after must be earlier than created_before"));
    }
  });
});

describe("REST GET /v1/sessions: invalid filters", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server.close();
  });

  const FORM = 'Invalid agent ID: agent_id must be "agent_" followed by 32 lowercase hex digits';
  it.each([
    { name: "a malformed agent_id", query: "agent_id=agent_XYZ", field: "agent_id", description: FORM },
    { name: "an upper-case agent_id", query: "agent_id=" + AGENT_ID.toUpperCase(), field: "agent_id", description: FORM },
    {
      name: "status UNSPECIFIED by name",
      query: "status=SESSION_STATUS_UNSPECIFIED",
      field: "status[0]",
      description: "status[0] must be a session status, not SESSION_STATUS_UNSPECIFIED",
    },
    {
      name: "status UNSPECIFIED by number, second",
      query: "status=SESSION_STATUS_RUNNING&status=0",
      field: "status[1]",
      description: "status[1] must be a session status, not SESSION_STATUS_UNSPECIFIED",
    },
    { name: "an empty tag", query: "tag=", field: "tag[0]", description: "tag[0] must not be empty" },
    { name: "an empty second tag", query: "tag=a&tag=", field: "tag[1]", description: "tag[1] must not be empty" },
    {
      name: "33 distinct tags",
      query: Array.from({ length: 33 }, (_, i) => `tag=t${i}`).join("&"),
      field: "tag",
      description: "tag must have at most 32 distinct entries, got 33",
    },
  ])("answers 400 for $name", async ({ query, field, description }) => {
    const res = await requestJson(`${server.url}/v1/sessions?${query}`);
    expect(res.status).toBe(400);
    expect(res.body).toEqual(badRequest(field, description));
  });

  it("lists every violation at once", async () => {
    const res = await requestJson(`${server.url}/v1/sessions?page_size=-5&agent_id=x&status=SESSION_STATUS_UNSPECIFIED&tag=`);
    expect(res.status).toBe(400);
    expect(res.body.details[0].field_violations).toEqual([
      { field: "page_size", description: "page_size must be at least 0, got -5" },
      { field: "agent_id", description: 'Invalid agent ID: agent_id must be "agent_" followed by 32 lowercase hex digits' },
      { field: "status[0]", description: "status[0] must be a session status, not SESSION_STATUS_UNSPECIFIED" },
      { field: "tag[0]", description: "tag[0] must not be empty" },
    ]);
    expect(res.body.message).toBe(
      "page_size must be at least 0, got -5; " +
        'Invalid agent ID: agent_id must be "agent_" followed by 32 lowercase hex digits; ' +
        "status[0] must be a session status, not SESSION_STATUS_UNSPECIFIED; tag[0] must not be empty",
    );
  });

  it("accepts 32 distinct tags, and 33 with a repeat", async () => {
    const tags = Array.from({ length: 32 }, (_, i) => `tag=t${i}`);
    expect((await listPage(server, tags.join("&"))).sessions).toEqual([]);
    expect((await listPage(server, [...tags, "tag=t0"].join("&"))).sessions).toEqual([]);
  });

  it.each([
    ["status=BOGUS", 'invalid query parameter "status": cannot decode enum sessions.v1.SessionStatus from JSON: "BOGUS"'],
    ["created_after=yesterday", 'invalid query parameter "created_after": cannot decode message google.protobuf.Timestamp from JSON: invalid RFC 3339 string'],
    ["page_size=ten", 'invalid query parameter "page_size": cannot decode field sessions.v1.ListSessionsRequest.page_size from JSON: expected number (int32), got "ten"'],
  ])("answers 400 from the transcoder for %s", async (query, message) => {
    const res = await requestJson(`${server.url}/v1/sessions?${query}`);
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ code: 3, message, details: [] });
  });
});

type ListRequest = MessageInitShape<typeof ListSessionsRequestSchema>;

const RPC_CASES = RPC_TRANSPORTS.filter((t) => t.name === "Connect binary over HTTP/1.1" || t.name === "gRPC binary over HTTP/2");

describe.each(RPC_CASES)("ListSessions over $name", (transport) => {
  let server: TestServer;
  let client: Client<typeof SessionService>;
  /** Oldest first: title, agent, tags, and whether it was started. */
  const created: Session[] = [];
  const FIXTURE: Array<[string, string, string[], boolean]> = [
    ["r0", AGENT_ID, ["x"], false],
    ["r1", OTHER_AGENT_ID, ["x", "y"], true],
    ["r2", AGENT_ID, ["y"], true],
    ["r3", AGENT_ID, ["x", "y"], false],
    ["r4", OTHER_AGENT_ID, [], false],
    ["r5", AGENT_ID, ["x", "y"], true],
    ["r6", AGENT_ID, ["x"], true],
    ["r7", OTHER_AGENT_ID, ["y", "x"], false],
    ["r8", AGENT_ID, [], true],
  ];

  beforeAll(async () => {
    server = await startTestServer();
    await seedTestAgent(server.store, OTHER_AGENT_ID);
    client = createClient(SessionService, transport.create(server.url));
    for (const [title, agentId, tags] of FIXTURE) {
      created.push(await client.createSession({ agentId, title, tags }));
      await nextMillisecond();
    }
    for (const [title, , , started] of FIXTURE) {
      if (started) await client.startSession({ id: created.find((s) => s.title === title)!.id });
    }
  });
  afterAll(async () => {
    await server?.close();
  });

  async function walkRpc(request: ListRequest): Promise<string[][]> {
    const pages: string[][] = [];
    let pageToken = "";
    do {
      const page = await client.listSessions({ ...request, pageToken });
      pages.push(page.sessions.map((s) => s.title));
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    return pages;
  }

  async function rpcError(request: ListRequest): Promise<ConnectError> {
    const error = await client.listSessions(request).then(
      () => undefined,
      (e: unknown) => e,
    );
    if (!(error instanceof ConnectError)) throw new Error(`expected a ConnectError, got ${String(error)}`);
    return error;
  }

  it("pages newest first with the sessions exactly as GetSession returns them", async () => {
    expect(await walkRpc({ pageSize: 4 })).toEqual([["r8", "r7", "r6", "r5"], ["r4", "r3", "r2", "r1"], ["r0"]]);
    const first = await client.listSessions({ pageSize: 1 });
    expect(first.sessions).toStrictEqual([await client.getSession({ id: created[8]!.id })]);
  });

  it.each<[string, ListRequest, string[][]]>([
    ["agent", { agentId: OTHER_AGENT_ID }, [["r7", "r4"], ["r1"]]],
    ["one status", { status: [SessionStatus.RUNNING] }, [["r8", "r6"], ["r5", "r2"], ["r1"]]],
    ["two statuses", { status: [SessionStatus.PENDING, SessionStatus.RUNNING] }, [["r8", "r7"], ["r6", "r5"], ["r4", "r3"], ["r2", "r1"], ["r0"]]],
    ["two tags: all of them", { tag: ["y", "x"] }, [["r7", "r5"], ["r3", "r1"]]],
    ["tag and status", { tag: ["x"], status: [SessionStatus.PENDING] }, [["r7", "r3"], ["r0"]]],
    ["agent, tag and status", { agentId: AGENT_ID, tag: ["y"], status: [SessionStatus.RUNNING] }, [["r5", "r2"]]],
    ["a status nothing has", { status: [SessionStatus.FAILED] }, [[]]],
  ])("filters by %s, two per page", async (_name, filter, expected) => {
    expect(await walkRpc({ pageSize: 2, ...filter })).toEqual(expected);
  });

  it("treats created_after and created_before as exclusive bounds", async () => {
    const createdAfter = created[2]!.createdAt;
    const createdBefore = created[6]!.createdAt;
    expect(await walkRpc({ pageSize: 2, createdAfter, createdBefore })).toEqual([["r5", "r4"], ["r3"]]);
    // One millisecond earlier includes r2.
    const earlier = timestampFromMs(timestampMs(createdAfter!) - 1);
    expect(await walkRpc({ pageSize: 10, createdAfter: earlier, createdBefore, agentId: AGENT_ID })).toEqual([["r5", "r3", "r2"]]);
  });

  it("refuses a page token of other filters and a malformed one with invalid_argument", async () => {
    const { nextPageToken } = await client.listSessions({ pageSize: 2, tag: ["x"] });
    const other = await rpcError({ pageSize: 2, tag: ["y"], pageToken: nextPageToken });
    expect(other.code).toBe(Code.InvalidArgument);
    expect(other.rawMessage).toBe("page_token was issued for different filters");
    expect(other.findDetails(BadRequestSchema)[0]?.fieldViolations.map((v) => v.field)).toEqual(["page_token"]);
    const malformed = await rpcError({ pageToken: "not a token" });
    expect(malformed.code).toBe(Code.InvalidArgument);
    expect(malformed.rawMessage).toBe("page_token is malformed");
  });

  it("continues over RPC from a token REST handed out", async () => {
    const rest = await listPage(server, "page_size=3&tag=x&status=SESSION_STATUS_RUNNING");
    expect(titles(rest.sessions)).toEqual(["r6", "r5", "r1"]);
    expect(rest.next_page_token).toBe("");
    const restPage = await listPage(server, "page_size=2&tag=x");
    const next = await client.listSessions({ pageSize: 2, tag: ["x"], pageToken: restPage.next_page_token });
    expect(next.sessions.map((s) => s.title)).toEqual(["r5", "r3"]);
  });

  it.each<[string, ListRequest, string, string]>([
    ["a negative page size", { pageSize: -3 }, "page_size", "page_size must be at least 0, got -3"],
    ["an unknown status number", { status: [SessionStatus.RUNNING, 99 as SessionStatus] }, "status[1]", "status[1] must be a session status, got 99"],
    ["UNSPECIFIED", { status: [SessionStatus.UNSPECIFIED] }, "status[0]", "status[0] must be a session status, not SESSION_STATUS_UNSPECIFIED"],
    [
      "a time before year 1",
      { createdAfter: { seconds: -62135596801n, nanos: 0 } },
      "created_after",
      "created_after must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999999Z",
    ],
    [
      "a time after year 9999",
      { createdBefore: { seconds: 253402300800n, nanos: 0 } },
      "created_before",
      "created_before must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999999Z",
    ],
    ["negative nanos", { createdAfter: { seconds: 1n, nanos: -1 } }, "created_after", "created_after.nanos must be between 0 and 999999999, got -1"],
    [
      "nanos of a whole second",
      { createdBefore: { seconds: 1n, nanos: 1_000_000_000 } },
      "created_before",
      "created_before.nanos must be between 0 and 999999999, got 1000000000",
    ],
  ])("answers invalid_argument naming the field for %s", async (_name, request, field, description) => {
    const error = await rpcError(request);
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toBe(description);
    expect(error.findDetails(BadRequestSchema)[0]?.fieldViolations.map((v) => ({ field: v.field, description: v.description }))).toEqual([
      { field, description },
    ]);
  });

  it("accepts the extreme valid times", async () => {
    const page = await client.listSessions({
      pageSize: 1,
      createdAfter: { seconds: -62135596800n, nanos: 0 },
      createdBefore: { seconds: 253402300799n, nanos: 999_999_999 },
    });
    expect(page.sessions.map((s) => s.title)).toEqual(["r8"]);
  });
});
