import * as grpc from "@grpc/grpc-js";
import { create, toBinary, type DescMessage, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CreateSessionRequestSchema,
  GetSessionRequestSchema,
  SessionService,
} from "../gen/sessions/v1/session_service_pb.js";
import type { Store } from "../src/store/store.js";
import { GrpcJsSessionService } from "./helpers/grpc-js.js";
import { AGENT_ID, startTestServer, type TestServer } from "./helpers/server.js";
import { RPC_TRANSPORTS } from "./helpers/rpc-transports.js";

const SECRET = "SQLITE_IOERR: disk I/O error at /var/lib/secret.db: SELECT * FROM sessions";

/** A store whose every read and write fails as a broken disk would. */
class FailingStore implements Store {
  private fail(): Promise<never> {
    return Promise.reject(new Error(SECRET));
  }
  insertSession = () => this.fail();
  findSession = () => this.fail();
  listSessions = () => this.fail();
  mutateSession = () => this.fail();
  deleteSession = () => this.fail();
  appendMessage = () => this.fail();
  findMessage = () => this.fail();
  listMessages = () => this.fail();
  listSessionEvents = () => this.fail();
  insertAgent = () => this.fail();
  findAgent = () => this.fail();
  listAgents = () => this.fail();
  mutateAgent = () => this.fail();
  deleteAgent = () => this.fail();
  insertKey = () => this.fail();
  findKey = () => this.fail();
  listKeys = () => this.fail();
  revokeKey = () => this.fail();
  touchKey = () => this.fail();
  // Open mode: the failure under test is the data store's, not authentication's.
  hasKeys = async () => false;
  ping = () => this.fail();
  sweepIdempotencyKeys = () => this.fail();
  async close(): Promise<void> {}
}

/** Anything of the real error: its SQL, its path, its text, or a stack frame. */
const LEAK = /SQLITE|I\/O|secret|SELECT|\/var\/|FROM sessions|\bat \S+ \(|\.[jt]s:\d+/;

const SESSION_ID = "session_0123456789abcdef0123456789abcdef";
const PROCEDURE = {
  create: "/sessions.v1.SessionService/CreateSession",
  get: "/sessions.v1.SessionService/GetSession",
} as const;

function headerText(headers: Headers): string {
  return [...headers].map(([name, value]) => `${name}: ${value}`).join("\n");
}

/** gRPC-Web frames of a response body: data frames (flag 0) and the trailer frame (flag 0x80). */
function grpcWebFrames(body: Buffer): Array<{ flags: number; payload: Buffer }> {
  const frames = [];
  for (let offset = 0; offset < body.length; ) {
    const flags = body[offset]!;
    const length = body.readUInt32BE(offset + 1);
    frames.push({ flags, payload: body.subarray(offset + 5, offset + 5 + length) });
    offset += 5 + length;
  }
  return frames;
}

function envelope<Desc extends DescMessage>(schema: Desc, init: MessageInitShape<Desc>): Buffer {
  const message = toBinary(schema, create(schema, init));
  const header = Buffer.alloc(5);
  header.writeUInt32BE(message.length, 1);
  return Buffer.concat([header, message]);
}

describe("a failing store", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ store: new FailingStore() });
  });
  afterAll(async () => {
    await server?.close();
  });

  /** Runs `call` and asserts that the server logged the real error for it, exactly once. */
  async function expectLogged<T>(procedure: string, call: () => Promise<T>): Promise<T> {
    const before = server.logs.length;
    const result = await call();
    // Besides the call's own request line, which shares its request id.
    const logged = server.logs.slice(before).filter((line) => line.msg !== "request");
    const requestLines = server.logs.slice(before).filter((line) => line.msg === "request");
    expect(logged).toHaveLength(1);
    expect(requestLines).toHaveLength(1);
    expect(logged[0]!.requestId).toEqual(expect.any(String));
    expect(logged[0]!.requestId).toBe(requestLines[0]!.requestId);
    expect(logged[0]).toMatchObject({
      level: 50,
      msg: "internal error",
      procedure,
      err: { type: "Error", message: SECRET, stack: expect.stringContaining(`Error: ${SECRET}\n    at `) },
    });
    // The leak detector recognises the real error, so its silence below means something.
    expect(JSON.stringify(logged[0])).toMatch(LEAK);
    return result;
  }

  describe("over REST", () => {
    it.each([
      { name: "POST /v1/sessions", procedure: PROCEDURE.create, method: "POST", path: "/v1/sessions", body: { agent_id: AGENT_ID } },
      { name: "GET /v1/sessions/{id}", procedure: PROCEDURE.get, method: "GET", path: `/v1/sessions/${SESSION_ID}`, body: undefined },
    ])("$name answers 500 with a bare internal error", async ({ procedure, method, path, body }) => {
      const response = await expectLogged(procedure, () =>
        fetch(`${server.url}${path}`, {
          method,
          headers: body ? { "content-type": "application/json" } : {},
          body: body && JSON.stringify(body),
        }),
      );
      const text = await response.text();
      expect(response.status).toBe(500);
      expect(text).toBe('{"code":13,"message":"internal error","details":[]}');
      expect(response.headers.get("content-type")).toBe("application/json");
      expect(headerText(response.headers)).not.toMatch(LEAK);
    });
  });

  describe("over Connect JSON, as raw HTTP", () => {
    it.each([
      { procedure: PROCEDURE.create, body: { agent_id: AGENT_ID } },
      { procedure: PROCEDURE.get, body: { id: SESSION_ID } },
    ])("$procedure answers 500 with a bare internal error", async ({ procedure, body }) => {
      const response = await expectLogged(procedure, () =>
        fetch(`${server.url}${procedure}`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(body),
        }),
      );
      expect(response.status).toBe(500);
      expect(await response.text()).toBe('{"code":"internal","message":"internal error"}');
      expect(headerText(response.headers)).not.toMatch(LEAK);
    });
  });

  describe("over gRPC-Web, as raw HTTP", () => {
    it.each([
      { procedure: PROCEDURE.create, body: envelope(CreateSessionRequestSchema, { agentId: AGENT_ID }) },
      { procedure: PROCEDURE.get, body: envelope(GetSessionRequestSchema, { id: SESSION_ID }) },
    ])("$procedure ends with grpc-status 13 and a bare message in the trailer frame", async ({ procedure, body }) => {
      const response = await expectLogged(procedure, () =>
        fetch(`${server.url}${procedure}`, {
          method: "POST",
          headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" },
          body,
        }),
      );
      expect(response.status).toBe(200);
      const frames = grpcWebFrames(Buffer.from(await response.arrayBuffer()));
      expect(frames.map((f) => ({ flags: f.flags, text: f.payload.toString("latin1") }))).toStrictEqual([
        { flags: 0x80, text: "grpc-message: internal%20error\r\ngrpc-status: 13\r\n" },
      ]);
      expect(headerText(response.headers)).not.toMatch(LEAK);
    });
  });

  describe.each(RPC_TRANSPORTS)("with a connect-es client, $name", (transport) => {
    it("sees internal with the message exactly \"internal error\" from both methods", async () => {
      const client = createClient(SessionService, transport.create(server.url));
      for (const [procedure, call] of [
        [PROCEDURE.create, () => client.createSession({ agentId: AGENT_ID })],
        [PROCEDURE.get, () => client.getSession({ id: SESSION_ID })],
      ] as const) {
        const error = await expectLogged(procedure, () =>
          call().then(
            () => undefined,
            (e: unknown) => e,
          ),
        );
        expect(error).toBeInstanceOf(ConnectError);
        const connectError = error as ConnectError;
        expect(connectError.code).toBe(Code.Internal);
        expect(connectError.rawMessage).toBe("internal error");
        expect(connectError.details).toStrictEqual([]);
        // Headers and trailers both end up in metadata.
        expect(headerText(connectError.metadata)).not.toMatch(LEAK);
      }
    });
  });

  describe("with a grpc-js client", () => {
    it.each([
      { method: "CreateSession", procedure: PROCEDURE.create, request: { agent_id: AGENT_ID } },
      { method: "GetSession", procedure: PROCEDURE.get, request: { id: SESSION_ID } },
    ])("$method ends with INTERNAL, details \"internal error\" and clean metadata", async ({ method, procedure, request }) => {
      const client = new GrpcJsSessionService(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
      try {
        const { error, headers } = await expectLogged(procedure, () =>
          new Promise<{ error: grpc.ServiceError; headers: grpc.Metadata | undefined }>((resolve) => {
            let headers: grpc.Metadata | undefined;
            const fn = (client as any)[method].bind(client);
            const call: grpc.ClientUnaryCall = fn(request, (error: grpc.ServiceError) => resolve({ error, headers }));
            call.on("metadata", (metadata) => (headers = metadata));
          }),
        );
        expect(error.code).toBe(grpc.status.INTERNAL);
        expect(error.details).toBe("internal error");
        const trailers = error.metadata.toJSON();
        expect(trailers).toStrictEqual({});
        expect(JSON.stringify(headers?.toJSON())).not.toMatch(LEAK);
      } finally {
        client.close();
      }
    });
  });
});
