import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { create, type DescMethod, type DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createHandlerContext, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SessionService } from "../gen/sessions/v1/session_service_pb.js";
import { AgentService } from "../gen/sessions/v1/agent_service_pb.js";
import { SessionServiceImpl } from "../src/service/sessions.js";
import { AgentServiceImpl } from "../src/service/agents.js";
import { SessionEvents } from "../src/service/session-events.js";
import { callerOrgId } from "../src/service/caller.js";
import { generateApiKey } from "../src/auth/api-key.js";
import { SqliteStore } from "../src/store/sqlite.js";
import { GrpcJsSessionService } from "./helpers/grpc-js.js";
import { AGENT_ID, DEFAULT_ORG_ID, MODEL_ID, SESSION_ID_PATTERN, requestJson, seedTestAgent, startTestServer, type TestServer } from "./helpers/server.js";
import { RPC_TRANSPORTS } from "./helpers/rpc-transports.js";
import { insertTestKey, runKeysCommand, type TestKey } from "./helpers/keys.js";

const ORG_ID = "org_" + "a".repeat(32);
const REALM = 'Bearer realm="sessions"';
const MISSING = "missing API key: send Authorization: Bearer <key>";
const MALFORMED = "malformed Authorization header: expected Bearer <key>";
const INVALID = "invalid API key";

const byName = (name: string) => RPC_TRANSPORTS.find((t) => t.name === name)!;
/** One transport per RPC protocol: Connect JSON on HTTP/1.1, gRPC-Web on HTTP/1.1, gRPC on HTTP/2. */
const RPC_CASES = [byName("Connect JSON over HTTP/1.1"), byName("gRPC-Web binary over HTTP/1.1"), byName("gRPC binary over HTTP/2")];

/** Keys of ORG_ID created in beforeAll of the main describe. */
let valid: TestKey;
let revoked: TestKey;

/** Every way to present no usable key, with the one message the server answers it with. */
const BAD_CREDENTIALS: ReadonlyArray<{ name: string; authorization: () => string | undefined; message: string }> = [
  { name: "no Authorization header", authorization: () => undefined, message: MISSING },
  { name: "Basic credentials", authorization: () => "Basic dXNlcjpwYXNz", message: MALFORMED },
  { name: "Bearer with no key", authorization: () => "Bearer", message: MALFORMED },
  { name: "the key without Bearer", authorization: () => valid.key, message: MALFORMED },
  { name: "Bearer with two words", authorization: () => `Bearer ${valid.key} extra`, message: MALFORMED },
  { name: "a key not of the key form", authorization: () => "Bearer not-a-key", message: INVALID },
  { name: "an unknown key", authorization: () => `Bearer ${generateApiKey(ORG_ID, "never stored", 0).key}`, message: INVALID },
  {
    name: "a real key id with a wrong secret",
    authorization: () => `Bearer ${valid.key.slice(0, valid.key.lastIndexOf("_") + 1)}${"A".repeat(43)}`,
    message: INVALID,
  },
  { name: "a revoked key", authorization: () => `Bearer ${revoked.key}`, message: INVALID },
];

const sessionCount = (server: TestServer): number =>
  (server.store as SqliteStore).db.prepare("SELECT count(*) FROM sessions").pluck().get() as number;

const headersFor = (authorization: string | undefined): Record<string, string> =>
  authorization === undefined ? {} : { authorization };

/** The ConnectError a call failed with; fails the test if it succeeded. */
async function failure(call: Promise<unknown>): Promise<ConnectError> {
  return call.then(
    (response) => {
      throw new Error(`expected the call to fail, got ${JSON.stringify(response, (_, v) => (typeof v === "bigint" ? String(v) : v))}`);
    },
    (error: unknown) => ConnectError.from(error),
  );
}

/** What an unauthenticated ConnectError carries: its code, message and WWW-Authenticate. */
const unauthenticatedParts = (error: ConnectError) => [error.code, error.rawMessage, error.metadata.get("www-authenticate")];

function bearerInterceptor(key: string): Interceptor {
  return (next) => (request) => {
    request.header.set("authorization", `Bearer ${key}`);
    return next(request);
  };
}

// grpc-js calls send the key as call metadata.
type GrpcJsUnary = (
  request: object,
  metadata: grpc.Metadata,
  callback: (error: grpc.ServiceError | null, response: any) => void,
) => grpc.ClientUnaryCall;

function grpcJsCall(client: grpc.Client, method: "CreateSession" | "ListSessions", request: object, authorization: string | undefined): Promise<any> {
  const metadata = new grpc.Metadata();
  if (authorization !== undefined) metadata.set("authorization", authorization);
  const fn = (client as unknown as Record<string, GrpcJsUnary>)[method]!.bind(client);
  return new Promise((resolve, reject) => {
    fn(request, metadata, (error, response) => (error ? reject(error) : resolve(response)));
  });
}

function grpcJsError(client: grpc.Client, authorization: string | undefined): Promise<grpc.ServiceError> {
  return grpcJsCall(client, "ListSessions", {}, authorization).then(
    (response) => {
      throw new Error(`expected ListSessions to fail, got ${JSON.stringify(response)}`);
    },
    (error: grpc.ServiceError) => error,
  );
}

describe("authentication with API keys", () => {
  let server: TestServer;
  let grpcJs: grpc.Client;
  beforeAll(async () => {
    server = await startTestServer({ seedAgent: false });
    await seedTestAgent(server.store, AGENT_ID, ORG_ID);
    valid = await insertTestKey(server.store, ORG_ID, "valid");
    revoked = await insertTestKey(server.store, ORG_ID, "revoked");
    expect(await server.store.revokeKey(revoked.id, Date.now())).toBe(true);
    grpcJs = new GrpcJsSessionService(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
  });
  afterAll(async () => {
    grpcJs?.close();
    await server?.close();
  });

  describe("REST", () => {
    it.each(BAD_CREDENTIALS)("$name: 401 with WWW-Authenticate and code 16", async ({ authorization, message }) => {
      const res = await requestJson(`${server.url}/v1/sessions`, { headers: headersFor(authorization()) });
      expect(res.status).toBe(401);
      expect(res.headers.get("www-authenticate")).toBe(REALM);
      expect(res.body).toEqual({ code: 16, message, details: [] });
    });

    it("checks the key before the request: a malformed id or body without a key is 401, not 400", async () => {
      const before = sessionCount(server);
      const get = await requestJson(`${server.url}/v1/sessions/session_1`);
      expect([get.status, get.body]).toEqual([401, { code: 16, message: MISSING, details: [] }]);
      const post = await requestJson(`${server.url}/v1/sessions`, { body: { agent_id: "nope" } });
      expect([post.status, post.body]).toEqual([401, { code: 16, message: MISSING, details: [] }]);
      expect(sessionCount(server)).toBe(before);
    });

    it("serves a valid key as its organisation", async () => {
      const headers = { authorization: `Bearer ${valid.key}` };
      const created = await requestJson(`${server.url}/v1/sessions`, { body: { agent_id: AGENT_ID }, headers });
      expect(created.status).toBe(201);
      expect(created.body.id).toMatch(SESSION_ID_PATTERN);
      expect(created.body.org_id).toBe(ORG_ID);
      const got = await requestJson(`${server.url}/v1/sessions/${created.body.id}`, { headers });
      expect([got.status, got.body]).toEqual([200, created.body]);
    });

    it.each(["bearer", "BEARER", "bEaReR"])('accepts the scheme spelt "%s"', async (scheme) => {
      const res = await requestJson(`${server.url}/v1/sessions`, { headers: { authorization: `${scheme} ${valid.key}` } });
      expect(res.status).toBe(200);
    });
  });

  it("answers a raw Connect request with HTTP 401, WWW-Authenticate and code unauthenticated", async () => {
    const res = await requestJson(`${server.url}/sessions.v1.SessionService/ListSessions`, { body: {} });
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toBe(REALM);
    expect(res.body).toEqual({ code: "unauthenticated", message: MISSING });
  });

  describe.each(RPC_CASES)("$name", (transport) => {
    let client: Client<typeof SessionService>;
    beforeAll(() => {
      client = createClient(SessionService, transport.create(server.url));
    });

    it.each(BAD_CREDENTIALS)("$name: unauthenticated with WWW-Authenticate", async ({ authorization, message }) => {
      const error = await failure(client.listSessions({}, { headers: headersFor(authorization()) }));
      expect(unauthenticatedParts(error)).toEqual([Code.Unauthenticated, message, REALM]);
    });

    it("refuses a server stream (WatchSession) the same way", async () => {
      const error = await failure(
        (async () => {
          const messages: unknown[] = [];
          for await (const message of client.watchSession({ id: "session_" + "0".repeat(32) }, { headers: headersFor("Bearer x") })) {
            messages.push(message);
          }
          return messages;
        })(),
      );
      expect(unauthenticatedParts(error)).toEqual([Code.Unauthenticated, INVALID, REALM]);
    });

    it("serves a valid key as its organisation", async () => {
      const headers = { authorization: `Bearer ${valid.key}` };
      const created = await client.createSession({ agentId: AGENT_ID }, { headers });
      expect(created.orgId).toBe(ORG_ID);
      expect(await client.getSession({ id: created.id }, { headers })).toEqual(created);
    });

    it.each(["bearer", "BEARER"])('accepts the scheme spelt "%s"', async (scheme) => {
      const listed = await client.listSessions({}, { headers: { authorization: `${scheme} ${valid.key}` } });
      expect(listed.sessions.every((s) => s.orgId === ORG_ID)).toBe(true);
    });
  });

  it("serves a valid key added by an interceptor on a gRPC transport", async () => {
    const client = createClient(
      SessionService,
      createGrpcTransport({ baseUrl: server.url, interceptors: [bearerInterceptor(valid.key)] }),
    );
    const created = await client.createSession({ agentId: AGENT_ID, title: "through an interceptor" });
    expect([created.orgId, created.title]).toEqual([ORG_ID, "through an interceptor"]);
  });

  describe("gRPC with a grpc-js client and call metadata", () => {
    it.each(BAD_CREDENTIALS)("$name: status 16 with the message and www-authenticate", async ({ authorization, message }) => {
      const error = await grpcJsError(grpcJs, authorization());
      // Connect percent-encodes grpc-message with encodeURIComponent; grpc-js decodes it
      // with decodeURI, which leaves reserved characters such as ":" encoded.
      expect([error.code, error.details, error.metadata.get("www-authenticate")]).toEqual([
        grpc.status.UNAUTHENTICATED,
        message.replaceAll(":", "%3A"),
        [REALM],
      ]);
    });

    it("serves a valid key as its organisation", async () => {
      const created = await grpcJsCall(grpcJs, "CreateSession", { agent_id: AGENT_ID }, `Bearer ${valid.key}`);
      expect(created.id).toMatch(SESSION_ID_PATTERN);
      expect(created.org_id).toBe(ORG_ID);
    });
  });

  it("fails a key revoked with `keys revoke` while the server runs from the next request on, on every protocol", async () => {
    const key = await insertTestKey(server.store, ORG_ID, "to revoke");
    const authorization = `Bearer ${key.key}`;
    const clients = RPC_CASES.map((transport) => createClient(SessionService, transport.create(server.url)));
    expect((await requestJson(`${server.url}/v1/sessions`, { headers: { authorization } })).status).toBe(200);
    for (const client of clients) await client.listSessions({}, { headers: { authorization } });
    await grpcJsCall(grpcJs, "ListSessions", {}, authorization);

    const revoke = await runKeysCommand(["revoke", key.id, "--db", server.dbPath]);
    expect(revoke).toEqual({ code: 0, stdout: "", stderr: `revoked ${key.id}\n` });

    const rest = await requestJson(`${server.url}/v1/sessions`, { headers: { authorization } });
    expect([rest.status, rest.headers.get("www-authenticate"), rest.body]).toEqual([401, REALM, { code: 16, message: INVALID, details: [] }]);
    for (const client of clients) {
      const error = await failure(client.listSessions({}, { headers: { authorization } }));
      expect(unauthenticatedParts(error)).toEqual([Code.Unauthenticated, INVALID, REALM]);
    }
    const grpcJsFailure = await grpcJsError(grpcJs, authorization);
    expect([grpcJsFailure.code, grpcJsFailure.details]).toEqual([grpc.status.UNAUTHENTICATED, INVALID]);
    // The organisation's other keys go on working.
    expect((await requestJson(`${server.url}/v1/sessions`, { headers: { authorization: `Bearer ${valid.key}` } })).status).toBe(200);
  });

  it("sets last_used_at on a key's first successful use, at most once a minute, and never on a failed one", async () => {
    const key = await insertTestKey(server.store, ORG_ID, "usage");
    expect((await server.store.findKey(key.id))?.lastUsedAt).toBeUndefined();

    const wrongSecret = `Bearer ${key.key.slice(0, key.key.lastIndexOf("_") + 1)}${"B".repeat(43)}`;
    expect((await requestJson(`${server.url}/v1/sessions`, { headers: { authorization: wrongSecret } })).status).toBe(401);
    expect((await server.store.findKey(key.id))?.lastUsedAt).toBeUndefined();

    const before = Date.now();
    expect((await requestJson(`${server.url}/v1/sessions`, { headers: { authorization: `Bearer ${key.key}` } })).status).toBe(200);
    const after = Date.now();
    const firstUse = (await server.store.findKey(key.id))?.lastUsedAt;
    expect(firstUse).toBeGreaterThanOrEqual(before);
    expect(firstUse).toBeLessThanOrEqual(after);

    await new Promise((resolve) => setTimeout(resolve, 5));
    expect((await requestJson(`${server.url}/v1/sessions`, { headers: { authorization: `Bearer ${key.key}` } })).status).toBe(200);
    expect((await server.store.findKey(key.id))?.lastUsedAt).toBe(firstUse);
  });

  it("never writes a key or its secret to the log", () => {
    const logged = JSON.stringify(server.logs);
    for (const { key } of [valid, revoked]) {
      expect(logged.includes(key)).toBe(false);
      expect(logged.includes(key.slice(key.lastIndexOf("_") + 1))).toBe(false);
    }
  });
});

describe("open mode: a database that has never held a key", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.close();
  });

  const GARBAGE: ReadonlyArray<[string, string | undefined]> = [
    ["no Authorization header", undefined],
    ["Basic credentials", "Basic dXNlcjpwYXNz"],
    ["a Bearer token that is no key", "Bearer garbage"],
    ["a well-formed key that is not stored", `Bearer ${generateApiKey(ORG_ID, "unknown", 0).key}`],
    ["a header that is no scheme at all", "%%%"],
  ];

  it.each(GARBAGE)("serves %s as the default organisation over REST", async (_, authorization) => {
    const res = await requestJson(`${server.url}/v1/sessions`, { body: { agent_id: AGENT_ID }, headers: headersFor(authorization) });
    expect(res.status).toBe(201);
    expect(res.body.org_id).toBe(DEFAULT_ORG_ID);
    expect((await server.store.findSession(DEFAULT_ORG_ID, res.body.id))?.orgId).toBe(DEFAULT_ORG_ID);
  });

  it.each(GARBAGE)("serves %s as the default organisation over gRPC", async (_, authorization) => {
    const client = createClient(SessionService, createGrpcTransport({ baseUrl: server.url }));
    const created = await client.createSession({ agentId: AGENT_ID }, { headers: headersFor(authorization) });
    expect(created.orgId).toBe(DEFAULT_ORG_ID);
  });
});

describe("leaving open mode", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.close();
  });

  it("requires a key from the next request on once `keys create` adds one, and still after `keys revoke` removes it", async () => {
    const client = createClient(SessionService, createGrpcTransport({ baseUrl: server.url }));
    const open = await requestJson(`${server.url}/v1/sessions`, { body: { agent_id: AGENT_ID } });
    expect([open.status, open.body.org_id]).toEqual([201, DEFAULT_ORG_ID]);

    const created = await runKeysCommand(["create", "--org", ORG_ID, "--db", server.dbPath]);
    expect(created.code).toBe(0);
    const key = created.stdout.trim();
    const locked = await requestJson(`${server.url}/v1/sessions/${open.body.id}`);
    expect([locked.status, locked.headers.get("www-authenticate"), locked.body]).toEqual([401, REALM, { code: 16, message: MISSING, details: [] }]);
    expect((await requestJson(`${server.url}/v1/sessions`, { headers: { authorization: `Bearer ${key}` } })).status).toBe(200);

    const keyId = /^created (key_[0-9a-f]{32}) /.exec(created.stderr)![1]!;
    expect((await runKeysCommand(["revoke", keyId, "--db", server.dbPath])).code).toBe(0);
    // Revoking the last key locks the server; it never reopens it.
    for (const authorization of [undefined, "Bearer garbage", `Bearer ${key}`]) {
      const res = await requestJson(`${server.url}/v1/sessions`, { headers: headersFor(authorization) });
      expect([res.status, res.headers.get("www-authenticate"), res.body.code]).toEqual([401, REALM, 16]);
    }
    const error = await failure(client.getSession({ id: open.body.id }));
    expect(unauthenticatedParts(error)).toEqual([Code.Unauthenticated, MISSING, REALM]);
  });

  it("requires a key on a start over a database whose only key is revoked", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sessions-auth-"));
    const dbPath = join(dir, "sessions.db");
    const store = new SqliteStore(dbPath);
    const { record } = generateApiKey(ORG_ID, "revoked before start", Date.now());
    await store.insertKey({ ...record, revokedAt: Date.now() });
    await store.close();
    const restarted = await startTestServer({ dbPath });
    try {
      const res = await requestJson(`${restarted.url}/v1/sessions`, { headers: { authorization: "Bearer garbage" } });
      expect([res.status, res.headers.get("www-authenticate"), res.body]).toEqual([401, REALM, { code: 16, message: INVALID, details: [] }]);
    } finally {
      await restarted.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/**
 * A valid request for every RPC of both services, naming `sessionId` and AGENT_ID, so that
 * a call gets past validation to the point where it needs the caller. Keyed by method
 * name: a new RPC fails the checks below until it is added here.
 */
function validRequests(sessionId: string): Record<string, Record<string, Record<string, unknown>>> {
  return {
    [SessionService.typeName]: {
      CreateSession: { agentId: AGENT_ID },
      GetSession: { id: sessionId },
      ListSessions: {},
      UpdateSession: { session: { id: sessionId, title: "changed" }, updateMask: { paths: ["title"] } },
      DeleteSession: { id: sessionId },
      StartSession: { id: sessionId },
      CompleteSession: { id: sessionId },
      FailSession: { id: sessionId, error: "failed" },
      CancelSession: { id: sessionId },
      RecordUsage: { id: sessionId, inputTokens: 1n },
      GetRuntimeAgent: { id: sessionId },
      WatchSession: { id: sessionId },
      AddMessage: { sessionId, message: { role: 1, content: [{ part: { case: "text", value: "hello" } }] } },
      GetMessage: { sessionId, id: "message_" + "0".repeat(32) },
      ListMessages: { sessionId },
      ListSessionEvents: { sessionId },
      StreamSessionEvents: { sessionId },
    },
    [AgentService.typeName]: {
      CreateAgent: { name: "created", defaultModelId: MODEL_ID },
      GetAgent: { id: AGENT_ID },
      ListAgents: {},
      UpdateAgent: { agent: { id: AGENT_ID, name: "changed" }, updateMask: { paths: ["name"] } },
      DeleteAgent: { id: AGENT_ID },
    },
  };
}

/** Calls a method (unary or server-streaming) and reads it to the end. */
async function callToEnd(call: (request: unknown, options?: unknown) => unknown, method: DescMethod, request: unknown): Promise<unknown> {
  if (method.methodKind !== "server_streaming") return call(request);
  const messages: unknown[] = [];
  for await (const message of call(request) as AsyncIterable<unknown>) messages.push(message);
  return messages;
}

describe("every RPC is authenticated", () => {
  let server: TestServer;
  let sessionId: string;
  beforeAll(async () => {
    server = await startTestServer();
    const open = await requestJson(`${server.url}/v1/sessions`, { body: { agent_id: AGENT_ID } });
    expect(open.status).toBe(201);
    sessionId = open.body.id;
    await insertTestKey(server.store, ORG_ID, "locks the server");
  });
  afterAll(async () => {
    await server?.close();
  });

  const services: DescService[] = [SessionService, AgentService];

  it("lists a request for every method of both services", () => {
    const requests = validRequests("");
    for (const service of services) expect(Object.keys(requests[service.typeName]!).sort()).toEqual(service.methods.map((m) => m.name).sort());
  });

  it.each(services.flatMap((service) => service.methods.map((method) => [method.name, service, method] as const)))(
    "%s without a key is unauthenticated over Connect, before anything is read or changed",
    async (name, service, method) => {
      const before = await server.store.findSession(DEFAULT_ORG_ID, sessionId);
      const client = createClient(service, RPC_CASES[0]!.create(server.url)) as unknown as Record<string, (request: unknown) => unknown>;
      const request = validRequests(sessionId)[service.typeName]![name]!;
      const error = await failure(callToEnd(client[method.localName]!.bind(client), method, request));
      expect(unauthenticatedParts(error)).toEqual([Code.Unauthenticated, MISSING, REALM]);
      expect(await server.store.findSession(DEFAULT_ORG_ID, sessionId)).toEqual(before);
      expect((await server.store.findAgent(DEFAULT_ORG_ID, AGENT_ID))?.name).toBe("test agent");
    },
  );

  it.each(services.flatMap((service) => service.methods.map((method) => [method.name, service, method] as const)))(
    "%s of an implementation reached without authentication fails closed: internal, never the default organisation",
    async (name, service, method) => {
      const implementations: Record<string, Record<string, (request: unknown, context: unknown) => unknown>> = {
        [SessionService.typeName]: new SessionServiceImpl({ store: server.store, events: new SessionEvents() }) as never,
        [AgentService.typeName]: new AgentServiceImpl({ store: server.store }) as never,
      };
      const implementation = implementations[service.typeName]!;
      const context = createHandlerContext({ service, method, protocolName: "test", requestMethod: "POST", url: `/${service.typeName}/${name}` });
      expect(() => callerOrgId(context)).toThrow(ConnectError);
      const before = await server.store.findSession(DEFAULT_ORG_ID, sessionId);
      const request = create(method.input, validRequests(sessionId)[service.typeName]![name] as never);
      const error = await failure(callToEnd((r) => implementation[method.localName]!.call(implementation, r, context), method, request));
      expect([error.code, error.rawMessage]).toEqual([Code.Internal, "request reached a handler without authentication"]);
      expect(await server.store.findSession(DEFAULT_ORG_ID, sessionId)).toEqual(before);
      expect((await server.store.findAgent(DEFAULT_ORG_ID, AGENT_ID))?.name).toBe("test agent");
    },
  );
});
