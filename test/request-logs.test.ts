import { spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import { ConnectError, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SessionService } from "../gen/sessions/v1/session_service_pb.js";
import { GrpcJsSessionService } from "./helpers/grpc-js.js";
import { AGENT_ID, requestJson, startTestServer, type TestServer } from "./helpers/server.js";
import { RPC_TRANSPORTS } from "./helpers/rpc-transports.js";

const CREATE = "/sessions.v1.SessionService/CreateSession";
const GET = "/sessions.v1.SessionService/GetSession";
const UNKNOWN_SESSION = "session_" + "0".repeat(32);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** What the test logger (pino's defaults) adds to every line. */
const PINO_FIELDS = { level: 30, time: expect.any(Number), pid: process.pid, hostname: expect.any(String) };

/** The request lines the server logged with this request id. */
const requestLines = (server: TestServer, requestId: unknown) =>
  server.logs.filter((line) => line.msg === "request" && line.requestId === requestId);

/** Waits for the one request line with this id: a line is written as the call ends, which may be after the client has its answer. */
async function requestLine(server: TestServer, requestId: unknown): Promise<Record<string, unknown>> {
  const deadline = Date.now() + 5000;
  while (requestLines(server, requestId).length === 0) {
    if (Date.now() > deadline) throw new Error(`no request line with requestId ${String(requestId)}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const lines = requestLines(server, requestId);
  expect(lines).toHaveLength(1);
  return lines[0]!;
}

describe("request log lines", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.close();
  });

  it("logs a REST call with its request id, procedure, protocol, code, duration, HTTP method, path template and status", async () => {
    const res = await requestJson(`${server.url}/v1/sessions`, {
      body: { agent_id: AGENT_ID, title: "a title that stays out of the log" },
      headers: { "x-request-id": "rest-create-1" },
    });
    expect(res.status).toBe(201);
    expect(await requestLine(server, "rest-create-1")).toStrictEqual({
      ...PINO_FIELDS,
      msg: "request",
      requestId: "rest-create-1",
      procedure: CREATE,
      protocol: "rest",
      code: "ok",
      durationMs: expect.any(Number),
      httpMethod: "POST",
      path: "/v1/sessions",
      status: 201,
    });
  });

  it("logs a failed REST call with its code, status and the message the client got", async () => {
    const res = await requestJson(`${server.url}/v1/sessions/${UNKNOWN_SESSION}:start`, {
      method: "POST",
      headers: { "x-request-id": "rest-start-1" },
    });
    expect(res.status).toBe(404);
    expect(await requestLine(server, "rest-start-1")).toStrictEqual({
      ...PINO_FIELDS,
      msg: "request",
      requestId: "rest-start-1",
      procedure: "/sessions.v1.SessionService/StartSession",
      protocol: "rest",
      code: "not_found",
      durationMs: expect.any(Number),
      httpMethod: "POST",
      path: "/v1/sessions/{id}:start",
      status: 404,
      error: res.body.message,
    });
  });

  it("logs a gRPC call (grpc-js) with no HTTP fields", async () => {
    const client = new GrpcJsSessionService(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
    try {
      const metadata = new grpc.Metadata();
      metadata.set("x-request-id", "grpc-get-1");
      const error = await new Promise<grpc.ServiceError>((resolve, reject) =>
        (client as any).GetSession({ id: UNKNOWN_SESSION }, metadata, (e: grpc.ServiceError | null) =>
          e ? resolve(e) : reject(new Error("expected not_found")),
        ),
      );
      expect(error.code).toBe(grpc.status.NOT_FOUND);
      expect(await requestLine(server, "grpc-get-1")).toStrictEqual({
        ...PINO_FIELDS,
        msg: "request",
        requestId: "grpc-get-1",
        procedure: GET,
        protocol: "grpc",
        code: "not_found",
        durationMs: expect.any(Number),
        error: `session ${UNKNOWN_SESSION} not found`,
      });
    } finally {
      client.close();
    }
  });

  it("keeps request bodies and API keys out of the log", async () => {
    await requestJson(`${server.url}/v1/sessions`, {
      body: { agent_id: AGENT_ID, title: "secret title 5f3a" },
      headers: { "x-request-id": "rest-private-1", authorization: "Bearer sk_not_a_key" },
    });
    const line = JSON.stringify(await requestLine(server, "rest-private-1"));
    expect(line).not.toContain("secret title 5f3a");
    expect(line).not.toContain("sk_not_a_key");
  });

  it("writes no request line for a request that reaches no method (unknown path), but still answers its id", async () => {
    const res = await requestJson(`${server.url}/v2/nothing`, { headers: { "x-request-id": "unrouted-1" } });
    expect(res.status).toBe(404);
    expect(res.headers.get("x-request-id")).toBe("unrouted-1");
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(requestLines(server, "unrouted-1")).toStrictEqual([]);
  });
});

/** Ids a caller may send that are not taken: answered and logged with a new UUID instead. */
const REFUSED_IDS: ReadonlyArray<[string, string]> = [
  ["129 characters", "a".repeat(129)],
  ["a space", "two words"],
  ["a character outside ASCII", "caf\u00e9"],
  ["an empty value", ""],
];

describe("x-request-id", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.close();
  });

  /** Calls GetSession of an unknown session over one protocol; returns the x-request-id answered. */
  type Caller = (headers: Record<string, string>) => Promise<string | null>;
  const callers: ReadonlyArray<[string, string, Caller]> = [
    [
      "REST",
      "rest",
      async (headers) => (await requestJson(`${server.url}/v1/sessions/${UNKNOWN_SESSION}`, { headers })).headers.get("x-request-id"),
    ],
    ...["Connect JSON over HTTP/1.1", "gRPC binary over HTTP/2", "gRPC-Web binary over HTTP/1.1"].map((name): [string, string, Caller] => {
      const transport = RPC_TRANSPORTS.find((t) => t.name === name)!;
      return [
        name,
        transport.protocol,
        async (headers) => {
          const client = createClient(SessionService, transport.create(server.url));
          let answered: string | null = null;
          const error = await client
            .getSession({ id: UNKNOWN_SESSION }, { headers, onHeader: (h) => (answered = h.get("x-request-id")) })
            .catch((e: unknown) => ConnectError.from(e));
          expect(error).toBeInstanceOf(ConnectError);
          // gRPC-Web and gRPC may answer an error with trailers only: the id is there too.
          return answered ?? (error as ConnectError).metadata.get("x-request-id");
        },
      ];
    }),
  ];

  describe.each(callers)("over %s", (_name, protocol, call) => {
    it("echoes a caller's id and logs the call with it", async () => {
      const id = `given-${protocol}-Az09._~:/+=!`;
      expect(await call({ "x-request-id": id })).toBe(id);
      expect(await requestLine(server, id)).toMatchObject({ requestId: id, protocol, procedure: GET, code: "not_found" });
    });

    it("answers a new UUID when the caller sends none, and logs the call with it", async () => {
      const id = await call({});
      expect(id).toMatch(UUID);
      expect(await requestLine(server, id)).toMatchObject({ requestId: id, protocol });
    });

    it.each(REFUSED_IDS)("answers a new UUID instead of an id with %s", async (_what, given) => {
      const id = await call({ "x-request-id": given });
      expect(id).toMatch(UUID);
      expect(await requestLine(server, id)).toMatchObject({ requestId: id, protocol });
      expect(requestLines(server, given)).toStrictEqual([]);
    });
  });

  it("keeps a 128-character id", async () => {
    const id = "x".repeat(128);
    const res = await requestJson(`${server.url}/v1/sessions/${UNKNOWN_SESSION}`, { headers: { "x-request-id": id } });
    expect(res.headers.get("x-request-id")).toBe(id);
  });

  it("answers a new UUID for each request that sends none", async () => {
    const ids = await Promise.all([1, 2, 3].map(async () => (await fetch(`${server.url}/metrics`)).headers.get("x-request-id")));
    for (const id of ids) expect(id).toMatch(UUID);
    expect(new Set(ids).size).toBe(3);
  });
});

describe("log format", () => {
  // Logs a request line and an error through src/log.ts in a child process, its standard
  // error a pipe or (through script(1)) a terminal.
  const program = [
    "import { createLogger } from './src/log.ts';",
    "const logger = createLogger('info');",
    "logger.info({ requestId: 'r-1', code: 'ok' }, 'request');",
  ].join(" ");
  const root = fileURLToPath(new URL("..", import.meta.url));

  async function run(command: string, args: string[]): Promise<string> {
    const child = spawn(command, args, { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    const [code] = await once(child, "close");
    expect(code).toBe(0);
    return output;
  }

  it("writes JSON lines when standard error is not a terminal", async () => {
    const output = await run("node", ["--import", "tsx", "--input-type=module", "-e", program]);
    expect(output.trim().split("\n").map((line) => JSON.parse(line))).toStrictEqual([
      { level: 30, time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/), requestId: "r-1", code: "ok", msg: "request" },
    ]);
  });

  it("writes readable, coloured lines when standard error is a terminal", async () => {
    const command = `node --import tsx --input-type=module -e "${program}"`;
    const output = await run("script", ["-qec", command, "/dev/null"]);
    const plain = output.replace(/\x1b\[[0-9;]*m/g, "").trim();
    expect(plain).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: request \{"requestId":"r-1","code":"ok"\}$/);
    expect(output).toContain("\x1b[32mINFO\x1b[39m");
  });
});
