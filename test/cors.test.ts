import * as http from "node:http";
import * as http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CreateSessionRequestSchema } from "../gen/sessions/v1/session_service_pb.js";
import { ConfigError, parseConfig } from "../src/config.js";
import { CORS_ALLOWED_HEADERS, CORS_ALLOWED_METHODS, CORS_EXPOSED_HEADERS } from "../src/net/cors.js";
import { envelope, sendH1, sendH2, splitEnvelopes, type RawRequest, type RawResponse } from "./helpers/raw-requests.js";
import { insertTestKey } from "./helpers/keys.js";
import { AGENT_ID, DEFAULT_ORG_ID, SESSION_ID_PATTERN, startTestServer, type TestServer } from "./helpers/server.js";

const PAGE = "https://console.example.com";
const OTHER = "https://evil.example.net";
const METHODS = "POST, GET, PATCH, DELETE";
const ALLOWED_HEADERS =
  "Content-Type, Connect-Protocol-Version, Connect-Timeout-Ms, Connect-Content-Encoding, Connect-Accept-Encoding, " +
  "Content-Encoding, Accept-Encoding, Grpc-Message-Type, X-Grpc-Web, X-User-Agent, Grpc-Timeout, Authorization, X-Request-Id";
const EXPOSED_HEADERS =
  "Grpc-Status, Grpc-Message, Grpc-Status-Details-Bin, Content-Encoding, Connect-Content-Encoding, " +
  "Location, WWW-Authenticate, X-Request-Id";
const PREFLIGHT_VARY = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers";
const UNKNOWN_SESSION = "session_" + "0".repeat(32);
const CONNECT_CREATE = "/sessions.v1.SessionService/CreateSession";
const CONNECT_GET = "/sessions.v1.SessionService/GetSession";

const agent = new http.Agent({ keepAlive: true });
afterAll(() => agent.destroy());

function send(server: TestServer, request: RawRequest): Promise<RawResponse> {
  return sendH1(server.url, agent, request, 5000);
}

function preflight(path: string, origin: string, method: string, requestHeaders?: string): RawRequest {
  return {
    method: "OPTIONS",
    path,
    headers: {
      origin,
      "access-control-request-method": method,
      ...(requestHeaders ? { "access-control-request-headers": requestHeaders } : {}),
    },
  };
}

function json(method: string, path: string, body: unknown, headers: Record<string, string> = {}): RawRequest {
  return { method, path, headers: { "content-type": "application/json", ...headers }, body: Buffer.from(JSON.stringify(body)) };
}

/** The response's Access-Control-* headers, by lowercase name. */
function corsHeaders(res: RawResponse): Record<string, unknown> {
  return Object.fromEntries(Object.entries(res.headers).filter(([name]) => name.startsWith("access-control-")));
}

/** What an allowed origin's actual (not preflight) answer carries. */
const granted = (origin: string) => ({
  "access-control-allow-origin": origin,
  "access-control-expose-headers": EXPOSED_HEADERS,
});

const preflightGranted = (origin: string) => ({
  "access-control-allow-origin": origin,
  "access-control-allow-methods": METHODS,
  "access-control-allow-headers": ALLOWED_HEADERS,
  "access-control-max-age": "7200",
});

describe("the CORS header lists", () => {
  it("are Connect's own lists extended for REST, each name once whatever its case", () => {
    expect(CORS_ALLOWED_METHODS.join(", ")).toBe(METHODS);
    expect(CORS_ALLOWED_HEADERS.join(", ")).toBe(ALLOWED_HEADERS);
    expect(CORS_EXPOSED_HEADERS.join(", ")).toBe(EXPOSED_HEADERS);
    for (const list of [CORS_ALLOWED_METHODS, CORS_ALLOWED_HEADERS, CORS_EXPOSED_HEADERS]) {
      expect(new Set(list.map((name) => name.toLowerCase())).size).toBe(list.length);
    }
  });
});

describe("CORS with an origin allowed (--cors-origin https://console.example.com)", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ corsOrigins: [PAGE, "http://localhost:5173"] });
  });
  afterAll(async () => {
    await server.close();
  });

  describe("preflight", () => {
    it.each([
      ["Connect", CONNECT_CREATE, "POST", "content-type,connect-protocol-version,connect-timeout-ms"],
      ["Connect GET", `${CONNECT_GET}?connect=v1&encoding=json&message=%7B%7D`, "GET", "connect-protocol-version"],
      ["gRPC-Web", CONNECT_CREATE, "POST", "content-type,x-grpc-web,x-user-agent,grpc-timeout"],
      ["REST create", "/v1/sessions", "POST", "content-type,authorization"],
      ["REST update", `/v1/sessions/${UNKNOWN_SESSION}?update_mask=title`, "PATCH", "content-type,authorization,x-request-id"],
      ["REST delete", `/v1/sessions/${UNKNOWN_SESSION}`, "DELETE", "authorization"],
      ["an unknown path (answered before routing)", "/nowhere", "PUT", undefined],
    ])("%s: 204 with the allowed methods and headers, Max-Age 7200, no body", async (_name, path, method, requested) => {
      const res = await send(server, preflight(path, PAGE, method, requested));
      expect(res.status).toBe(204);
      expect(corsHeaders(res)).toEqual(preflightGranted(PAGE));
      expect(res.headers.vary).toBe(PREFLIGHT_VARY);
      expect(res.headers.connection).toBe("keep-alive");
      expect(res.body.length).toBe(0);
    });

    it("keeps the HTTP/1.1 connection for the call that follows, also when refusing", async () => {
      const sockets = new Set<unknown>();
      const request = (path: string, origin: string) =>
        new Promise<{ status: number; connection: string | undefined }>((resolve, reject) => {
          const { port } = new URL(server.url);
          const req = http.request(
            { host: "127.0.0.1", port, agent, method: "OPTIONS", path, headers: { origin, "access-control-request-method": "POST" } },
            (res) => {
              sockets.add(req.socket);
              res.resume();
              res.on("end", () => resolve({ status: res.statusCode!, connection: res.headers.connection }));
            },
          );
          req.on("error", reject);
          req.end();
        });
      expect(await request("/v1/sessions", PAGE)).toEqual({ status: 204, connection: "keep-alive" });
      expect(await request("/v1/sessions", OTHER)).toEqual({ status: 403, connection: "keep-alive" });
      expect(await request(CONNECT_CREATE, PAGE)).toEqual({ status: 204, connection: "keep-alive" });
      expect(sockets.size).toBe(1);
    });

    it("answers a preflight that carries a body (browsers send none), closing the connection", async () => {
      const res = await send(server, { ...preflight("/v1/sessions", PAGE, "POST"), body: Buffer.from("hello") });
      expect(res.status).toBe(204);
      expect(corsHeaders(res)).toEqual(preflightGranted(PAGE));
    });

    it("answers the same over HTTP/2", async () => {
      const session = http2.connect(server.url);
      try {
        const res = await sendH2(session, preflight(CONNECT_CREATE, "http://localhost:5173", "POST"), 5000);
        expect(res.status).toBe(204);
        expect(corsHeaders(res)).toEqual(preflightGranted("http://localhost:5173"));
        expect(res.headers.vary).toBe(PREFLIGHT_VARY);
      } finally {
        session.close();
      }
    });

    it("from an origin not allowed: 403 with the JSON error and no Access-Control-* header", async () => {
      for (const origin of [OTHER, "null", `${PAGE}:8443`, "http://console.example.com", `${PAGE}, ${OTHER}`]) {
        const res = await send(server, preflight("/v1/sessions", origin, "POST", "content-type"));
        expect(res.status).toBe(403);
        expect(res.headers["content-type"]).toBe("application/json");
        expect(JSON.parse(res.body.toString())).toEqual({
          code: 7,
          message: `origin ${origin} is not allowed: see --cors-origin`,
          details: [],
        });
        expect(corsHeaders(res)).toEqual({});
        expect(res.headers.vary).toBe(PREFLIGHT_VARY);
      }
    });

    it("an OPTIONS without Access-Control-Request-Method is no preflight: it is routed (REST 405) with the CORS headers", async () => {
      const res = await send(server, { method: "OPTIONS", path: "/v1/sessions", headers: { origin: PAGE } });
      expect(res.status).toBe(405);
      expect(res.headers.allow).toBe("GET, POST");
      expect(corsHeaders(res)).toEqual(granted(PAGE));
    });
  });

  describe("requests from an allowed origin carry Allow-Origin, Expose-Headers and Vary: Origin", () => {
    it("Connect unary (JSON): create, then get", async () => {
      const created = await send(server, json("POST", CONNECT_CREATE, { agentId: AGENT_ID, title: "from a page" }, { origin: PAGE }));
      expect(created.status).toBe(200);
      expect(corsHeaders(created)).toEqual(granted(PAGE));
      expect(created.headers.vary).toBe("Origin");
      const { id } = JSON.parse(created.body.toString());
      expect(id).toMatch(SESSION_ID_PATTERN);

      const got = await send(server, json("POST", CONNECT_GET, { id }, { origin: PAGE, "connect-protocol-version": "1" }));
      expect(got.status).toBe(200);
      expect(JSON.parse(got.body.toString()).title).toBe("from a page");
      expect(corsHeaders(got)).toEqual(granted(PAGE));
    });

    it("Connect error (not_found 404) carries them too", async () => {
      const res = await send(server, json("POST", CONNECT_GET, { id: UNKNOWN_SESSION }, { origin: PAGE }));
      expect(res.status).toBe(404);
      expect(JSON.parse(res.body.toString()).code).toBe("not_found");
      expect(corsHeaders(res)).toEqual(granted(PAGE));
    });

    it("gRPC-Web: the status travels in the body, the headers still carry CORS", async () => {
      const message = toBinary(CreateSessionRequestSchema, create(CreateSessionRequestSchema, { agentId: AGENT_ID, title: "grpc-web page" }));
      const res = await send(server, {
        method: "POST",
        path: CONNECT_CREATE,
        headers: { origin: PAGE, "content-type": "application/grpc-web+proto", "x-grpc-web": "1" },
        body: envelope(0, message),
      });
      expect(res.status).toBe(200);
      expect(corsHeaders(res)).toEqual(granted(PAGE));
      const { frames } = splitEnvelopes(res.body);
      expect(frames.map((f) => f.flags)).toEqual([0, 0x80]);
      expect(frames[1]!.payload.toString()).toContain("grpc-status: 0");
    });

    it("REST create: 201 with Location, which is exposed", async () => {
      const res = await send(server, json("POST", "/v1/sessions", { agent_id: AGENT_ID }, { origin: PAGE }));
      expect(res.status).toBe(201);
      expect(res.headers.location).toMatch(/^\/v1\/sessions\/session_[0-9a-f]{32}$/);
      expect(corsHeaders(res)).toEqual(granted(PAGE));
      expect(res.headers.vary).toBe("Origin");
    });

    it("REST PATCH and DELETE", async () => {
      const created = await send(server, json("POST", "/v1/sessions", { agent_id: AGENT_ID }, { origin: PAGE }));
      const { id } = JSON.parse(created.body.toString());
      const patched = await send(server, json("PATCH", `/v1/sessions/${id}`, { title: "renamed" }, { origin: PAGE }));
      expect([patched.status, JSON.parse(patched.body.toString()).title]).toEqual([200, "renamed"]);
      expect(corsHeaders(patched)).toEqual(granted(PAGE));
      const deleted = await send(server, { method: "DELETE", path: `/v1/sessions/${id}`, headers: { origin: PAGE } });
      expect(deleted.status).toBe(200);
      expect(corsHeaders(deleted)).toEqual(granted(PAGE));
    });

    it.each([
      ["400 (malformed JSON)", { method: "POST", path: "/v1/sessions", headers: { "content-type": "application/json" }, body: Buffer.from("{") }, 400, 3],
      ["400 (invalid Host)", { method: "GET", path: "/v1/sessions", headers: { host: "a b" } }, 400, 3],
      ["404 (unknown session)", { method: "GET", path: `/v1/sessions/${UNKNOWN_SESSION}`, headers: {} }, 404, 5],
      ["404 (unknown path)", { method: "GET", path: "/v2/nothing", headers: {} }, 404, 5],
      ["405 (wrong method)", { method: "PUT", path: "/v1/sessions", headers: {} }, 405, 12],
      ["413 (body over 1 MiB)", { method: "POST", path: "/v1/sessions", headers: { "content-type": "application/json" }, body: Buffer.alloc(1024 * 1024 + 1, 0x20) }, 413, 8],
      ["415 (not JSON)", { method: "POST", path: "/v1/sessions", headers: { "content-type": "text/plain" }, body: Buffer.from("{}") }, 415, 3],
    ] as const)("REST error %s carries them", async (_name, request, status, code) => {
      const res = await send(server, { ...request, headers: { ...request.headers, origin: PAGE } });
      expect(res.status).toBe(status);
      expect(JSON.parse(res.body.toString()).code).toBe(code);
      expect(corsHeaders(res)).toEqual(granted(PAGE));
      expect(res.headers.vary).toBe("Origin");
    });
  });

  it("a request from an origin not allowed is served as usual, without CORS headers", async () => {
    const res = await send(server, json("POST", "/v1/sessions", { agent_id: AGENT_ID }, { origin: OTHER }));
    expect(res.status).toBe(201);
    expect(corsHeaders(res)).toEqual({});
    expect(res.headers.vary).toBe("Origin");
    const connect = await send(server, json("POST", CONNECT_GET, { id: UNKNOWN_SESSION }, { origin: OTHER }));
    expect(connect.status).toBe(404);
    expect(corsHeaders(connect)).toEqual({});
  });

  it("a request without Origin gets no CORS headers, only Vary: Origin (its answer would differ with one)", async () => {
    const res = await send(server, json("POST", "/v1/sessions", { agent_id: AGENT_ID }));
    expect(res.status).toBe(201);
    expect(corsHeaders(res)).toEqual({});
    expect(res.headers.vary).toBe("Origin");
    const options = await send(server, { method: "OPTIONS", path: "/v1/sessions", headers: { "access-control-request-method": "POST" } });
    expect(options.status).toBe(405);
    expect(corsHeaders(options)).toEqual({});
  });
});

describe("CORS with API keys", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ corsOrigins: [PAGE] });
    await insertTestKey(server.store, DEFAULT_ORG_ID);
  });
  afterAll(async () => {
    await server.close();
  });

  it("a preflight needs no key (browsers send none): 204", async () => {
    const res = await send(server, preflight("/v1/sessions", PAGE, "POST", "authorization,content-type"));
    expect(res.status).toBe(204);
    expect(corsHeaders(res)).toEqual(preflightGranted(PAGE));
  });

  it("401 over REST carries CORS headers and exposes WWW-Authenticate", async () => {
    const res = await send(server, { method: "GET", path: "/v1/sessions", headers: { origin: PAGE } });
    expect(res.status).toBe(401);
    expect(res.headers["www-authenticate"]).toBe('Bearer realm="sessions"');
    expect(corsHeaders(res)).toEqual(granted(PAGE));
  });

  it("401 over Connect carries CORS headers", async () => {
    const res = await send(server, json("POST", CONNECT_GET, { id: UNKNOWN_SESSION }, { origin: PAGE }));
    expect(res.status).toBe(401);
    expect(JSON.parse(res.body.toString()).code).toBe("unauthenticated");
    expect(corsHeaders(res)).toEqual(granted(PAGE));
  });
});

describe("CORS with no origin configured (the default)", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server.close();
  });

  it("refuses every preflight with 403 naming the flag, and adds no Vary", async () => {
    const res = await send(server, preflight(CONNECT_CREATE, PAGE, "POST", "content-type"));
    expect(res.status).toBe(403);
    expect(JSON.parse(res.body.toString())).toEqual({
      code: 7,
      message: `origin ${PAGE} is not allowed: see --cors-origin`,
      details: [],
    });
    expect(corsHeaders(res)).toEqual({});
    expect(res.headers.vary).toBeUndefined();
  });

  it("serves a request with Origin as usual, without any CORS header or Vary", async () => {
    const res = await send(server, json("POST", "/v1/sessions", { agent_id: AGENT_ID }, { origin: PAGE }));
    expect(res.status).toBe(201);
    expect(corsHeaders(res)).toEqual({});
    expect(res.headers.vary).toBeUndefined();
  });
});

describe("CORS with * (any origin)", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ corsOrigins: ["*"] });
  });
  afterAll(async () => {
    await server.close();
  });

  it("echoes whichever origin asks, never *", async () => {
    for (const origin of [PAGE, OTHER, "http://127.0.0.1:3000", "null"]) {
      const pre = await send(server, preflight("/v1/sessions", origin, "POST", "content-type"));
      expect(pre.status).toBe(204);
      expect(corsHeaders(pre)).toEqual(preflightGranted(origin));
      const res = await send(server, json("POST", "/v1/sessions", { agent_id: AGENT_ID }, { origin }));
      expect(res.status).toBe(201);
      expect(corsHeaders(res)).toEqual(granted(origin));
    }
  });

  it("does not echo repeated Origin headers (joined, they are no origin)", async () => {
    const res = await send(server, preflight("/v1/sessions", `${PAGE}, ${OTHER}`, "POST"));
    expect(res.status).toBe(403);
    expect(corsHeaders(res)).toEqual({});
  });
});

describe("--cors-origin and CORS_ORIGIN", () => {
  const origins = (argv: string[], env: NodeJS.ProcessEnv = {}) => {
    const parsed = parseConfig(argv, env);
    if (parsed.help) throw new Error("unexpected --help");
    return parsed.config.corsOrigins;
  };

  it("defaults to none", () => {
    expect(origins([])).toEqual([]);
  });

  it("repeats as a flag, in order", () => {
    expect(origins(["--cors-origin", PAGE, "--cors-origin=http://localhost:5173"])).toEqual([PAGE, "http://localhost:5173"]);
  });

  it("takes a comma-separated list from CORS_ORIGIN, spaces around items ignored", () => {
    expect(origins([], { CORS_ORIGIN: `${PAGE}, http://[::1]:3000 ,*` })).toEqual([PAGE, "http://[::1]:3000", "*"]);
  });

  it("lets the flags replace the variable", () => {
    expect(origins(["--cors-origin", PAGE], { CORS_ORIGIN: OTHER })).toEqual([PAGE]);
  });

  it("leaves the other options as they were", () => {
    const parsed = parseConfig(["--port", "0", "--cors-origin", PAGE, "--insecure-open"], { HOST: "0.0.0.0" });
    // Options added since (limits and timeouts) are checked in config-contract.test.ts.
    expect(parsed).toMatchObject({
      help: false,
      config: {
        host: "0.0.0.0",
        port: 0,
        dbPath: "./data/sessions.db",
        tlsCertPath: undefined,
        tlsKeyPath: undefined,
        logLevel: "info",
        shutdownTimeoutMs: 10_000,
        insecureOpen: true,
        corsOrigins: [PAGE],
        reflectionAuth: "required",
        idempotencyKeysPerOrg: 100_000,
        timeouts: { handshakeMs: 10_000, headersMs: 20_000, h2SetupMs: 10_000, bodyMs: 60_000, keepAliveMs: 5_000, h2IdleMs: 60_000 },
        maxConnections: undefined,
        h2MaxConcurrentStreams: 100,
        h2ResetBurst: 100,
        streamLimits: { total: 10_000, keyless: 1000, perConnection: 100, perOrg: 5000, perSession: 1000 },
        keyRecheckIntervalMs: 5000,
      },
    });
  });

  const MUST = "--cors-origin must be an origin, http(s)://host[:port] with no path, or *, got";
  it.each([
    [["--cors-origin", "https://x/"], {}, `${MUST} "https://x/"; did you mean "https://x"?`],
    [["--cors-origin", "https://x.com/app"], {}, `${MUST} "https://x.com/app"; did you mean "https://x.com"?`],
    [["--cors-origin", "https://X.com"], {}, `${MUST} "https://X.com"; did you mean "https://x.com"?`],
    [["--cors-origin", "https://x.com:443"], {}, `${MUST} "https://x.com:443"; did you mean "https://x.com"?`],
    [["--cors-origin", "ftp://x"], {}, `${MUST} "ftp://x"`],
    [["--cors-origin", "x.com"], {}, `${MUST} "x.com"`],
    [["--cors-origin", ""], {}, `${MUST} ""`],
    [["--cors-origin", "https://a.com,https://b.com"], {}, `${MUST} "https://a.com,https://b.com"`],
    [["--cors-origin", "https://user:pw@x.com"], {}, `${MUST} "https://user:pw@x.com"`],
    [["--cors-origin", PAGE, "--cors-origin", "**"], {}, `${MUST} "**"`],
    [[], { CORS_ORIGIN: "" }, `${MUST} ""`],
    [[], { CORS_ORIGIN: `${PAGE},,${OTHER}` }, `${MUST} ""`],
    [[], { CORS_ORIGIN: `${PAGE};${OTHER}` }, `${MUST} "${PAGE};${OTHER}"`],
  ])("refuses %j %j with one line", (argv, env, message) => {
    let error: unknown;
    try {
      parseConfig(argv, env);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toBe(message);
    expect(message).not.toContain("\n");
  });
});
