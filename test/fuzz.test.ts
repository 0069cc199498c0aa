import * as http from "node:http";
import * as http2 from "node:http2";
import { brotliDecompressSync, gunzipSync, gzipSync } from "node:zlib";
import fc from "fast-check";
import { createClient } from "@connectrpc/connect";
import { codeFromString, codeToHttpStatus } from "@connectrpc/connect/protocol-connect";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { SessionService } from "../gen/sessions/v1/session_service_pb.js";
import { AgentService } from "../gen/sessions/v1/agent_service_pb.js";
import type { SqliteStore } from "../src/store/sqlite.js";
import { httpStatusOf } from "../src/rest/errors.js";
import { AGENT_ID, requestJson, seedTestAgent, startTestServer, type TestServer } from "./helpers/server.js";
import { RPC_TRANSPORTS } from "./helpers/rpc-transports.js";
import { envelope, sendH1, sendH2, splitEnvelopes, type RawRequest, type RawResponse } from "./helpers/raw-requests.js";
import { FUZZ_AGENT_ID, hostileJsonBody, hostileProtoBody, hostileString, nested } from "./helpers/hostile-input.js";

/**
 * Property-based fuzzing of every protocol with hostile requests (see helpers/hostile-input.ts):
 * every answer is a client error in its protocol's own error form — never a 5xx, never a
 * hang — and afterwards the server still answers, logged no internal error, its database
 * passes `PRAGMA integrity_check`, every session that existed before is unchanged, and
 * every RPC protocol can still read every session. FUZZ_SEED replays a run.
 */

const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);
const TIMEOUT_MS = 10_000;
/** gRPC codes that would mean the server, not the request, is at fault. */
const SERVER_FAULT_CODES = new Set([2, 12, 13, 14, 15]); // unknown, unimplemented, internal, unavailable, data_loss
/**
 * Except this: a unary or server-streaming call sent zero or two messages. connect-es answers
 * `unimplemented`, as connect-go does for this violation of the call's cardinality.
 */
const CARDINALITY = /^protocol error: (missing|received extra) input message for (unary|server-streaming) method$/;

const METHODS = [...SessionService.methods, ...AgentService.methods];
const UNARY_METHODS = METHODS.filter((m) => m.methodKind === "unary");
/**
 * Whether a generated request may be valid: listings take almost anything, creates of
 * near-valid bodies succeed, and a body naming the fuzz agent is, on the wire, also a
 * valid request for the agent methods. Nothing generated names a fixture.
 */
const MAY_SUCCEED = new Set(["ListSessions", "ListAgents", "CreateSession", "CreateAgent"]);
const maySucceed = (method: { name: string }, body: Buffer) => MAY_SUCCEED.has(method.name) || body.includes(FUZZ_AGENT_ID);
const procedure = (m: (typeof METHODS)[number]) => `/${m.parent.typeName}/${m.name}`;

let requests = 0;
const counts = new Map<string, number>();
function tally(kind: string, status: number | string): void {
  requests++;
  const key = `${kind} ${status}`;
  counts.set(key, (counts.get(key) ?? 0) + 1);
}

// --- request pieces ---------------------------------------------------------------------

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");
const percentEncoded = (bytes: Uint8Array) => [...bytes].map((b) => "%" + b.toString(16).padStart(2, "0").toUpperCase()).join("");

const pathSegment: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    "%", "%zz", "%0", "%00", "%FF", "%E2%82", "%C0%AF", "%ED%A0%80", "..", ".", "", "%2F", "%2e%2e", "%252F", ":", "::",
    "a:b", "%3A", "~", "'", "\"", "<>", "{id}", "*", "**", ";", "=", "@", "session_", "agent_x", "%27%20OR%201%3D1--",
  ),
  fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => `session_${hex(b)}`),
  fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => `agent_${hex(b)}`),
  fc.uint8Array({ maxLength: 12 }).map(percentEncoded),
  hostileString.filter((s) => s.length < 200).map((s) => encodeURIComponent(s.toWellFormed())),
);

const restPath: fc.Arbitrary<string> = fc.oneof(
  { weight: 5, arbitrary: fc.tuple(
      fc.constantFrom("/v1/sessions/", "/v1/agents/"),
      pathSegment,
      fc.constantFrom("", ":start", ":complete", ":fail", ":cancel", ":recordUsage", ":bogus", ":", "/runtime", "/", "/x/y"),
    ).map((parts) => parts.join("")) },
  { weight: 2, arbitrary: fc.constantFrom(
      "/v1/sessions", "/v1/agents", "/", "//v1//sessions", "/v1/sessions/", "/v1", "/v1/sessions/..", "/v1/sessions/../agents",
      "/v1/./sessions", "/%2e%2e/v1/sessions", "/v1/sessions%2F", "/sessions.v1.SessionService/", "/sessions.v1.SessionService/Nope",
      "/v1/sessions/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/v1/sessions/:start", "/v1/sessions/session_:start",
    ) },
  { weight: 2, arbitrary: fc.array(pathSegment, { maxLength: 6 }).map((segments) => "/" + segments.join("/")) },
  { weight: 1, arbitrary: fc.integer({ min: 1000, max: 6000 }).map((n) => "/v1/sessions/" + "a".repeat(n)) },
);

const queryPair: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    "page_size=-1", "page_size=abc", "page_size=99999999999", "page_size=1000", "page_size=1.5", "tag=%FF", "tag=%zz",
    "tag=%E2%82", "status=BOGUS", "status=SESSION_STATUS_RUNNING", "status=1&status=1", "status=99", "created_after=yesterday",
    "created_before=9999-12-31T23:59:59Z", "created_after=0000-01-01T00:00:00Z", "tag=%27%20OR%201%3D1%20--", "%zz=1", "a=%",
    "=", "&&", "page_token=garbage", "page_token=" + "A".repeat(3000), "update_mask=id,title", "update_mask=%00",
    "etag=x", "agent_id=%00", "agent_id=%27", "tag=" + "t".repeat(2000), "__proto__=1", "constructor.prototype=1", "tag=a+b",
  ),
  fc.tuple(pathSegment, pathSegment).map(([k, v]) => `${k}=${v}`),
);
const restQuery = fc.oneof(fc.constant(""), fc.array(queryPair, { maxLength: 5 }).map((pairs) => "?" + pairs.join("&")));

/** Content types that are not the protocol's own: odd parameters, other media types, none. */
const WEIRD_CONTENT_TYPES = [
  "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/json; charset=utf-16",
  "application/JSON", "application/json;;;", 'application/json; charset="utf-8"', "*/*", "application/xml",
  "application/protobuf", "application/x-protobuf", "application/proto; charset=utf-8", "application/json\u00e9", " ",
];

const latin1Junk = fc.uint8Array({ maxLength: 64 }).map((b) =>
  // Header values may hold any byte but control characters (obs-text included).
  Buffer.from(b.map((x) => (x < 0x20 || x === 0x7f ? 0x41 : x))).toString("latin1"),
);

const oddHeader: fc.Arbitrary<[string, string]> = fc.oneof(
  fc.integer({ min: 100, max: 6000 }).map((n): [string, string] => ["x-fuzz", "v".repeat(n)]),
  latin1Junk.map((v): [string, string] => ["x-fuzz-latin1", v]),
  fc.constantFrom<[string, string]>(
    ["authorization", "Bearer ' OR 1=1 --"], ["authorization", "Basic %%%"], ["authorization", "Bearer"],
    ["connect-protocol-version", "2"], ["connect-protocol-version", "abc"], ["connect-timeout-ms", "abc"],
    ["connect-timeout-ms", "-1"], ["connect-timeout-ms", "99999999999"], ["grpc-timeout", "garbage"],
    ["grpc-timeout", "99999999999H"], ["accept", "*/*"], ["x-forwarded-for", "' OR 1=1"], ["cookie", "a=%zz; b"],
    ["expect", "100-continue"], ["content-language", "\u00ff\u00fe"], ["x-request-id", "'; DROP TABLE sessions; --"],
  ),
);

/** Mostly the protocol's content type, sometimes a weird one or none, plus a few odd headers. */
function headersWith(contentTypes: readonly string[]): fc.Arbitrary<Record<string, string>> {
  return fc
    .record({
      contentType: fc.oneof(
        { weight: 8, arbitrary: fc.constantFrom<string | undefined>(...contentTypes) },
        { weight: 2, arbitrary: fc.constantFrom<string | undefined>(...WEIRD_CONTENT_TYPES) },
        { weight: 1, arbitrary: fc.constant(undefined) },
      ),
      extra: fc.array(oddHeader, { maxLength: 3 }),
    })
    .map(({ contentType, extra }) => ({ ...Object.fromEntries(extra), ...(contentType === undefined ? {} : { "content-type": contentType }) }));
}

/** Compresses (or pretends to) a body and names it in the header given. */
const compression = fc.constantFrom("none", "none", "none", "gzip", "gzip-truncated", "gzip-garbage", "br-garbage", "identity");
function compress(body: Buffer, how: string, header: string, headers: Record<string, string>): Buffer {
  switch (how) {
    case "gzip":
      headers[header] = "gzip";
      return gzipSync(body);
    case "gzip-truncated":
      headers[header] = "gzip";
      return gzipSync(body).subarray(0, 12);
    case "gzip-garbage":
      headers[header] = "gzip";
      return body;
    case "br-garbage":
      headers[header] = "br";
      return body;
    case "identity":
      headers[header] = "identity";
      return body;
    default:
      return body;
  }
}

// --- answer checks ------------------------------------------------------------------------

/** The body, uncompressed: Connect answers a compressed request in kind when it is over 1 KiB. */
function bodyOf(res: RawResponse): Buffer {
  const encoding = res.headers["content-encoding"];
  return encoding === "gzip" ? gunzipSync(res.body) : encoding === "br" ? brotliDecompressSync(res.body) : res.body;
}

function jsonOf(res: RawResponse): Record<string, unknown> {
  expect(res.headers["content-type"], `content-type of a ${res.status}`).toBe("application/json");
  const json: unknown = JSON.parse(bodyOf(res).toString("utf8"));
  expect(json).toBeTypeOf("object");
  return json as Record<string, unknown>;
}

/** REST: 4xx with google.rpc.Status JSON whose code fits the status; 2xx only where a request can be valid. */
function expectRestAnswer(res: RawResponse, maySucceed: boolean): void {
  expect(res.status, res.body.toString().slice(0, 300)).toBeLessThan(500);
  if (res.status < 300) {
    expect(maySucceed, `unexpected ${res.status}: ${res.body.toString().slice(0, 300)}`).toBe(true);
    jsonOf(res);
    return;
  }
  expect(res.status).toBeGreaterThanOrEqual(400);
  const body = jsonOf(res);
  expect(Object.keys(body).sort()).toEqual(["code", "details", "message"]);
  expect(body.code).toBeTypeOf("number");
  expect(body.message).toBeTypeOf("string");
  expect(Array.isArray(body.details)).toBe(true);
  const override: Record<number, number> = { 405: 12, 413: 8, 415: 3 };
  if (override[res.status] !== undefined) expect(body.code).toBe(override[res.status]);
  else expect(httpStatusOf(body.code as number)).toBe(res.status);
}

/** Connect unary: 4xx with `{"code","message"}` (and details) whose code fits the status. */
function expectConnectAnswer(res: RawResponse, maySucceed: boolean): void {
  expect(res.status, res.body.toString().slice(0, 300)).toBeLessThan(500);
  if (res.status < 300) {
    expect(maySucceed, `unexpected ${res.status}: ${res.body.toString().slice(0, 300)}`).toBe(true);
    return;
  }
  expect(res.status).toBeGreaterThanOrEqual(400);
  const body = jsonOf(res);
  expect(["code", "message"].every((k) => k in body) && Object.keys(body).every((k) => ["code", "message", "details"].includes(k))).toBe(true);
  expect(body.message).toBeTypeOf("string");
  const code = codeFromString(body.code as string);
  expect(code, `code ${String(body.code)}`).toBeDefined();
  if (res.status === 405) expect(body.code).toBe("unimplemented");
  else if (res.status === 415) expect(body.code).toBe("invalid_argument");
  else expect(codeToHttpStatus(code!)).toBe(res.status);
}

/** gRPC and gRPC-Web: a status in the trailers that blames the request (or OK where it can be valid). */
function expectGrpcStatus(status: string | undefined, message: string | undefined, maySucceed: boolean): void {
  expect(status, "grpc-status").toMatch(/^\d+$/);
  const code = Number(status);
  const text = decodeURIComponent(message ?? "");
  expect(SERVER_FAULT_CODES.has(code) && !(code === 12 && CARDINALITY.test(text)), `grpc-status ${code}: ${text}`).toBe(false);
  if (code === 0) expect(maySucceed).toBe(true);
}

function grpcWebTrailer(res: RawResponse): { status?: string; message?: string } {
  if (res.headers["grpc-status"] !== undefined) {
    return { status: String(res.headers["grpc-status"]), message: res.headers["grpc-message"] as string | undefined };
  }
  const { frames, rest } = splitEnvelopes(res.body);
  expect(rest.length).toBe(0);
  const trailer = frames.at(-1);
  // 0x80 marks the trailer frame; 0x01 says it is compressed (a long message, with grpc-encoding).
  expect(trailer?.flags === 0x80 || trailer?.flags === 0x81, `trailer frame flags ${trailer?.flags}`).toBe(true);
  const payload = trailer!.flags === 0x81 ? gunzipSync(trailer!.payload) : trailer!.payload;
  const text = payload.toString("latin1");
  return { status: /^grpc-status: ?(\d+)\r$/im.exec(text)?.[1], message: /^grpc-message: ?(.*)\r$/im.exec(text)?.[1] };
}

// --- the run ------------------------------------------------------------------------------

describe("fuzzing every protocol with hostile requests", () => {
  let server: TestServer;
  let agent: http.Agent;
  let h2: http2.ClientHttp2Session;
  let started = 0;
  const before = new Map<string, unknown>();
  const consoleErrors = vi.spyOn(console, "error");

  beforeAll(async () => {
    server = await startTestServer();
    await seedTestAgent(server.store, FUZZ_AGENT_ID);
    agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    h2 = http2.connect(server.url);
    h2.on("error", () => {});

    // Sessions in every state, with the kinds of content a careless path could change.
    const fixtures = [
      { title: "plain", tags: ["a"] },
      { title: "quotes ' \" ` and ; -- /* */", tags: ["it's", "\"q\"", "%' OR '1'='1"] },
      { title: "🚀 émoji ñ 中文 \u202E", tags: ["ü", "🚀"], capabilities: [{ capability_id: "web.search", config: { deep: nested(30, "mixed") } }] },
      { title: "", tags: [], capabilities: [{ capability_id: "x:y", config: { n: 1.5, s: "'; DROP TABLE sessions; --", l: [null, true] } }] },
    ];
    const moves = ["", ":start", ":cancel", "fail"];
    for (const [i, fixture] of fixtures.entries()) {
      for (const move of moves) {
        const created = await requestJson(`${server.url}/v1/sessions`, { body: { agent_id: AGENT_ID, ...fixture } });
        expect(created.status).toBe(201);
        const id = created.body.id as string;
        if (move === "fail") {
          await requestJson(`${server.url}/v1/sessions/${id}:start`, { body: {} });
          await requestJson(`${server.url}/v1/sessions/${id}:recordUsage`, {
            body: { input_tokens: String(10 + i), output_tokens: "7", prompt_preview: "p'; --", response_preview: "r" },
          });
          await requestJson(`${server.url}/v1/sessions/${id}:fail`, { body: { error: "boom ' OR 1=1" } });
        } else if (move !== "") {
          expect((await requestJson(`${server.url}/v1/sessions/${id}${move}`, { body: {} })).status).toBe(200);
        }
      }
    }
    for (const path of ["/v1/sessions?page_size=1000", `/v1/agents/${AGENT_ID}`]) {
      const res = await requestJson(`${server.url}${path}`);
      expect(res.status).toBe(200);
      before.set(path, res.body);
    }
    for (const session of (before.get("/v1/sessions?page_size=1000") as { sessions: Array<{ id: string }> }).sessions) {
      before.set(`/v1/sessions/${session.id}`, (await requestJson(`${server.url}/v1/sessions/${session.id}`)).body);
    }
    before.delete("/v1/sessions?page_size=1000");
    consoleErrors.mockClear();
    started = Date.now();
  });

  afterAll(async () => {
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    const table = [...counts].sort().map(([key, n]) => `  ${key}: ${n}`).join("\n");
    console.log(`fuzz: ${requests} requests in ${seconds} s (seed ${SEED})\n${table}`);
    consoleErrors.mockRestore();
    h2?.close();
    agent?.destroy();
    await server?.close();
  });

  const run = <T>(arbitrary: fc.Arbitrary<T>, numRuns: number, check: (value: T) => Promise<void>) =>
    fc.assert(fc.asyncProperty(arbitrary, check), { numRuns, seed: SEED, endOnFailure: true });

  it("REST answers every request with a 4xx and google.rpc.Status JSON", { timeout: 60_000 }, async () => {
    const request = fc.record({
      method: fc.constantFrom("GET", "GET", "POST", "POST", "PATCH", "DELETE", "PUT", "OPTIONS"),
      path: restPath,
      query: restQuery,
      headers: headersWith(["application/json", "application/json; charset=utf-8"]),
      host: fc.option(fc.constantFrom("a b", "", "[::1", "exa mple:99999", "h\u00e9"), { freq: 20 }),
      body: fc.option(hostileJsonBody, { freq: 4 }),
    });
    await run(request, 2500, async ({ method, path, query, headers, host, body }) => {
      // Node's parser answers 431, bodiless, past 16 KiB of request line and headers; test/hostile-http.test.ts covers that.
      fc.pre(path.length + query.length + Object.values(headers).join("").length < 12_000);
      const hs = { ...headers, ...(host === null ? {} : { host }) };
      const res = await sendH1(server.url, agent, { method, path: path + query, headers: hs, body: body ?? undefined }, TIMEOUT_MS);
      tally("REST", res.status);
      // GET / is the console's page (whatever the query), served before REST.
      if (method === "GET" && path === "/" && res.status === 200) {
        expect(res.headers["content-type"]).toBe("text/html; charset=utf-8");
        return;
      }
      const listing = method === "GET" && (path === "/v1/sessions" || path === "/v1/agents");
      const creating = method === "POST" && (path === "/v1/sessions" || path === "/v1/agents");
      expectRestAnswer(res, listing || creating);
    });
  });

  /** Connect unary over HTTP/1.1 or HTTP/2. */
  const connectCall = fc.record({
    method: fc.constantFrom(...UNARY_METHODS),
    h2: fc.boolean(),
    compression,
  });
  const sendConnect = (useH2: boolean, request: RawRequest) =>
    useH2 ? sendH2(h2, request, TIMEOUT_MS) : sendH1(server.url, agent, request, TIMEOUT_MS);

  it("Connect JSON answers every request with a 4xx and Connect's error JSON", { timeout: 60_000 }, async () => {
    const request = fc.record({ call: connectCall, headers: headersWith(["application/json", "application/json; charset=utf-8"]), body: hostileJsonBody });
    await run(request, 1200, async ({ call, headers, body }) => {
      const hs = { ...headers };
      const sent = compress(body, call.compression, "content-encoding", hs);
      const res = await sendConnect(call.h2, { method: "POST", path: procedure(call.method), headers: hs, body: sent });
      tally("Connect JSON", res.status);
      expectConnectAnswer(res, maySucceed(call.method, body));
    });
  });

  it("Connect binary answers every request with a 4xx and Connect's error JSON", { timeout: 60_000 }, async () => {
    const request = fc.record({ call: connectCall, headers: headersWith(["application/proto"]), body: hostileProtoBody });
    await run(request, 1200, async ({ call, headers, body }) => {
      const hs = { ...headers };
      const sent = compress(body, call.compression, "content-encoding", hs);
      const res = await sendConnect(call.h2, { method: "POST", path: procedure(call.method), headers: hs, body: sent });
      tally("Connect binary", res.status);
      expectConnectAnswer(res, maySucceed(call.method, body));
    });
  });

  it("Connect GET answers every query with a 4xx and Connect's error JSON", { timeout: 60_000 }, async () => {
    const message: fc.Arbitrary<{ encoding: string; message: string; base64: string; raw?: Buffer }> = fc.oneof(
      hostileJsonBody.filter((b) => b.length < 2000).map((b) => ({ encoding: "json", message: percentEncoded(b), base64: "", raw: b })),
      hostileProtoBody.filter((b) => b.length < 2000).map((b) => ({ encoding: "proto", message: b.toString("base64url"), base64: "1", raw: b })),
      fc.constantFrom(
        { encoding: "proto", message: "%zz", base64: "1" },
        { encoding: "proto", message: "!!!not-base64", base64: "1" },
        { encoding: "json", message: "%FF%FE", base64: "" },
        { encoding: "json", message: "e30", base64: "1" },
        { encoding: "xml", message: "", base64: "" },
        { encoding: "", message: "", base64: "" },
      ),
    );
    const request = fc.record({
      method: fc.constantFrom(...UNARY_METHODS),
      message,
      extra: fc.constantFrom("", "&connect=v1", "&connect=v2", "&compression=gzip", "&compression=identity", "&base64=x", "&%zz"),
    });
    await run(request, 400, async ({ method, message, extra }) => {
      const query = `encoding=${message.encoding}&message=${message.message}${message.base64 ? "&base64=1" : ""}${extra}`;
      const res = await sendH1(server.url, agent, { method: "GET", path: `${procedure(method)}?${query}`, headers: {} }, TIMEOUT_MS);
      tally("Connect GET", res.status);
      expectConnectAnswer(res, method.name.startsWith("List") || (message.raw?.includes(FUZZ_AGENT_ID) ?? false));
    });
  });

  /** Envelopes with flags a client may or may not send, and lengths that lie. */
  const framed = (payload: fc.Arbitrary<Buffer>) =>
    fc
      .record({
        payload,
        flags: fc.constantFrom(0, 0, 0, 1, 2, 0x80, 0xff),
        lie: fc.constantFrom(0, 0, 0, -1, 1, 1000),
        extra: fc.constantFrom(0, 0, 0, 1, 2),
      })
      .map(({ payload, flags, lie, extra }) => {
        const frames = [envelope(flags, payload, Math.max(0, payload.length + lie))];
        for (let i = 0; i < extra; i++) frames.push(envelope(0, payload));
        return Buffer.concat(frames);
      });

  it("Connect streaming (WatchSession) ends every hostile stream with a client error", { timeout: 60_000 }, async () => {
    const watch = SessionService.method.watchSession;
    const request = fc.oneof(
      fc.record({ contentType: fc.constant("application/connect+proto"), body: framed(hostileProtoBody) }),
      fc.record({ contentType: fc.constant("application/connect+json"), body: framed(hostileJsonBody) }),
    );
    await run(request, 300, async ({ contentType, body }) => {
      const res = await sendH1(server.url, agent, { method: "POST", path: procedure(watch), headers: { "content-type": contentType }, body }, TIMEOUT_MS);
      tally("Connect stream", res.status);
      if (res.status !== 200) {
        expectConnectAnswer(res, false);
        return;
      }
      const { frames } = splitEnvelopes(res.body);
      const end = frames.at(-1);
      expect(end?.flags, "end-stream frame").toBe(0x02);
      const error = (JSON.parse(end!.payload.toString("utf8")) as { error?: { code?: string; message?: string } }).error;
      expect(error?.message).toBeTypeOf("string");
      const code = codeFromString(error!.code!);
      expect(code).toBeDefined();
      expect(SERVER_FAULT_CODES.has(code!) && !(code === 12 && CARDINALITY.test(error!.message!)), `${error!.code}: ${error!.message}`).toBe(false);
    });
  });

  it("gRPC-Web ends every hostile call with a client-error status in the trailer frame", { timeout: 60_000 }, async () => {
    const request = fc.record({
      method: fc.constantFrom(...METHODS),
      contentType: fc.constantFrom("application/grpc-web", "application/grpc-web+proto"),
      encoding: fc.constantFrom(undefined, undefined, "gzip", "identity"),
      body: framed(hostileProtoBody),
    });
    await run(request, 700, async ({ method, contentType, encoding, body }) => {
      const headers: Record<string, string> = { "content-type": contentType, "x-grpc-web": "1", ...(encoding ? { "grpc-encoding": encoding } : {}) };
      const res = await sendH1(server.url, agent, { method: "POST", path: procedure(method), headers, body }, TIMEOUT_MS);
      expect(res.status).toBe(200);
      const { status, message } = grpcWebTrailer(res);
      tally("gRPC-Web", `grpc-status ${status}`);
      expectGrpcStatus(status, message, maySucceed(method, body));
    });
  });

  it("gRPC over HTTP/2 ends every hostile call with a client-error status", { timeout: 60_000 }, async () => {
    const request = fc.record({
      method: fc.constantFrom(...METHODS),
      contentType: fc.constantFrom("application/grpc", "application/grpc+proto"),
      encoding: fc.constantFrom(undefined, undefined, "gzip", "identity"),
      body: framed(hostileProtoBody),
    });
    await run(request, 700, async ({ method, contentType, encoding, body }) => {
      const headers: Record<string, string> = { "content-type": contentType, te: "trailers", ...(encoding ? { "grpc-encoding": encoding } : {}) };
      const res = await sendH2(h2, { method: "POST", path: procedure(method), headers, body }, TIMEOUT_MS);
      expect(res.status).toBe(200);
      const status = res.trailers["grpc-status"] ?? res.headers["grpc-status"];
      const message = res.trailers["grpc-message"] ?? res.headers["grpc-message"];
      tally("gRPC", `grpc-status ${String(status)}`);
      expectGrpcStatus(status as string | undefined, message as string | undefined, maySucceed(method, body));
    });
  });

  it("leaves the server up, nothing logged as internal, the database sound and earlier sessions unchanged", { timeout: 60_000 }, async () => {
    expect(requests).toBeGreaterThanOrEqual(3000);
    expect((await requestJson(`${server.url}/v1/sessions?page_size=1`)).status).toBe(200);
    expect(server.logs.filter((line) => (line.level as number) >= 50)).toEqual([]);
    expect(consoleErrors).not.toHaveBeenCalled();
    expect((server.store as SqliteStore).db.pragma("integrity_check")).toEqual([{ integrity_check: "ok" }]);
    for (const [path, body] of before) {
      const now = await requestJson(`${server.url}${path}`);
      expect(now.status, path).toBe(200);
      expect(now.body, path).toStrictEqual(body);
    }
  });

  it("leaves every session readable over every RPC protocol, the fuzz's own creations included", { timeout: 60_000 }, async () => {
    const total = (server.store as SqliteStore).db.prepare("SELECT count(*) AS n FROM sessions").get() as { n: number };
    for (const transport of RPC_TRANSPORTS) {
      const client = createClient(SessionService, transport.create(server.url));
      let seen = 0;
      let pageToken = "";
      do {
        const page = await client.listSessions({ pageSize: 1000, pageToken });
        seen += page.sessions.length;
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
      expect(seen, transport.name).toBe(total.n);
    }
  });
});
