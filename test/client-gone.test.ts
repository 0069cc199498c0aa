import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as http2 from "node:http2";
import * as net from "node:net";
import { create, toBinary } from "@bufbuild/protobuf";
import { WatchSessionRequestSchema } from "../gen/sessions/v1/session_service_pb.js";
import { SqliteStore } from "../src/store/sqlite.js";
import type { Store } from "../src/store/store.js";
import { AGENT_ID, DEFAULT_ORG_ID, requestJson, startTestServer, type TestServer } from "./helpers/server.js";
import { scrapeMetrics } from "./helpers/metrics.js";
import { envelope } from "./helpers/raw-requests.js";
import { until } from "./helpers/until.js";

const NODE_MAJOR = Number(process.versions.node.split(".")[0]);

// Clients going away are not errors: an upload cut short, a reset stream, a watcher that
// leaves are logged at info as `canceled` with their real cause, counted under `canceled`,
// and never logged at error level as `internal`; a list in progress stops reading.

const CREATE = "/sessions.v1.SessionService/CreateSession";
const LIST = "/sessions.v1.SessionService/ListSessions";
const WATCH = "/sessions.v1.SessionService/WatchSession";

let server: TestServer;
/** Store list reads wait for the test while `gateLists` is set. */
let gateLists = false;
let listReads = 0;
const release: Array<() => void> = [];

beforeAll(async () => {
  const base = new SqliteStore(":memory:");
  const gated = new Proxy(base, {
    get(target, property, receiver) {
      if (property === "listSessions") {
        return async (...args: Parameters<Store["listSessions"]>) => {
          if (gateLists) {
            listReads++;
            await new Promise<void>((resolve) => release.push(resolve));
          }
          return target.listSessions(...args);
        };
      }
      const value = Reflect.get(target, property, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  }) as Store;
  server = await startTestServer({ store: gated, seedAgent: true });
});

afterAll(async () => {
  gateLists = false;
  for (const go of release.splice(0)) go();
  await server?.close();
});

const requestRecords = (procedure: string) => server.logs.filter((l) => l.msg === "request" && l.procedure === procedure);
const errorRecords = () => server.logs.filter((l) => (l.level as number) >= 50);

async function createSession(): Promise<string> {
  const res = await requestJson(`${server.url}/v1/sessions`, { body: { agent_id: AGENT_ID, title: "going away" } });
  expect(res.status).toBe(201);
  return res.body.id as string;
}

describe("clients going away", () => {
  it("a REST upload cut short is logged at info as canceled with its cause, and counted as canceled", async () => {
    const before = requestRecords(CREATE).length;
    const socket = net.connect(server.port, "127.0.0.1");
    await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
    socket.write(`POST /v1/sessions HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"agent_id":`);
    await new Promise((resolve) => setTimeout(resolve, 50));
    socket.destroy();
    await until(() => requestRecords(CREATE).length > before, "the request record");
    const record = requestRecords(CREATE).at(-1)!;
    expect({ level: record.level, code: record.code, error: record.error, status: record.status }).toEqual({
      level: 30,
      code: "canceled",
      error: "the client went away: it closed the connection",
      status: 499,
    });
    expect(errorRecords()).toEqual([]);
    const scrape = await scrapeMetrics(server.url);
    expect(scrape.value("sessions_rpc_requests_total", { procedure: CREATE, protocol: "rest", code: "canceled" })).toBe(1);
  });

  it("a list whose client resets its stream stops reading between chunks, and is canceled", async () => {
    for (let i = 0; i < 250; i += 50) await Promise.all(Array.from({ length: 50 }, () => createSession()));
    const before = requestRecords(LIST).length;
    gateLists = true;
    listReads = 0;
    const client = http2.connect(server.url);
    try {
      const req = client.request({ ":path": "/v1/sessions?page_size=250" });
      req.on("error", () => {});
      await until(() => release.length === 1, "the first list read");
      req.close(http2.constants.NGHTTP2_CANCEL);
      await new Promise<void>((resolve) => req.once("close", () => resolve()));
      // The server sees the reset in its next read.
      await new Promise((resolve) => setTimeout(resolve, 50));
      release.shift()!();
      await until(() => requestRecords(LIST).length > before, "the request record");
    } finally {
      gateLists = false;
      for (const go of release.splice(0)) go();
      client.close();
    }
    // 251 rows are three reads of 100; the reset stopped it after the first.
    expect(listReads).toBe(1);
    const record = requestRecords(LIST).at(-1)!;
    expect({ level: record.level, code: record.code, error: record.error }).toEqual({
      level: 30,
      code: "canceled",
      error: "the client went away: it reset the HTTP/2 stream (CANCEL)",
    });
    expect(errorRecords()).toEqual([]);
    const scrape = await scrapeMetrics(server.url);
    expect(scrape.value("sessions_rpc_requests_total", { procedure: LIST, protocol: "rest", code: "canceled" })).toBe(1);
  });

  it("a gRPC watcher that stops reading and resets is canceled, never internal, and the gauge counts it while open", async () => {
    const id = await createSession();
    const stored = (await server.store.findSession(DEFAULT_ORG_ID, id))!;
    const before = requestRecords(WATCH).length;
    // A 1 KiB window, never read: the server's writes soon wait for a WINDOW_UPDATE that never comes.
    const client = http2.connect(server.url, { settings: { initialWindowSize: 1024 } });
    try {
      const req = client.request({ ":method": "POST", ":path": WATCH, "content-type": "application/grpc", te: "trailers" });
      req.on("error", () => {});
      req.pause();
      req.end(envelope(0, toBinary(WatchSessionRequestSchema, create(WatchSessionRequestSchema, { id }))));
      await until(() => server.events.watchers(DEFAULT_ORG_ID, id) === 1, "the watch to subscribe");
      // More changes than a watcher may have waiting (1,024): it is ended as fallen behind,
      // but its stream stays open while the error waits behind the unread messages.
      for (let v = 1; v <= 1100; v++) server.events.changed({ ...stored, title: "x".repeat(200), version: stored.version + v });
      expect(server.events.watchers(DEFAULT_ORG_ID, id)).toBe(0);
      // Open on the wire while the error waits behind the unread messages (Node 20); Node 24
      // resets such a stream at once instead. Either way the gauge counts what is open.
      let scrape = await scrapeMetrics(server.url);
      expect(scrape.value("sessions_watch_streams_open")).toBe(NODE_MAJOR >= 24 ? server.inFlight() : 1);
      expect(server.inFlight()).toBeLessThanOrEqual(1);

      req.close(http2.constants.NGHTTP2_CANCEL);
      await until(() => requestRecords(WATCH).length > before, "the request record");
      const record = requestRecords(WATCH).at(-1)!;
      expect({ level: record.level, code: record.code }).toEqual({ level: 30, code: "resource_exhausted" });
      expect(errorRecords()).toEqual([]);
      await until(() => server.inFlight() === 0, "the stream to close");
      scrape = await scrapeMetrics(server.url);
      expect(scrape.value("sessions_watch_streams_open")).toBe(0);
    } finally {
      client.destroy();
    }
  });

  it("a gRPC watcher that resets while the server waits to write is canceled, never internal", async () => {
    const id = await createSession();
    const stored = (await server.store.findSession(DEFAULT_ORG_ID, id))!;
    const before = requestRecords(WATCH).length;
    const client = http2.connect(server.url, { settings: { initialWindowSize: 1024 } });
    try {
      const req = client.request({ ":method": "POST", ":path": WATCH, "content-type": "application/grpc", te: "trailers" });
      req.on("error", () => {});
      req.pause();
      req.end(envelope(0, toBinary(WatchSessionRequestSchema, create(WatchSessionRequestSchema, { id }))));
      await until(() => server.events.watchers(DEFAULT_ORG_ID, id) === 1, "the watch to subscribe");
      // Fewer than the watcher may have waiting: it stays subscribed, its writes blocked.
      for (let v = 1; v <= 100; v++) server.events.changed({ ...stored, title: "x".repeat(200), version: stored.version + v });
      await new Promise((resolve) => setTimeout(resolve, 50));
      req.close(http2.constants.NGHTTP2_CANCEL);
      await until(() => requestRecords(WATCH).length > before, "the request record");
      const record = requestRecords(WATCH).at(-1)!;
      expect({ level: record.level, code: record.code }).toEqual({ level: 30, code: "canceled" });
      expect(String(record.error)).toMatch(/^the client went away: /);
      expect(errorRecords()).toEqual([]);
      await until(() => server.events.watchers(DEFAULT_ORG_ID, id) === 0, "the watch to unsubscribe");
      const scrape = await scrapeMetrics(server.url);
      expect(scrape.value("sessions_rpc_requests_total", { procedure: WATCH, protocol: "grpc", code: "internal" })).toBeUndefined();
    } finally {
      client.destroy();
    }
  });
});
