import * as grpc from "@grpc/grpc-js";
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { SessionService } from "../gen/sessions/v1/session_service_pb.js";
import { SqliteStore } from "../src/store/sqlite.js";
import type { Store } from "../src/store/store.js";
import { GrpcJsSessionService } from "./helpers/grpc-js.js";
import { AGENT_ID, DEFAULT_ORG_ID, requestJson, startTestServer, type TestServer } from "./helpers/server.js";
import { insertTestKey, type TestKey } from "./helpers/keys.js";
import { parseMetrics, scrapeMetrics, type Scrape } from "./helpers/metrics.js";

const CREATE = "/sessions.v1.SessionService/CreateSession";
const GET = "/sessions.v1.SessionService/GetSession";
const LIST = "/sessions.v1.SessionService/ListSessions";
const WATCH = "/sessions.v1.SessionService/WatchSession";
const UNKNOWN_SESSION = "session_" + "0".repeat(32);
/** Reads of this session wait until the test lets them go (see "watch streams and calls in flight"). */
const GATED_SESSION = "session_" + "9".repeat(32);

function bearer(key: string): Interceptor {
  return (next) => (request) => {
    request.header.set("authorization", `Bearer ${key}`);
    return next(request);
  };
}

function grpcListSessions(client: grpc.Client, key: string): Promise<any> {
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${key}`);
  return new Promise((resolve, reject) =>
    (client as any).ListSessions({ page_size: 10 }, metadata, (error: Error | null, response: any) => (error ? reject(error) : resolve(response))),
  );
}

/** The sessions_rpc_requests_total series of a scrape, as "procedure protocol code" → value. */
function requestCounts(scrape: Scrape): Record<string, number> {
  return Object.fromEntries(
    scrape.find("sessions_rpc_requests_total").map((s) => [`${s.labels.procedure} ${s.labels.protocol} ${s.labels.code}`, s.value]),
  );
}

/** The sessions_rpc_request_duration_seconds_count series, as "procedure protocol" → value. */
function durationCounts(scrape: Scrape): Record<string, number> {
  return Object.fromEntries(
    scrape.find("sessions_rpc_request_duration_seconds_count").map((s) => [`${s.labels.procedure} ${s.labels.protocol}`, s.value]),
  );
}

/** Polls the metrics until `condition` holds; fails after 5 s. */
async function scrapeUntil(baseUrl: string, condition: (scrape: Scrape) => boolean, what: string): Promise<Scrape> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const scrape = await scrapeMetrics(baseUrl);
    if (condition(scrape)) return scrape;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last scrape:\n${scrape.text}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe("GET /metrics", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
    await insertTestKey(server.store, DEFAULT_ORG_ID);
  });
  afterAll(async () => {
    await server?.close();
  });

  it("answers the Prometheus text format without an API key, while the API needs one", async () => {
    const res = await fetch(`${server.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
    expect(res.headers.get("cache-control")).toBe("no-store");
    const text = await res.text();
    for (const name of [
      "sessions_rpc_requests_total",
      "sessions_rpc_request_duration_seconds",
      "sessions_rpc_in_flight_requests",
      "sessions_watch_streams_open",
      "sessions_sqlite_write_batch_duration_seconds",
      "sessions_sqlite_write_batch_size",
      "sessions_sqlite_read_duration_seconds",
    ]) {
      expect(text).toContain(`# HELP ${name} `);
    }
    expect((await requestJson(`${server.url}/v1/sessions`)).status).toBe(401);
  });

  it("includes the process's default metrics", async () => {
    const scrape = await scrapeMetrics(server.url);
    expect(scrape.value("process_cpu_user_seconds_total")).toBeGreaterThan(0);
    expect(scrape.value("process_resident_memory_bytes")).toBeGreaterThan(0);
    expect(scrape.find("nodejs_eventloop_lag_seconds")).toHaveLength(1);
  });

  it("answers HEAD with the headers only, and leaves other methods to REST (404)", async () => {
    const head = await fetch(`${server.url}/metrics`, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
    expect(await head.text()).toBe("");
    const post = await requestJson(`${server.url}/metrics`, { method: "POST" });
    expect(post.status).toBe(404);
  });
});

describe("request metrics after a known mix of traffic", () => {
  let server: TestServer;
  let key: TestKey;
  let scrape: Scrape;
  beforeAll(async () => {
    server = await startTestServer();
    key = await insertTestKey(server.store, DEFAULT_ORG_ID);
    const auth = { authorization: `Bearer ${key.key}` };
    const connect = createClient(SessionService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1", interceptors: [bearer(key.key)] }));
    const grpcWeb = createClient(SessionService, createGrpcWebTransport({ baseUrl: server.url, httpVersion: "1.1", interceptors: [bearer(key.key)] }));
    const grpcJs = new GrpcJsSessionService(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
    try {
      // REST create (ok), Connect get (ok), gRPC list (ok), gRPC-Web get (ok).
      const created = await requestJson(`${server.url}/v1/sessions`, { body: { agent_id: AGENT_ID, title: "metrics" }, headers: auth });
      expect(created.status).toBe(201);
      await connect.getSession({ id: created.body.id });
      expect((await grpcListSessions(grpcJs, key.key)).sessions).toHaveLength(1);
      await grpcWeb.getSession({ id: created.body.id });
      // REST not_found, Connect invalid_argument, REST unauthenticated (no key).
      expect((await requestJson(`${server.url}/v1/sessions/${UNKNOWN_SESSION}`, { headers: auth })).status).toBe(404);
      const invalid = await connect.createSession({ agentId: "agent_42" }).catch((e: unknown) => ConnectError.from(e));
      expect(invalid).toBeInstanceOf(ConnectError);
      expect((invalid as ConnectError).code).toBe(Code.InvalidArgument);
      expect((await requestJson(`${server.url}/v1/sessions`)).status).toBe(401);
    } finally {
      grpcJs.close();
    }
    scrape = await scrapeMetrics(server.url);
  });
  afterAll(async () => {
    await server?.close();
  });

  it("counts every call by procedure, protocol and code, auth failures included", () => {
    expect(requestCounts(scrape)).toStrictEqual({
      [`${CREATE} rest ok`]: 1,
      [`${GET} connect ok`]: 1,
      [`${LIST} grpc ok`]: 1,
      [`${GET} grpc-web ok`]: 1,
      [`${GET} rest not_found`]: 1,
      [`${CREATE} connect invalid_argument`]: 1,
      [`${LIST} rest unauthenticated`]: 1,
    });
  });

  it("times every unary call by procedure and protocol, in buckets from 0.5 ms to 5 s", () => {
    expect(durationCounts(scrape)).toStrictEqual({
      [`${CREATE} rest`]: 1,
      [`${CREATE} connect`]: 1,
      [`${GET} connect`]: 1,
      [`${GET} grpc-web`]: 1,
      [`${GET} rest`]: 1,
      [`${LIST} grpc`]: 1,
      [`${LIST} rest`]: 1,
    });
    const buckets = scrape.find("sessions_rpc_request_duration_seconds_bucket", { procedure: CREATE, protocol: "rest" });
    expect(buckets.map((b) => b.labels.le)).toStrictEqual([
      "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "+Inf",
    ]);
    expect(buckets.at(-1)!.value).toBe(1);
    expect(scrape.value("sessions_rpc_request_duration_seconds_sum", { procedure: CREATE, protocol: "rest" })).toBeGreaterThan(0);
  });

  it("has no call in flight once every answer is in", () => {
    expect(scrape.value("sessions_rpc_in_flight_requests")).toBe(0);
  });

  it("times SQLite group commits and their sizes (one write: the create), and reads by operation", () => {
    expect(scrape.value("sessions_sqlite_write_batch_duration_seconds_count")).toBe(1);
    expect(scrape.value("sessions_sqlite_write_batch_duration_seconds_sum")).toBeGreaterThan(0);
    expect(scrape.value("sessions_sqlite_write_batch_size_count")).toBe(1);
    expect(scrape.value("sessions_sqlite_write_batch_size_sum")).toBe(1);
    // The two gets that found the session and the one that did not; the gRPC list.
    expect(scrape.value("sessions_sqlite_read_duration_seconds_count", { operation: "find_session" })).toBe(3);
    expect(scrape.value("sessions_sqlite_read_duration_seconds_count", { operation: "list_sessions" })).toBe(1);
    expect(scrape.value("sessions_sqlite_read_duration_seconds_count", { operation: "find_key" })).toBeGreaterThanOrEqual(1);
  });
});

describe("watch streams and calls in flight", () => {
  let server: TestServer;
  let client: Client<typeof SessionService>;
  const release: Array<() => void> = [];
  beforeAll(async () => {
    const base = new SqliteStore(":memory:");
    // A store whose reads of one session wait until the test lets them go.
    const gated = new Proxy(base, {
      get(target, property, receiver) {
        if (property === "findSession") {
          return async (orgId: string, id: string) => {
            if (id === GATED_SESSION) await new Promise<void>((resolve) => release.push(resolve));
            return target.findSession(orgId, id);
          };
        }
        const value = Reflect.get(target, property, receiver);
        return typeof value === "function" ? value.bind(target) : value;
      },
    }) as Store;
    server = await startTestServer({ store: gated, seedAgent: true });
    client = createClient(SessionService, createConnectTransport({ baseUrl: server.url, httpVersion: "2" }));
  });
  afterAll(async () => {
    await server?.close();
  });
  afterEach(() => {
    for (const go of release.splice(0)) go();
  });

  it("counts a unary call in flight until it is answered", async () => {
    const pending = client.getSession({ id: GATED_SESSION }).catch((e: unknown) => ConnectError.from(e));
    let scrape = await scrapeUntil(server.url, (s) => s.value("sessions_rpc_in_flight_requests") === 1, "one call in flight");
    expect(release).toHaveLength(1);
    release.shift()!();
    expect(((await pending) as ConnectError).code).toBe(Code.NotFound);
    scrape = await scrapeMetrics(server.url);
    expect(scrape.value("sessions_rpc_in_flight_requests")).toBe(0);
    expect(scrape.value("sessions_rpc_requests_total", { procedure: GET, protocol: "connect", code: "not_found" })).toBe(1);
  });

  it("counts open watch streams, and each stream when it ends: canceled by its client, ok after a final status", async () => {
    const { id } = await client.createSession({ agentId: AGENT_ID });
    const abandoned = new AbortController();
    const watches = [
      (async () => {
        for await (const _ of client.watchSession({ id }, { signal: abandoned.signal }));
      })().catch((e: unknown) => ConnectError.from(e)),
      (async () => {
        for await (const _ of client.watchSession({ id }));
      })(),
    ];
    let scrape = await scrapeUntil(server.url, (s) => s.value("sessions_watch_streams_open") === 2, "two open watches");
    // Streams have their own gauge: they are not calls in flight.
    expect(scrape.value("sessions_rpc_in_flight_requests")).toBe(0);

    abandoned.abort();
    scrape = await scrapeUntil(
      server.url,
      (s) => s.value("sessions_rpc_requests_total", { procedure: WATCH, protocol: "connect", code: "canceled" }) === 1,
      "the abandoned watch to be counted",
    );
    expect(scrape.value("sessions_watch_streams_open")).toBe(1);

    await client.cancelSession({ id });
    await Promise.all(watches);
    scrape = await scrapeUntil(
      server.url,
      (s) => s.value("sessions_rpc_requests_total", { procedure: WATCH, protocol: "connect", code: "ok" }) === 1,
      "the finished watch to be counted",
    );
    expect(scrape.value("sessions_watch_streams_open")).toBe(0);
    expect(scrape.find("sessions_rpc_request_duration_seconds_count", { procedure: WATCH })).toStrictEqual([]);
  });
});

describe("one registry per server", () => {
  it("counts only the server's own calls, with the process's metrics in each", async () => {
    const [a, b] = await Promise.all([startTestServer(), startTestServer()]);
    try {
      expect((await requestJson(`${a.url}/v1/sessions/${UNKNOWN_SESSION}`)).status).toBe(404);
      const [scrapeA, scrapeB] = await Promise.all([scrapeMetrics(a.url), scrapeMetrics(b.url)]);
      expect(requestCounts(scrapeA)).toStrictEqual({ [`${GET} rest not_found`]: 1 });
      expect(requestCounts(scrapeB)).toStrictEqual({});
      expect(scrapeB.value("process_cpu_user_seconds_total")).toBeGreaterThan(0);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});

describe("parseMetrics", () => {
  it("reads names, escaped label values and values", () => {
    const scrape = parseMetrics('# HELP x y\n# TYPE x counter\nx{a="1",b="q\\"uote"} 2\ny 0.5\n');
    expect(scrape.samples).toStrictEqual([
      { name: "x", labels: { a: "1", b: 'q"uote' }, value: 2 },
      { name: "y", labels: {}, value: 0.5 },
    ]);
  });
});
