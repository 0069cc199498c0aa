import * as http2 from "node:http2";
import * as net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createIdGenerator } from "../src/ids.js";
import type { SessionRecord } from "../src/store/store.js";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { until } from "./helpers/until.js";
import { storedSession } from "./helpers/stored-session.js";

/**
 * Back-pressure instead of buffering (--connection-write-budget): a client that does not
 * read holds at most its socket buffers plus the budget. HTTP/1.1 pipelined requests are
 * answered one at a time, no faster than the client reads; HTTP/2 streams whose unsent
 * answers take their connection past the budget are reset with ENHANCE_YOUR_CALM. Before,
 * every pipelined request was served at once and its answer buffered, and HTTP/2 streams
 * buffered whatever flow control held back.
 */

const BUDGET = 2 * 1024 * 1024;
/** 25 sessions of 40 KiB: every page below is about 1 MiB. */
const SESSIONS = 25;
const PAGE = `/v1/sessions?page_size=${SESSIONS}`;

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ connectionWriteBudget: BUDGET });
  const newId = createIdGenerator(() => 1_700_000_000_000);
  for (let i = 0; i < SESSIONS; i++) await server.store.insertSession(largeSession(newId("session"), 1_700_000_000_000 + i));
});
afterAll(() => server.close());

const listCalls = () => server.logs.filter((l) => l.msg === "request" && l.procedure === "/sessions.v1.SessionService/ListSessions").length;

describe("HTTP/1.1 pipelining", () => {
  it("answers 100 pipelined lists no faster than the client reads them, then all of them in order", async () => {
    const before = listCalls();
    const socket = net.connect(server.port, "127.0.0.1");
    await new Promise((resolve) => socket.once("connect", resolve));
    socket.pause();
    const requests = 100;
    socket.write(`GET ${PAGE} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`.repeat(requests));
    // Loopback socket buffers take a few answers; the server must then wait for the client.
    // The time it has to go wrong: 100 lists of 1 MiB take well under this here.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const servedWhileUnread = listCalls() - before;
    expect(servedWhileUnread).toBeGreaterThan(0);
    expect(servedWhileUnread).toBeLessThan(30);

    // Reading, the client gets every answer, whole and in order.
    let received = 0;
    let statuses = 0;
    let tail = "";
    socket.on("data", (chunk: Buffer) => {
      received += chunk.length;
      const text = tail + chunk.toString("latin1");
      statuses += (text.match(/HTTP\/1\.1 200 OK\r\n/g) ?? []).length;
      tail = text.slice(-20);
    });
    socket.resume();
    await until(() => statuses === requests, `${requests} answers (got ${statuses})`, 20_000);
    expect(listCalls() - before).toBe(requests);
    expect(received).toBeGreaterThan(requests * SESSIONS * 40 * 1024);
    socket.destroy();
  });
});

describe("HTTP/1.1, one answer larger than the budget", () => {
  it("ends the connection of a client that does not read it, and logs why", async () => {
    // 64 KiB of budget, 400 sessions of 40 KiB in one page: about 16 MB, more than
    // loopback's socket buffers take.
    const small = await startTestServer({ connectionWriteBudget: 64 * 1024, listPageBytes: 32 * 1024 * 1024 });
    try {
      const newId = createIdGenerator(() => 1_700_000_000_000);
      for (let i = 0; i < 400; i++) await small.store.insertSession(largeSession(newId("session"), 1_700_000_000_000 + i));
      const socket = net.connect(small.port, "127.0.0.1");
      socket.on("error", () => {});
      socket.pause();
      socket.write(`GET /v1/sessions?page_size=1000 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
      const ended = () => small.logs.find((l) => String(l.msg).startsWith("client not reading") && l.protocol === "h1");
      await until(() => ended() !== undefined, "the connection ended past the budget", 10_000);
      expect(ended()).toMatchObject({ level: 30, budget: 64 * 1024 });
      // The client, reading now, finds the answer cut short and the connection closed.
      let received = 0;
      socket.on("data", (chunk: Buffer) => (received += chunk.length));
      const closed = new Promise((resolve) => socket.once("close", resolve));
      socket.resume();
      await closed;
      expect(received).toBeLessThan(16 * 1024 * 1024);
    } finally {
      await small.close();
    }
  });
});

describe("HTTP/2 streams that are not read", () => {
  it("resets the streams whose unsent answers pass the connection's budget, and serves the others", async () => {
    const session = http2.connect(server.url);
    // A connection window for every stream's 64 KiB: node's client never gives back what
    // it received on the streams that get reset, and would stall the others.
    await new Promise((resolve) => session.once("connect", resolve));
    session.setLocalWindowSize(8 * 1024 * 1024);
    const streams = Array.from({ length: 20 }, () => {
      const stream = session.request({ ":path": PAGE });
      // Never read: flow control keeps the answers on the server.
      stream.pause();
      stream.on("error", () => {});
      return stream;
    });
    const closed = () => streams.filter((s) => s.closed).length;
    // Each answer is about 1 MiB: only about two fit in the 2 MiB budget.
    await until(() => closed() >= 15, "streams reset past the budget", 10_000);
    const reset = streams.filter((s) => s.closed);
    expect(new Set(reset.map((s) => s.rstCode))).toEqual(new Set([http2.constants.NGHTTP2_ENHANCE_YOUR_CALM]));
    expect(server.logs.some((l) => l.msg?.toString().startsWith("client not reading") && l.protocol === "h2")).toBe(true);

    // The streams left are whole once read.
    const left = streams.filter((s) => !s.closed);
    expect(left.length).toBeGreaterThan(0);
    const bodies = await Promise.all(
      left.map(
        (stream) =>
          new Promise<string>((resolve) => {
            let body = "";
            stream.setEncoding("utf8");
            stream.on("data", (chunk: string) => (body += chunk));
            stream.on("end", () => resolve(body));
            stream.resume();
          }),
      ),
    );
    for (const body of bodies) expect(JSON.parse(body).sessions).toHaveLength(SESSIONS);
    session.destroy();
  });
});

function largeSession(id: string, createdAt: number): SessionRecord {
  return storedSession(id, createdAt, { title: "large", capabilities: [{ capabilityId: "big", config: { blob: "x".repeat(40 * 1024) } }] });
}
