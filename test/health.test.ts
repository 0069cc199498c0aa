import * as http from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "../gen/health/v1/health_pb.js";
import { SessionService } from "../gen/sessions/v1/session_service_pb.js";
import { SqliteStore } from "../src/store/sqlite.js";
import { StoreUnavailableError } from "../src/store/store.js";
import { until } from "./helpers/until.js";
import { requestJson, startTestServer, type TestServer } from "./helpers/server.js";
import { RPC_TRANSPORTS, type RpcTransportCase } from "./helpers/rpc-transports.js";
import { insertTestKey } from "./helpers/keys.js";

const SERVICES = ["", "sessions.v1.SessionService", "sessions.v1.AgentService"] as const;
const ORG_ID = "org_0123456789abcdef0123456789abcdef";

// A grpc-js client built from the standard health .proto that grpc-health-check ships, as
// grpc_health_probe or a load balancer would use it: none of our generated code involved.
const definition = loadSync("health/v1/health.proto", {
  includeDirs: [fileURLToPath(new URL("../node_modules/grpc-health-check/proto", import.meta.url))],
  keepCase: true,
  enums: String,
  defaults: true,
});
type HealthClientConstructor = new (address: string, credentials: grpc.ChannelCredentials) => grpc.Client;
const { Health: GrpcHealth } = (grpc.loadPackageDefinition(definition) as unknown as {
  grpc: { health: { v1: { Health: HealthClientConstructor } } };
}).grpc.health.v1;

interface GrpcHealthClient extends grpc.Client {
  Check(request: { service: string }, callback: (error: grpc.ServiceError | null, response: { status: string }) => void): void;
  Watch(request: { service: string }): grpc.ClientReadableStream<{ status: string }>;
}

function grpcJsClient(server: TestServer): GrpcHealthClient {
  return new GrpcHealth(new URL(server.url).host, grpc.credentials.createInsecure()) as GrpcHealthClient;
}

function grpcJsCheck(client: GrpcHealthClient, service: string): Promise<{ status: string }> {
  return new Promise((resolve, reject) => client.Check({ service }, (error, response) => (error ? reject(error) : resolve(response))));
}

/** A watch running in the background: what it has received, and how it ended. */
interface Watch<T> {
  readonly statuses: T[];
  /** Resolves when the stream ends: undefined when it ended cleanly, else its error. */
  readonly ended: Promise<unknown>;
}

function watchOverConnect(client: Client<typeof Health>, service: string): Watch<ServingStatus> {
  const statuses: ServingStatus[] = [];
  const ended = (async () => {
    try {
      for await (const response of client.watch({ service })) statuses.push(response.status);
      return undefined;
    } catch (error) {
      return ConnectError.from(error);
    }
  })();
  return { statuses, ended };
}

function watchOverGrpcJs(client: GrpcHealthClient, service: string): Watch<string> {
  const statuses: string[] = [];
  const call = client.Watch({ service });
  call.on("data", (response: { status: string }) => statuses.push(response.status));
  const ended = new Promise<unknown>((resolve) => {
    call.on("error", resolve);
    call.on("end", () => resolve(undefined));
  });
  return { statuses, ended };
}

const byName = (name: string): RpcTransportCase => RPC_TRANSPORTS.find((t) => t.name === name)!;
/** One of each protocol a health client can use: Connect, gRPC-Web, gRPC. */
const WATCH_TRANSPORTS = [
  byName("Connect JSON over HTTP/1.1"),
  byName("gRPC-Web binary over HTTP/1.1"),
  byName("gRPC binary over HTTP/2"),
];

describe("grpc.health.v1.Health on a server whose API needs a key", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
    await insertTestKey(server.store, ORG_ID);
  });
  afterAll(async () => {
    await server?.close();
  });

  it("refuses the API itself without a key (so the health answers below needed none)", async () => {
    const client = createClient(SessionService, byName("gRPC binary over HTTP/2").create(server.url));
    const error = await client.getSession({ id: "session_0123456789abcdef0123456789abcdef" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.Unauthenticated);
  });

  describe("over a grpc-js client loaded from grpc-health-check's health.proto", () => {
    let client: GrpcHealthClient;
    beforeAll(() => {
      client = grpcJsClient(server);
    });
    afterAll(() => client?.close());

    it.each(SERVICES)("answers SERVING for %j", async (service) => {
      expect(await grpcJsCheck(client, service)).toStrictEqual({ status: "SERVING" });
    });

    it("answers NOT_FOUND for a service the server does not serve", async () => {
      const error = (await grpcJsCheck(client, "sessions.v1.NoSuchService").catch((e: unknown) => e)) as grpc.ServiceError;
      expect({ code: error.code, details: error.details }).toStrictEqual({
        code: grpc.status.NOT_FOUND,
        details: 'unknown service "sessions.v1.NoSuchService"',
      });
    });
  });

  describe.each(RPC_TRANSPORTS)("over $name", (transport) => {
    let client: Client<typeof Health>;
    beforeAll(() => {
      client = createClient(Health, transport.create(server.url));
    });

    it("answers SERVING for the whole server and for each service", async () => {
      const answers = [];
      for (const service of SERVICES) answers.push((await client.check({ service })).status);
      expect(answers).toStrictEqual([ServingStatus.SERVING, ServingStatus.SERVING, ServingStatus.SERVING]);
    });

    it("answers not_found for an unknown service", async () => {
      const error = await client.check({ service: "grpc.health.v1.Health" }).catch((e: unknown) => ConnectError.from(e));
      expect({ code: (error as ConnectError).code, message: (error as ConnectError).rawMessage }).toStrictEqual({
        code: Code.NotFound,
        message: 'unknown service "grpc.health.v1.Health"',
      });
    });

    it("lists every status", async () => {
      const { statuses } = await client.list({});
      expect(Object.fromEntries(Object.entries(statuses).map(([name, response]) => [name, response.status]))).toStrictEqual({
        "": ServingStatus.SERVING,
        "sessions.v1.SessionService": ServingStatus.SERVING,
        "sessions.v1.AgentService": ServingStatus.SERVING,
      });
    });
  });
});

describe("Health/Watch while the server stops", () => {
  let server: TestServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it.each(WATCH_TRANSPORTS)("over $name: SERVING, then NOT_SERVING when the stop begins, then the stream ends unavailable", async (transport) => {
    server = await startTestServer();
    await insertTestKey(server.store, ORG_ID);
    const client = createClient(Health, transport.create(server.url));
    const whole = watchOverConnect(client, "");
    const sessions = watchOverConnect(client, "sessions.v1.SessionService");
    await until(() => whole.statuses.length === 1 && sessions.statuses.length === 1, "the current statuses");

    const stopped = server.stop();
    const [wholeEnd, sessionsEnd] = await Promise.all([whole.ended, sessions.ended]);
    await stopped;
    expect(whole.statuses).toStrictEqual([ServingStatus.SERVING, ServingStatus.NOT_SERVING]);
    expect(sessions.statuses).toStrictEqual([ServingStatus.SERVING, ServingStatus.NOT_SERVING]);
    for (const end of [wholeEnd, sessionsEnd]) {
      expect({ code: (end as ConnectError).code, message: (end as ConnectError).rawMessage }).toStrictEqual({
        code: Code.Unavailable,
        message: "server is shutting down",
      });
    }
  });

  it("over a grpc-js client: SERVING, then NOT_SERVING, then UNAVAILABLE", async () => {
    server = await startTestServer();
    const client = grpcJsClient(server);
    try {
      const watch = watchOverGrpcJs(client, "sessions.v1.AgentService");
      await until(() => watch.statuses.length === 1, "the current status");
      const stopped = server.stop();
      const end = (await watch.ended) as grpc.ServiceError;
      await stopped;
      expect(watch.statuses).toStrictEqual(["SERVING", "NOT_SERVING"]);
      expect({ code: end.code, details: end.details }).toStrictEqual({ code: grpc.status.UNAVAILABLE, details: "server is shutting down" });
    } finally {
      client.close();
    }
  });

  it("sends SERVICE_UNKNOWN for an unknown service and keeps watching until the stop", async () => {
    server = await startTestServer();
    const client = createClient(Health, byName("gRPC binary over HTTP/2").create(server.url));
    const watch = watchOverConnect(client, "sessions.v1.NoSuchService");
    await until(() => watch.statuses.length === 1, "the current status");
    const early = await Promise.race([watch.ended.then(() => "ended"), new Promise((resolve) => setTimeout(() => resolve("open"), 300))]);
    expect(early).toBe("open");

    await server.stop();
    expect(watch.statuses).toStrictEqual([ServingStatus.SERVICE_UNKNOWN]);
    expect(((await watch.ended) as ConnectError).code).toBe(Code.Unavailable);
  });

  it("answers Check with NOT_SERVING once the stop has begun (a request still uploading when it began)", async () => {
    server = await startTestServer();
    const url = new URL(server.url);
    const body = JSON.stringify({ service: "sessions.v1.SessionService" });
    const request = http.request({
      host: url.hostname,
      port: url.port,
      method: "POST",
      path: "/grpc.health.v1.Health/Check",
      headers: { "Content-Type": "application/json", "Content-Length": String(body.length) },
    });
    const answered = new Promise<{ status: number; body: string }>((resolve, reject) => {
      request.on("response", (res) => {
        let text = "";
        res.on("data", (chunk: Buffer) => (text += chunk.toString()));
        res.on("end", () => resolve({ status: res.statusCode!, body: text }));
      });
      request.on("error", reject);
    });
    request.write(body.slice(0, 5));
    await until(() => server!.inFlight() === 1, "the request in flight");
    const stopped = server.stop();
    request.end(body.slice(5));
    expect(await answered).toStrictEqual({ status: 200, body: '{"status":"NOT_SERVING"}' });
    await stopped;
  });
});

describe("/healthz and /readyz", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
    await insertTestKey(server.store, ORG_ID);
  });
  afterAll(async () => {
    await server?.close();
  });

  it("refuses the REST API without a key (so the probes below needed none)", async () => {
    expect((await requestJson(`${server.url}/v1/sessions`)).status).toBe(401);
  });

  it("GET /healthz: 200 {\"status\":\"ok\"}, not cached", async () => {
    const res = await fetch(`${server.url}/healthz`);
    expect({ status: res.status, type: res.headers.get("content-type"), cache: res.headers.get("cache-control"), body: await res.text() })
      .toStrictEqual({ status: 200, type: "application/json", cache: "no-store", body: '{"status":"ok"}' });
  });

  it("GET /readyz: 200 {\"status\":\"ready\"} while the database answers, not cached", async () => {
    const res = await fetch(`${server.url}/readyz?verbose=1`);
    expect({ status: res.status, type: res.headers.get("content-type"), cache: res.headers.get("cache-control"), body: await res.text() })
      .toStrictEqual({ status: 200, type: "application/json", cache: "no-store", body: '{"status":"ready"}' });
  });

  it("HEAD answers the same status and headers without a body", async () => {
    const res = await fetch(`${server.url}/healthz`, { method: "HEAD" });
    expect({ status: res.status, length: res.headers.get("content-length"), body: await res.text() })
      .toStrictEqual({ status: 200, length: "15", body: "" });
  });

  it("keeps an HTTP/1.1 connection open", async () => {
    const res = await fetch(`${server.url}/healthz`);
    await res.text();
    expect(res.headers.get("connection")).toBe("keep-alive");
  });

  it("answers 405 with Allow to other methods", async () => {
    const res = await requestJson(`${server.url}/readyz`, { method: "POST" });
    expect({ status: res.status, allow: res.headers.get("allow"), body: res.body }).toStrictEqual({
      status: 405,
      allow: "GET, HEAD",
      body: { code: Code.Unimplemented, message: "method POST is not allowed for /readyz", details: [] },
    });
  });

  it("answers over HTTP/2 as well", async () => {
    const client = (await import("node:http2")).connect(server.url);
    try {
      const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const stream = client.request({ ":path": "/readyz" });
        let status = 0;
        let body = "";
        stream.on("response", (headers) => (status = headers[":status"]!));
        stream.on("data", (chunk: Buffer) => (body += chunk.toString()));
        stream.on("end", () => resolve({ status, body }));
        stream.on("error", reject);
      });
      expect(answer).toStrictEqual({ status: 200, body: '{"status":"ready"}' });
    } finally {
      client.close();
    }
  });
});

describe("/readyz when it cannot serve", () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  function tempDbPath(): string {
    const dir = mkdtempSync(join(tmpdir(), "sessions-readyz-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    return join(dir, "sessions.db");
  }

  it("answers 503 with the storage's clean reason while the database does not answer, /healthz still 200", async () => {
    // No checkpoint worker: its connection would outlive the one closed below.
    const store = new SqliteStore(tempDbPath(), { checkpointInWorker: false });
    const server = await startTestServer({ store });
    cleanups.push(() => server.close());
    store.db.close();

    const res = await fetch(`${server.url}/readyz`);
    expect({ status: res.status, cache: res.headers.get("cache-control"), body: await res.json() }).toStrictEqual({
      status: 503,
      cache: "no-store",
      body: { status: "unavailable", reason: "storage could not read or write; try again later" },
    });
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    expect(server.logs.filter((line) => line.msg === "not ready: storage did not answer")).toHaveLength(1);
  });

  it("answers 503 once the stop has begun, even to a probe that started before", async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let pingStarted!: () => void;
    const pinging = new Promise<void>((resolve) => (pingStarted = resolve));
    class SlowPingStore extends SqliteStore {
      override async ping(): Promise<void> {
        pingStarted();
        await gate;
        return super.ping();
      }
    }
    const server = await startTestServer({ store: new SlowPingStore(tempDbPath()) });
    cleanups.push(() => server.close());

    const probe = fetch(`${server.url}/readyz`).then(async (res) => ({ status: res.status, body: await res.json() }));
    // The stop begins only once the probe is in the server, waiting for the database (a fixed
    // delay raced the connection on a loaded machine, and the stop reset a socket not yet in use).
    await pinging;
    const stopped = server.stop();
    release();
    expect(await probe).toStrictEqual({ status: 503, body: { status: "unavailable", reason: "server is shutting down" } });
    await stopped;
  });
});

describe("SqliteStore.ping", () => {
  it("resolves while the database answers and rejects as StoreUnavailableError when it cannot", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sessions-ping-"));
    try {
      const store = new SqliteStore(join(dir, "sessions.db"), { checkpointInWorker: false });
      await expect(store.ping()).resolves.toBeUndefined();
      store.db.close();
      const error = await store.ping().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StoreUnavailableError);
      expect((error as StoreUnavailableError).reason).toBe("io");
      expect((error as Error).cause).toBeInstanceOf(Error);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
