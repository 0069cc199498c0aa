import * as http2 from "node:http2";
import * as net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_ORG_ID, startTestServer, type TestServer } from "./helpers/server.js";
import { insertTestKey, type TestKey } from "./helpers/keys.js";
import { splitEnvelopes } from "./helpers/raw-requests.js";

/**
 * On a keyed server, a request without a valid key is answered 401 (or its protocol's
 * unauthenticated) from its headers alone: the body it announces is never waited for, on
 * REST, Connect, gRPC and gRPC-Web, over HTTP/1.1 and HTTP/2. Before, the body was read
 * first, so a client that sent headers and no body held its stream open without an answer.
 */

const REALM = 'Bearer realm="sessions"';
const MISSING = "missing API key: send Authorization: Bearer <key>";
const INVALID = "invalid API key";
/** Well past what an answer from the headers takes; the body never comes. */
const ANSWER_WITHIN_MS = 3000;

let server: TestServer;
let key: TestKey;
beforeAll(async () => {
  server = await startTestServer();
  key = await insertTestKey(server.store, DEFAULT_ORG_ID);
});
afterAll(() => server.close());

interface H2Answer {
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders;
  body: Buffer;
}

/** Opens a stream with these headers, sends no body and never ends it; resolves with the answer once it has ended. */
function h2WithoutBody(headers: http2.OutgoingHttpHeaders): Promise<H2Answer> {
  const session = http2.connect(server.url);
  return new Promise<H2Answer>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no answer without the body")), ANSWER_WITHIN_MS);
    const stream = session.request({ ":method": "POST", ...headers }, { endStream: false });
    const answer: H2Answer = { headers: {}, trailers: {}, body: Buffer.alloc(0) };
    const chunks: Buffer[] = [];
    stream.on("response", (h) => (answer.headers = h));
    stream.on("trailers", (t) => (answer.trailers = t));
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("error", () => {});
    stream.on("end", () => {
      clearTimeout(timer);
      answer.body = Buffer.concat(chunks);
      resolve(answer);
    });
  }).finally(() => session.destroy());
}

/**
 * Sends an HTTP/1.1 request head announcing a 100-byte body, and no body; resolves with
 * what arrives until the server closes the connection (it answers with Connection: close,
 * since the body was not read).
 */
function h1WithoutBody(path: string, headers: Record<string, string>, method = "POST"): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(server.port, "127.0.0.1");
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer without the body; got ${JSON.stringify(received)}`));
    }, ANSWER_WITHIN_MS);
    let received = "";
    const head = Object.entries({ host: `127.0.0.1:${server.port}`, "content-length": "100", ...headers })
      .map(([name, value]) => `${name}: ${value}\r\n`)
      .join("");
    socket.write(`${method} ${path} HTTP/1.1\r\n${head}\r\n`);
    socket.on("data", (chunk: Buffer) => (received += chunk.toString("latin1")));
    socket.on("end", () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(received);
    });
    socket.on("error", reject);
  });
}

function bodyOf(answer: string): unknown {
  return JSON.parse(answer.slice(answer.indexOf("\r\n\r\n") + 4));
}

/** The body of a chunked answer, its chunks joined. */
function chunkedBodyOf(answer: string): Buffer {
  let rest = answer.slice(answer.indexOf("\r\n\r\n") + 4);
  const parts: Buffer[] = [];
  for (;;) {
    const lineEnd = rest.indexOf("\r\n");
    const size = parseInt(rest.slice(0, lineEnd), 16);
    if (!(size > 0)) break;
    parts.push(Buffer.from(rest.slice(lineEnd + 2, lineEnd + 2 + size), "latin1"));
    rest = rest.slice(lineEnd + 2 + size + 2);
  }
  return Buffer.concat(parts);
}

describe("HTTP/2, no body sent", () => {
  it("Connect without a key: 401 with WWW-Authenticate and the Connect error", async () => {
    const answer = await h2WithoutBody({ ":path": "/sessions.v1.SessionService/CreateSession", "content-type": "application/json" });
    expect([answer.headers[":status"], answer.headers["www-authenticate"]]).toEqual([401, REALM]);
    expect(JSON.parse(answer.body.toString())).toEqual({ code: "unauthenticated", message: MISSING });
  });

  it("Connect binary with a wrong key: 401 invalid API key", async () => {
    const answer = await h2WithoutBody({
      ":path": "/sessions.v1.AgentService/CreateAgent",
      "content-type": "application/proto",
      authorization: "Bearer sk_0123456789abcdef0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    });
    expect(answer.headers[":status"]).toBe(401);
    expect(JSON.parse(answer.body.toString())).toEqual({ code: "unauthenticated", message: INVALID });
  });

  it("Connect with a gzip Content-Encoding: 401 all the same", async () => {
    const answer = await h2WithoutBody({
      ":path": "/sessions.v1.SessionService/ListSessions",
      "content-type": "application/json",
      "content-encoding": "gzip",
    });
    expect(answer.headers[":status"]).toBe(401);
    expect(JSON.parse(answer.body.toString())).toEqual({ code: "unauthenticated", message: MISSING });
  });

  it("gRPC without a key: grpc-status 16 with the message and www-authenticate", async () => {
    const answer = await h2WithoutBody({
      ":path": "/sessions.v1.SessionService/CreateSession",
      "content-type": "application/grpc",
      te: "trailers",
    });
    const status = { ...answer.headers, ...answer.trailers };
    expect([answer.headers[":status"], status["grpc-status"], decodeURIComponent(String(status["grpc-message"]))]).toEqual([
      200, "16", MISSING,
    ]);
    expect(status["www-authenticate"]).toBe(REALM);
  });

  it("gRPC server streaming (WatchSession) without a key: grpc-status 16", async () => {
    const answer = await h2WithoutBody({
      ":path": "/sessions.v1.SessionService/WatchSession",
      "content-type": "application/grpc+proto",
      te: "trailers",
    });
    expect({ ...answer.headers, ...answer.trailers }["grpc-status"]).toBe("16");
  });

  it("gRPC reflection (a bidi stream) without a key: grpc-status 16", async () => {
    const answer = await h2WithoutBody({
      ":path": "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
      "content-type": "application/grpc",
      te: "trailers",
    });
    expect({ ...answer.headers, ...answer.trailers }["grpc-status"]).toBe("16");
  });

  it("Connect streaming JSON without a key: the end-stream message carries unauthenticated", async () => {
    const answer = await h2WithoutBody({
      ":path": "/sessions.v1.SessionService/WatchSession",
      "content-type": "application/connect+json",
    });
    const { frames } = splitEnvelopes(answer.body);
    expect(frames.map((f) => f.flags)).toEqual([2]);
    expect(JSON.parse(frames[0]!.payload.toString()).error).toEqual({ code: "unauthenticated", message: MISSING });
  });

  it("REST without a key: 401 with the REST error", async () => {
    const answer = await h2WithoutBody({ ":path": "/v1/sessions", "content-type": "application/json" });
    expect([answer.headers[":status"], answer.headers["www-authenticate"]]).toEqual([401, REALM]);
    expect(JSON.parse(answer.body.toString())).toEqual({ code: 16, message: MISSING, details: [] });
  });
});

describe("HTTP/1.1, a body announced and never sent", () => {
  it("REST without a key: 401", async () => {
    const answer = await h1WithoutBody("/v1/sessions", { "content-type": "application/json" });
    expect(answer).toMatch(/^HTTP\/1\.1 401 /);
    expect(answer).toMatch(/\r\nwww-authenticate: Bearer realm="sessions"\r\n/i);
    expect(bodyOf(answer)).toEqual({ code: 16, message: MISSING, details: [] });
  });

  it("REST PATCH with a malformed key: 401", async () => {
    const answer = await h1WithoutBody(
      "/v1/agents/agent_0123456789abcdef0123456789abcdef",
      { "content-type": "application/json", authorization: "Basic abc" },
      "PATCH",
    );
    expect(answer).toMatch(/^HTTP\/1\.1 401 /);
    expect(bodyOf(answer)).toEqual({ code: 16, message: "malformed Authorization header: expected Bearer <key>", details: [] });
  });

  it("Connect without a key: 401", async () => {
    const answer = await h1WithoutBody("/sessions.v1.SessionService/CreateSession", { "content-type": "application/json" });
    expect(answer).toMatch(/^HTTP\/1\.1 401 /);
    expect(bodyOf(answer)).toEqual({ code: "unauthenticated", message: MISSING });
  });

  it("gRPC-Web without a key: grpc-status 16 in the trailer frame", async () => {
    const answer = await h1WithoutBody("/sessions.v1.SessionService/CreateSession", {
      "content-type": "application/grpc-web+proto",
    });
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    const { frames } = splitEnvelopes(chunkedBodyOf(answer));
    expect(frames.map((f) => f.flags)).toEqual([0x80]);
    expect(frames[0]!.payload.toString()).toContain("grpc-status: 16\r\n");
  });
});

describe("with a valid key", () => {
  it("still reads the body: a REST create with a key is served", async () => {
    const res = await fetch(`${server.url}/v1/agents`, {
      method: "POST",
      headers: { authorization: `Bearer ${key.key}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "with key", default_model_id: "model_fedcba9876543210fedcba9876543210" }),
    });
    expect(res.status).toBe(201);
  });
});
