import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import { gzipSync } from "node:zlib";
import { createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SessionService } from "../gen/sessions/v1/session_service_pb.js";
import { AGENT_ID, requestJson, startTestServer, type TestServer } from "./helpers/server.js";
import { RPC_TRANSPORTS } from "./helpers/rpc-transports.js";
import { envelope, sendH1, sendH2, splitEnvelopes } from "./helpers/raw-requests.js";
import { nested } from "./helpers/hostile-input.js";

/**
 * Each hostile request the fuzz test (fuzz.test.ts) found mishandled, pinned with its exact
 * answer: a crash, a 500, a silent U+FFFD, an empty 405/415, a stalled HTTP/2 connection.
 */

const CREATE = "/sessions.v1.SessionService/CreateSession";
const GET = "/sessions.v1.SessionService/GetSession";
const WATCH = "/sessions.v1.SessionService/WatchSession";
const TRUNCATED = Buffer.from([0x0a, 0x05, 0x61]); // field 1 promises 5 bytes and gives 1
const tag = (field: number, wireType: number) => Buffer.from([(field << 3) | wireType]);
/** Unknown groups (field 9) nested 101 deep: one more than protobuf's recursion limit. */
const DEEP_GROUPS = Buffer.concat([...Array(101).fill(tag(9, 3)), ...Array(101).fill(tag(9, 4))]);
const INVALID_UTF8 = Buffer.from([0x0a, 0x02, 0xff, 0xfe]);

/** Raw bytes over a socket of its own; resolves with everything the server sent before closing. */
function rawExchange(server: TestServer, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(server.port, "127.0.0.1", () => socket.end(text));
    let received = "";
    socket.on("data", (chunk) => (received += chunk.toString("latin1")));
    socket.on("close", () => resolve(received));
    socket.on("error", reject);
  });
}

describe("hostile HTTP requests", () => {
  let server: TestServer;
  let agent: http.Agent;
  beforeAll(async () => {
    server = await startTestServer();
    agent = new http.Agent({ keepAlive: true });
  });
  afterAll(async () => {
    agent.destroy();
    await server.close();
  });

  const post = (path: string, contentType: string | undefined, body: Buffer, headers: Record<string, string> = {}) =>
    sendH1(server.url, agent, { method: "POST", path, headers: { ...(contentType ? { "content-type": contentType } : {}), ...headers }, body }, 5000);
  const json = (body: Buffer) => JSON.parse(body.toString("utf8")) as unknown;

  describe("a request that names no usable host", () => {
    it.each([
      ["HTTP/1.0 without Host, to an RPC path", `POST ${GET} HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`, "the request names no host"],
      ["Host: a b", `POST ${GET} HTTP/1.1\r\nHost: a b\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`, "the Host header is not a valid host"],
      ["Host: [::1", `GET /v1/sessions HTTP/1.1\r\nHost: [::1\r\nConnection: close\r\n\r\n`, "the Host header is not a valid host"],
      ["two Host headers", `GET /v1/sessions HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nConnection: close\r\n\r\n`, "the request has more than one Host header"],
    ])("%s is 400 with a JSON error, and the server stays up", async (_, request, message) => {
      // Before: connect-node threw out of the request listener, and the process ended.
      const answer = await rawExchange(server, request);
      expect(answer).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
      expect(answer).toContain("Content-Type: application/json\r\n");
      expect(answer.slice(answer.indexOf("\r\n\r\n") + 4)).toBe(JSON.stringify({ code: 3, message, details: [] }));
      expect((await requestJson(`${server.url}/v1/sessions`)).status).toBe(200);
    });
  });

  it("answers a request line and headers over 16 KiB with Node's bodiless 431, and stays up", async () => {
    const res = await sendH1(server.url, agent, { method: "GET", path: "/v1/sessions/" + "a".repeat(17 * 1024), headers: {} }, 5000);
    expect(res.status).toBe(431);
    expect(res.body.length).toBe(0);
    expect((await requestJson(`${server.url}/v1/sessions`)).status).toBe(200);
  });

  describe("protobuf that does not decode is invalid_argument, not internal", () => {
    it.each([
      ["truncated", TRUNCATED, "parse binary: premature EOF"],
      ["nested deeper than 100", DEEP_GROUPS, "parse binary: maximum recursion depth reached"],
      ["invalid UTF-8 in a string", INVALID_UTF8, "parse binary: The encoded data was not valid for encoding utf-8"],
    ])("%s: Connect answers 400", async (_, bytes, message) => {
      const res = await post(CREATE, "application/proto", bytes);
      expect(res.status).toBe(400);
      expect(json(res.body)).toEqual({ code: "invalid_argument", message });
    });

    it("truncated, in a Connect GET: 400", async () => {
      const res = await sendH1(server.url, agent, { method: "GET", path: `${GET}?encoding=proto&base64=1&message=${TRUNCATED.toString("base64url")}`, headers: {} }, 5000);
      expect(res.status).toBe(400);
      expect(json(res.body)).toEqual({ code: "invalid_argument", message: "parse binary: premature EOF" });
    });

    it("truncated, over gRPC-Web: grpc-status 3 in the trailer frame", async () => {
      const res = await post(CREATE, "application/grpc-web+proto", envelope(0, TRUNCATED));
      expect(res.status).toBe(200);
      expect(splitEnvelopes(res.body).frames.map((f) => ({ flags: f.flags, text: f.payload.toString("latin1") }))).toEqual([
        { flags: 0x80, text: "grpc-message: parse%20binary%3A%20premature%20EOF\r\ngrpc-status: 3\r\n" },
      ]);
    });

    it("truncated, over gRPC: grpc-status 3 in the trailers", async () => {
      const session = http2.connect(server.url);
      try {
        const res = await sendH2(session, { method: "POST", path: CREATE, headers: { "content-type": "application/grpc", te: "trailers" }, body: envelope(0, TRUNCATED) }, 5000);
        expect(res.trailers["grpc-status"]).toBe("3");
        expect(res.trailers["grpc-message"]).toBe("parse%20binary%3A%20premature%20EOF");
      } finally {
        session.close();
      }
    });

    it("truncated, over Connect streaming: an invalid_argument end-stream", async () => {
      const res = await post(WATCH, "application/connect+proto", envelope(0, TRUNCATED));
      expect(res.status).toBe(200);
      const frames = splitEnvelopes(res.body).frames;
      expect(frames.map((f) => ({ flags: f.flags, json: json(f.payload) }))).toEqual([
        { flags: 0x02, json: { error: { code: "invalid_argument", message: "parse binary: premature EOF" } } },
      ]);
    });

    it("an envelope flagged compressed without an encoding: grpc-status 3", async () => {
      const res = await post(CREATE, "application/grpc-web+proto", envelope(1, TRUNCATED));
      expect(res.body.toString("latin1")).toContain("grpc-status: 3\r\n");
    });

    it("gzip that ends early: Connect answers 400", async () => {
      const res = await post(CREATE, "application/proto", gzipSync(Buffer.from("0123456789")).subarray(0, 12), { "content-encoding": "gzip" });
      expect(res.status).toBe(400);
      expect(json(res.body)).toEqual({ code: "invalid_argument", message: "decompression failed" });
    });
  });

  describe("invalid UTF-8 and percent-encoding are refused, never replaced by U+FFFD", () => {
    it("in a Connect JSON body", async () => {
      const body = Buffer.concat([Buffer.from(`{"agentId":"${AGENT_ID}","title":"`), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]);
      const res = await post(CREATE, "application/json", body);
      expect(res.status).toBe(400);
      expect(json(res.body)).toEqual({ code: "invalid_argument", message: "The encoded data was not valid for encoding utf-8" });
    });

    it.each([
      ["%FF", `${GET}?encoding=json&message=%7B%22id%22%3A%22%FF%22%7D`, 'invalid query parameter "message": malformed percent-encoding or invalid UTF-8'],
      ["%zz", `${GET}?encoding=json&message=%zz`, 'invalid query parameter "message": malformed percent-encoding or invalid UTF-8'],
      ["bad base64", `${GET}?encoding=proto&base64=1&message=!!!`, 'query parameter "message" is not valid base64'],
    ])("in a Connect GET query (%s): 400", async (_, path, message) => {
      const res = await sendH1(server.url, agent, { method: "GET", path, headers: {} }, 5000);
      expect(res.status).toBe(400);
      expect(json(res.body)).toEqual({ code: "invalid_argument", message });
    });

    it.each(["tag=%FF", "tag=%E2%82", "tag=%zz", "%zz=1", "tag=%"])("in a REST query (%s): 400 naming the parameter", async (query) => {
      const res = await requestJson(`${server.url}/v1/sessions?${query}`);
      expect(res.status).toBe(400);
      const name = query.startsWith("%zz") ? "%zz" : "tag";
      expect(res.body).toEqual({ code: 3, message: `invalid query parameter "${name}": malformed percent-encoding or invalid UTF-8`, details: [] });
    });

    it("but takes a well-formed REST query as before: + is a space, %2B a plus", async () => {
      const res = await requestJson(`${server.url}/v1/sessions?tag=a+b&tag=c%2Bd&tag=%C3%A9`);
      expect(res.status).toBe(200);
    });
  });

  describe("Connect's bodiless 405 and 415 carry Connect's JSON error", () => {
    it("405 names the allowed methods in Allow and in the message", async () => {
      const put = await sendH1(server.url, agent, { method: "PUT", path: GET, headers: { "content-type": "application/json" }, body: Buffer.from("{}") }, 5000);
      expect(put.status).toBe(405);
      expect(put.headers.allow).toBe("GET, POST");
      expect(json(put.body)).toEqual({ code: "unimplemented", message: `method PUT is not allowed for ${GET}: use GET or POST` });
      const get = await sendH1(server.url, agent, { method: "GET", path: `${CREATE}?encoding=json&message={}`, headers: {} }, 5000);
      expect(get.status).toBe(405);
      expect(get.headers.allow).toBe("POST");
      // WatchSession has no side effects, but Connect serves GET for unary methods only.
      const watch = await sendH1(server.url, agent, { method: "PUT", path: WATCH, headers: {} }, 5000);
      expect(watch.status).toBe(405);
      expect(watch.headers.allow).toBe("POST");
    });

    it("415 names the content type and the ones served", async () => {
      const res = await post(CREATE, "text/plain", Buffer.from("{}"));
      expect(res.status).toBe(415);
      expect(json(res.body)).toEqual({
        code: "invalid_argument",
        message:
          `unsupported Content-Type "text/plain" for ${CREATE}: send application/json or application/proto (Connect), ` +
          "application/grpc (gRPC over HTTP/2) or application/grpc-web",
      });
    });
  });

  describe("capability configs are bounded at 32 levels, so every decoder can read what was stored", () => {
    /** A config `depth` levels deep: an object around objects and arrays in turn. */
    const body = (depth: number) => ({ agent_id: AGENT_ID, capabilities: [{ capability_id: "x", config: { k: nested(depth - 1, "mixed", "leaf") } }] });

    it("refuses 33 levels over REST and Connect", async () => {
      // Before: REST took up to ~97 levels; a session at 60 made every binary client's
      // GetSession and ListSessions fail with "maximum recursion depth" from then on.
      const violation = "capabilities[0].config must nest at most 32 levels of objects and arrays, got 33";
      const rest = await requestJson(`${server.url}/v1/sessions`, { body: body(33) });
      expect(rest.status).toBe(400);
      expect(rest.body.message).toBe(violation);
      const connect = await post(CREATE, "application/json", Buffer.from(JSON.stringify(body(33))));
      expect(connect.status).toBe(400);
      expect((json(connect.body) as { message: string }).message).toBe(violation);
    });

    it("stores 32 levels, readable by every RPC protocol", async () => {
      const created = await requestJson(`${server.url}/v1/sessions`, { body: body(32) });
      expect(created.status).toBe(201);
      for (const transport of RPC_TRANSPORTS) {
        const client = createClient(SessionService, transport.create(server.url));
        const session = await client.getSession({ id: created.body.id });
        expect(session.capabilities[0]!.config, transport.name).toEqual(body(32).capabilities[0]!.config);
        await client.listSessions({ pageSize: 1000 });
      }
    });
  });

  describe("an HTTP/2 call refused before its upload ended does not stall the connection", () => {
    const garbage = (n: number) => Buffer.alloc(n, 0x7b);
    /** A GetSessionRequest of id "a" with an unknown 140,000-byte field 2 (varint 0xE0 0xC5 0x08). */
    const padded = Buffer.concat([Buffer.from([0x0a, 1, 0x61, 0x12, 0xe0, 0xc5, 0x08]), Buffer.alloc(140_000)]);
    it.each([
      ["gRPC, a bad first message and 100 KB more", CREATE, "application/grpc", Buffer.concat([envelope(0, garbage(1000)), envelope(0, garbage(100_000))]), "3"],
      ["gRPC, a unary call with three 140 KB messages", GET, "application/grpc", Buffer.concat([padded, padded, padded].map((m) => envelope(0, m))), "12"],
      ["Connect, 2 MiB over the limit", CREATE, "application/json", garbage(2 * 1024 * 1024), undefined],
    ])("%s: three in a row on one connection are all answered", async (_, path, contentType, body, grpcStatus) => {
      // Before: connect-node's early exit from reading destroyed the request, Node never
      // returned the connection's flow-control window, and the next call hung for good.
      const session = http2.connect(server.url);
      try {
        for (let i = 0; i < 3; i++) {
          const res = await sendH2(session, { method: "POST", path, headers: { "content-type": contentType, te: "trailers" }, body }, 5000);
          if (grpcStatus) expect(res.trailers["grpc-status"] ?? res.headers["grpc-status"]).toBe(grpcStatus);
          else expect(res.status).toBe(429);
        }
      } finally {
        session.close();
      }
    });
  });
});
