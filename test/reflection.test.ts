import { create, createFileRegistry, fromBinary, getOption, type MessageInitShape } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema, type FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ServerReflection,
  ServerReflectionRequestSchema,
  type ServerReflectionResponse,
} from "../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { http } from "../gen/google/api/annotations_pb.js";
import { buf } from "./helpers/buf.js";
import { AGENT_ID, DEFAULT_ORG_ID, SESSION_ID_PATTERN, startTestServer, type TestServer } from "./helpers/server.js";
import { insertTestKey, type TestKey } from "./helpers/keys.js";
import { ConfigError, parseConfig } from "../src/config.js";

/** buf curl over gRPC on h2c, its schema from the server's reflection (no --schema). */
const GRPC = ["curl", "--protocol", "grpc", "--http2-prior-knowledge"] as const;

/** buf curl exits with the gRPC code shifted left by three bits when an RPC fails. */
const exitCodeOf = (grpcCode: number) => grpcCode << 3;

const SERVICES = [
  "grpc.health.v1.Health",
  "grpc.reflection.v1.ServerReflection",
  "grpc.reflection.v1alpha.ServerReflection",
  "sessions.v1.AgentService",
  "sessions.v1.SessionService",
];

/** session_service.proto and everything it imports, transitively, in the order sent. */
const SESSION_SERVICE_CLOSURE = [
  "sessions/v1/session_service.proto",
  "google/api/annotations.proto",
  "google/api/field_behavior.proto",
  "google/protobuf/empty.proto",
  "google/protobuf/field_mask.proto",
  "google/protobuf/timestamp.proto",
  "sessions/http/v1/event_stream.proto",
  "sessions/v1/message.proto",
  "sessions/v1/session.proto",
  "sessions/v1/session_event.proto",
  "google/api/http.proto",
  "google/protobuf/descriptor.proto",
  "google/protobuf/struct.proto",
];

type RequestInit = MessageInitShape<typeof ServerReflectionRequestSchema>["messageRequest"];

/**
 * One ServerReflectionInfo stream that a test drives request by request: each ask() sends
 * one request and waits for its answer, as grpcurl and buf curl do.
 */
class ReflectionStream {
  private readonly pending: Array<ReturnType<typeof create<typeof ServerReflectionRequestSchema>>> = [];
  private wake: (() => void) | undefined;
  private closed = false;
  private readonly responses: AsyncIterator<ServerReflectionResponse>;

  constructor(client: Client<typeof ServerReflection>) {
    this.responses = client.serverReflectionInfo(this.requests())[Symbol.asyncIterator]();
  }

  async ask(messageRequest: RequestInit, host = ""): Promise<ServerReflectionResponse> {
    this.pending.push(create(ServerReflectionRequestSchema, { host, messageRequest }));
    this.wake?.();
    const next = await this.responses.next();
    if (next.done) throw new Error("the stream ended");
    return next.value;
  }

  /** Ends the request side and waits for the server to end the stream. */
  async close(): Promise<void> {
    this.closed = true;
    this.wake?.();
    expect((await this.responses.next()).done).toBe(true);
  }

  private async *requests() {
    for (;;) {
      while (this.pending.length > 0) yield this.pending.shift()!;
      if (this.closed) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
  }
}

/** The names of the files in a file_descriptor_response, in order. */
function fileNames(response: ServerReflectionResponse): string[] {
  if (response.messageResponse.case !== "fileDescriptorResponse") {
    throw new Error(`expected files, got ${response.messageResponse.case}: ${JSON.stringify(response.messageResponse.value)}`);
  }
  return response.messageResponse.value.fileDescriptorProto.map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes).name);
}

/** The files ordered so that each comes after the files it imports, as a FileDescriptorSet must be. */
function dependenciesFirst(files: readonly FileDescriptorProto[]): FileDescriptorProto[] {
  const ordered: FileDescriptorProto[] = [];
  const visit = (file: FileDescriptorProto) => {
    if (ordered.includes(file)) return;
    for (const name of file.dependency) {
      const dependency = files.find((f) => f.name === name);
      if (!dependency) throw new Error(`${file.name} imports ${name}, which was not sent`);
      visit(dependency);
    }
    ordered.push(file);
  };
  files.forEach(visit);
  return ordered;
}

describe("server reflection with buf curl (no --schema)", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.close();
  });

  it("calls SessionService/CreateSession and GetSession over gRPC", async () => {
    const created = await buf([...GRPC, "--data", JSON.stringify({ agent_id: AGENT_ID, title: "by reflection" }), `${server.url}/sessions.v1.SessionService/CreateSession`]);
    expect(created.stderr).toBe("");
    expect(created.exitCode).toBe(0);
    const session = JSON.parse(created.stdout);
    expect(session).toMatchObject({ id: expect.stringMatching(SESSION_ID_PATTERN), orgId: DEFAULT_ORG_ID, agentId: AGENT_ID, title: "by reflection" });

    const got = await buf([...GRPC, "--data", JSON.stringify({ id: session.id }), `${server.url}/sessions.v1.SessionService/GetSession`]);
    expect(got.stderr).toBe("");
    expect(got.exitCode).toBe(0);
    expect(JSON.parse(got.stdout)).toStrictEqual(session);
  });

  it("lists the services (--list-services)", async () => {
    const listed = await buf([...GRPC, "--list-services", server.url]);
    expect(listed.stderr).toBe("");
    expect(listed.stdout.trim().split("\n")).toStrictEqual(SERVICES);
  });

  it("lists the methods (--list-methods)", async () => {
    const listed = await buf([...GRPC, "--list-methods", server.url]);
    expect(listed.stderr).toBe("");
    expect(listed.stdout.trim().split("\n")).toStrictEqual([
      "grpc.health.v1.Health/Check",
      "grpc.health.v1.Health/List",
      "grpc.health.v1.Health/Watch",
      "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
      "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
      "sessions.v1.AgentService/CreateAgent",
      "sessions.v1.AgentService/DeleteAgent",
      "sessions.v1.AgentService/GetAgent",
      "sessions.v1.AgentService/ListAgents",
      "sessions.v1.AgentService/UpdateAgent",
      "sessions.v1.SessionService/AddMessage",
      "sessions.v1.SessionService/CancelSession",
      "sessions.v1.SessionService/CompleteSession",
      "sessions.v1.SessionService/CreateSession",
      "sessions.v1.SessionService/DeleteSession",
      "sessions.v1.SessionService/FailSession",
      "sessions.v1.SessionService/GetMessage",
      "sessions.v1.SessionService/GetRuntimeAgent",
      "sessions.v1.SessionService/GetSession",
      "sessions.v1.SessionService/ListMessages",
      "sessions.v1.SessionService/ListSessionEvents",
      "sessions.v1.SessionService/ListSessions",
      "sessions.v1.SessionService/RecordUsage",
      "sessions.v1.SessionService/StartSession",
      "sessions.v1.SessionService/StreamSessionEvents",
      "sessions.v1.SessionService/UpdateSession",
      "sessions.v1.SessionService/WatchSession",
    ]);
  });

  it("answers v1alpha (--reflect-protocol grpc-v1alpha): lists services and calls GetSession", async () => {
    const v1alphaFlags = [...GRPC, "--reflect-protocol", "grpc-v1alpha"];
    const listed = await buf([...v1alphaFlags, "--list-services", server.url]);
    expect(listed.stderr).toBe("");
    expect(listed.stdout.trim().split("\n")).toStrictEqual(SERVICES);

    const id = "session_0123456789abcdef0123456789abcdef";
    const got = await buf([...v1alphaFlags, "--data", JSON.stringify({ id }), `${server.url}/sessions.v1.SessionService/GetSession`]);
    expect(got.exitCode).toBe(exitCodeOf(Code.NotFound));
    expect(JSON.parse(got.stderr)).toStrictEqual({ code: "not_found", message: `session ${id} not found` });
  });

  it("reflects over the Connect protocol on HTTP/2 as well (buf curl's default protocol)", async () => {
    const health = await buf(["curl", "--http2-prior-knowledge", "--data", "{}", `${server.url}/grpc.health.v1.Health/Check`]);
    expect(health.stderr).toBe("");
    expect(JSON.parse(health.stdout)).toStrictEqual({ status: "SERVING" });
  });
});

describe.each([
  { name: "gRPC", transport: (url: string) => createGrpcTransport({ baseUrl: url }) },
  { name: "Connect over HTTP/2", transport: (url: string) => createConnectTransport({ baseUrl: url, httpVersion: "2" }) },
])("grpc.reflection.v1.ServerReflection over $name", ({ transport }) => {
  let server: TestServer;
  let client: Client<typeof ServerReflection>;
  beforeAll(async () => {
    server = await startTestServer();
    client = createClient(ServerReflection, transport(server.url));
  });
  afterAll(async () => {
    await server?.close();
  });

  it("lists every service served, health and reflection included, and echoes the request and host", async () => {
    const stream = new ReflectionStream(client);
    const response = await stream.ask({ case: "listServices", value: "*" }, "example.com:443");
    expect(response.validHost).toBe("example.com:443");
    expect(response.originalRequest?.messageRequest).toStrictEqual({ case: "listServices", value: "*" });
    expect(response.messageResponse.case).toBe("listServicesResponse");
    const names = response.messageResponse.case === "listServicesResponse" ? response.messageResponse.value.service.map((s) => s.name) : [];
    expect([...names].sort()).toStrictEqual(SERVICES);
    await stream.close();
  });

  it("sends a file with its transitive dependencies, each dependency once per stream", async () => {
    const stream = new ReflectionStream(client);
    const first = await stream.ask({ case: "fileByFilename", value: "sessions/v1/session_service.proto" });
    expect(fileNames(first)).toStrictEqual(SESSION_SERVICE_CLOSURE);
    // Only what this stream has not had yet; the file asked for always comes first.
    const agents = await stream.ask({ case: "fileByFilename", value: "sessions/v1/agent_service.proto" });
    expect(fileNames(agents)).toStrictEqual(["sessions/v1/agent_service.proto", "sessions/v1/agent.proto"]);
    const again = await stream.ask({ case: "fileByFilename", value: "sessions/v1/session_service.proto" });
    expect(fileNames(again)).toStrictEqual(["sessions/v1/session_service.proto"]);
    await stream.close();

    const fresh = new ReflectionStream(client);
    expect(fileNames(await fresh.ask({ case: "fileByFilename", value: "sessions/v1/session_service.proto" }))).toStrictEqual(
      SESSION_SERVICE_CLOSURE,
    );
    await fresh.close();
  });

  it("sends complete descriptors: they build a registry with the services, their messages and google.api.http options", async () => {
    const stream = new ReflectionStream(client);
    const response = await stream.ask({ case: "fileContainingSymbol", value: "sessions.v1.SessionService" });
    await stream.close();
    if (response.messageResponse.case !== "fileDescriptorResponse") throw new Error("expected files");
    const files = response.messageResponse.value.fileDescriptorProto.map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes));
    const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: dependenciesFirst(files) }));
    const service = registry.getService("sessions.v1.SessionService")!;
    expect(service.methods.map((m) => m.name)).toContain("CreateSession");
    const createSession = service.methods.find((m) => m.name === "CreateSession")!;
    expect(createSession.input.typeName).toBe("sessions.v1.CreateSessionRequest");
    expect(getOption(createSession, http)).toMatchObject({ pattern: { case: "post", value: "/v1/sessions" }, body: "*" });
    expect(registry.getMessage("sessions.v1.Session")?.field.createdAt?.message?.typeName).toBe("google.protobuf.Timestamp");
  });

  it.each([
    ["a service", "sessions.v1.SessionService", "sessions/v1/session_service.proto"],
    ["a method", "sessions.v1.AgentService.CreateAgent", "sessions/v1/agent_service.proto"],
    ["a message", "sessions.v1.Session", "sessions/v1/session.proto"],
    ["a field", "sessions.v1.Session.title", "sessions/v1/session.proto"],
    ["an enum", "sessions.v1.SessionStatus", "sessions/v1/session.proto"],
    ["a nested enum", "grpc.health.v1.HealthCheckResponse.ServingStatus", "health/v1/health.proto"],
    ["an enum value (scoped beside its enum)", "grpc.health.v1.HealthCheckResponse.SERVING", "health/v1/health.proto"],
    ["a nested message (a map entry)", "grpc.health.v1.HealthListResponse.StatusesEntry", "health/v1/health.proto"],
    ["a oneof", "grpc.reflection.v1.ServerReflectionRequest.message_request", "grpc/reflection/v1/reflection.proto"],
    ["a dependency's message", "google.protobuf.Timestamp", "google/protobuf/timestamp.proto"],
    ["an extension", "google.api.http", "google/api/annotations.proto"],
    ["a v1alpha service", "grpc.reflection.v1alpha.ServerReflection", "grpc/reflection/v1alpha/reflection.proto"],
  ])("finds the file containing %s (%s)", async (_kind, symbol, file) => {
    const stream = new ReflectionStream(client);
    expect(fileNames(await stream.ask({ case: "fileContainingSymbol", value: symbol }))[0]).toBe(file);
    await stream.close();
  });

  it("answers NOT_FOUND in an ErrorResponse for unknown names, and the stream goes on", async () => {
    const stream = new ReflectionStream(client);
    const errors = [];
    for (const messageRequest of [
      { case: "fileContainingSymbol", value: "sessions.v1.NoSuchThing" },
      { case: "fileContainingSymbol", value: "sessions.v1" },
      { case: "fileByFilename", value: "sessions/v1/nothing.proto" },
      { case: "fileContainingExtension", value: { containingType: "google.protobuf.MethodOptions", extensionNumber: 5 } },
      { case: "allExtensionNumbersOfType", value: "sessions.v1.Session.title" },
    ] as const) {
      const response = await stream.ask(messageRequest);
      errors.push(response.messageResponse.case === "errorResponse" ? response.messageResponse.value : response.messageResponse);
    }
    expect(errors.map(({ errorCode, errorMessage }: any) => ({ errorCode, errorMessage }))).toStrictEqual([
      { errorCode: Code.NotFound, errorMessage: 'symbol "sessions.v1.NoSuchThing" not found' },
      { errorCode: Code.NotFound, errorMessage: 'symbol "sessions.v1" not found' },
      { errorCode: Code.NotFound, errorMessage: 'file "sessions/v1/nothing.proto" not found' },
      { errorCode: Code.NotFound, errorMessage: 'extension 5 of "google.protobuf.MethodOptions" not found' },
      { errorCode: Code.NotFound, errorMessage: 'message type "sessions.v1.Session.title" not found' },
    ]);
    expect(fileNames(await stream.ask({ case: "fileContainingSymbol", value: "sessions.v1.Session" }))[0]).toBe("sessions/v1/session.proto");
    await stream.close();
  });

  it("answers extensions: the file of one by number, and every number of a type", async () => {
    const stream = new ReflectionStream(client);
    const file = await stream.ask({
      case: "fileContainingExtension",
      value: { containingType: "google.protobuf.MethodOptions", extensionNumber: 72295728 },
    });
    expect(fileNames(file)[0]).toBe("google/api/annotations.proto");
    const numbers = [];
    for (const type of ["google.protobuf.MethodOptions", "google.protobuf.FieldOptions", "sessions.v1.Session"]) {
      const response = await stream.ask({ case: "allExtensionNumbersOfType", value: type });
      numbers.push(response.messageResponse.case === "allExtensionNumbersResponse" ? { ...response.messageResponse.value } : undefined);
    }
    expect(numbers.map((n) => n && { baseTypeName: n.baseTypeName, extensionNumber: n.extensionNumber })).toStrictEqual([
      { baseTypeName: "google.protobuf.MethodOptions", extensionNumber: [51001, 72295728] },
      { baseTypeName: "google.protobuf.FieldOptions", extensionNumber: [1052] },
      { baseTypeName: "sessions.v1.Session", extensionNumber: [] },
    ]);
    await stream.close();
  });

  it("ends the stream with invalid_argument for a request of no known kind", async () => {
    const stream = new ReflectionStream(client);
    const error = await stream.ask({ case: undefined }).catch((e: unknown) => ConnectError.from(e));
    expect({ code: (error as ConnectError).code, message: (error as ConnectError).rawMessage }).toStrictEqual({
      code: Code.InvalidArgument,
      message: "reflection request names no known message_request",
    });
  });
});

describe("grpc.reflection.v1alpha.ServerReflection with a raw client", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.close();
  });

  it("answers as v1 does, in v1alpha messages", async () => {
    const client = createClient(v1alpha.ServerReflection, createGrpcTransport({ baseUrl: server.url }));
    const requests = [
      create(v1alpha.ServerReflectionRequestSchema, { messageRequest: { case: "listServices", value: "" } }),
      create(v1alpha.ServerReflectionRequestSchema, { messageRequest: { case: "fileContainingSymbol", value: "sessions.v1.Session" } }),
      create(v1alpha.ServerReflectionRequestSchema, { messageRequest: { case: "fileContainingSymbol", value: "sessions.v1.SessionService" } }),
      create(v1alpha.ServerReflectionRequestSchema, { messageRequest: { case: "fileContainingSymbol", value: "nope" } }),
    ];
    const answers = [];
    async function* each() {
      yield* requests;
    }
    for await (const response of client.serverReflectionInfo(each())) {
      expect(response.$typeName).toBe("grpc.reflection.v1alpha.ServerReflectionResponse");
      const { messageResponse } = response;
      answers.push(
        messageResponse.case === "listServicesResponse"
          ? messageResponse.value.service.map((s) => s.name).sort()
          : messageResponse.case === "fileDescriptorResponse"
            ? messageResponse.value.fileDescriptorProto.map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes).name)
            : messageResponse.case === "errorResponse"
              ? { errorCode: messageResponse.value.errorCode, errorMessage: messageResponse.value.errorMessage }
              : messageResponse.case,
      );
    }
    expect(answers).toStrictEqual([
      SERVICES,
      [
        "sessions/v1/session.proto",
        "google/api/field_behavior.proto",
        "google/protobuf/struct.proto",
        "google/protobuf/timestamp.proto",
        "google/protobuf/descriptor.proto",
      ],
      // Only what the stream has not had yet.
      [
        "sessions/v1/session_service.proto",
        "google/api/annotations.proto",
        "google/protobuf/empty.proto",
        "google/protobuf/field_mask.proto",
        "sessions/http/v1/event_stream.proto",
        "sessions/v1/message.proto",
        "sessions/v1/session_event.proto",
        "google/api/http.proto",
      ],
      { errorCode: Code.NotFound, errorMessage: 'symbol "nope" not found' },
    ]);
  });
});

describe("reflection and API keys", () => {
  const ORG_ID = "org_0123456789abcdef0123456789abcdef";

  describe("--reflection-auth required (the default), with keys", () => {
    let server: TestServer;
    let key: TestKey;
    beforeAll(async () => {
      server = await startTestServer();
      key = await insertTestKey(server.store, ORG_ID);
    });
    afterAll(async () => {
      await server?.close();
    });

    it("refuses reflection without a key: unauthenticated", async () => {
      const client = createClient(ServerReflection, createGrpcTransport({ baseUrl: server.url }));
      const error = await new ReflectionStream(client).ask({ case: "listServices", value: "" }).catch((e: unknown) => ConnectError.from(e));
      expect({ code: (error as ConnectError).code, message: (error as ConnectError).rawMessage }).toStrictEqual({
        code: Code.Unauthenticated,
        message: "missing API key: send Authorization: Bearer <key>",
      });

      // buf curl reports an unauthenticated reflection as its own usage error (exit 1),
      // taking it for the Buf Schema Registry's.
      const listed = await buf([...GRPC, "--list-services", server.url]);
      expect({ exitCode: listed.exitCode, stdout: listed.stdout }).toStrictEqual({ exitCode: 1, stdout: "" });
      expect(listed.stderr).toContain("you are not authenticated");
    });

    it("serves reflection and the call with a key", async () => {
      const auth = `Authorization: Bearer ${key.key}`;
      const listed = await buf([...GRPC, "--reflect-header", auth, "--list-services", server.url]);
      expect(listed.stderr).toBe("");
      expect(listed.stdout.trim().split("\n")).toStrictEqual(SERVICES);

      const agents = await buf([...GRPC, "-H", auth, "--reflect-header", "*", "--data", "{}", `${server.url}/sessions.v1.AgentService/ListAgents`]);
      expect(agents.stderr).toBe("");
      expect(JSON.parse(agents.stdout)).toStrictEqual({});
    });
  });

  describe("--reflection-auth none, with keys", () => {
    let server: TestServer;
    beforeAll(async () => {
      server = await startTestServer({ reflectionAuth: "none" });
      await insertTestKey(server.store, ORG_ID);
    });
    afterAll(async () => {
      await server?.close();
    });

    it("serves reflection without a key, while the API still needs one", async () => {
      const listed = await buf([...GRPC, "--list-services", server.url]);
      expect(listed.stderr).toBe("");
      expect(listed.stdout.trim().split("\n")).toStrictEqual(SERVICES);

      // The schema comes by reflection; the call itself is refused for want of a key.
      const call = await buf([...GRPC, "--data", "{}", `${server.url}/sessions.v1.AgentService/ListAgents`]);
      expect(call.exitCode).toBe(exitCodeOf(Code.Unauthenticated));
      expect(JSON.parse(call.stderr)).toStrictEqual({ code: "unauthenticated", message: "missing API key: send Authorization: Bearer <key>" });
    });
  });
});

describe("--reflection-auth / REFLECTION_AUTH", () => {
  const reflectionAuth = (argv: string[], env: Record<string, string> = {}) => {
    const parsed = parseConfig(argv, env);
    if (parsed.help) throw new Error("unexpected --help");
    return parsed.config.reflectionAuth;
  };

  it("defaults to required, takes none from the flag or the variable, the flag winning", () => {
    expect([
      reflectionAuth([]),
      reflectionAuth(["--reflection-auth", "none"]),
      reflectionAuth([], { REFLECTION_AUTH: "none" }),
      reflectionAuth(["--reflection-auth=required"], { REFLECTION_AUTH: "none" }),
    ]).toStrictEqual(["required", "none", "none", "required"]);
  });

  it("refuses any other value, naming the choices", () => {
    expect(() => reflectionAuth(["--reflection-auth", "off"])).toThrow(
      new ConfigError('--reflection-auth must be one of required, none, got "off"'),
    );
    expect(() => reflectionAuth([], { REFLECTION_AUTH: "" })).toThrow(ConfigError);
  });
});
