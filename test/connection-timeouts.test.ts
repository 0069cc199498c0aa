import * as http2 from "node:http2";
import * as net from "node:net";
import * as tls from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { requestJson, startTestServer, AGENT_ID, type TestServer } from "./helpers/server.js";
import { envelope } from "./helpers/raw-requests.js";
import { until } from "./helpers/until.js";
import { scrapeMetrics } from "./helpers/metrics.js";

/**
 * Each deadline at the edge is total: a client that trickles bytes just often enough to
 * beat an idle timer is still closed when its deadline passes. The deadlines are lowered
 * through their options so that each attack takes about a second.
 */

const TIMEOUTS = { handshakeMs: 600, headersMs: 900, h2SetupMs: 600, bodyMs: 900, keepAliveMs: 500, h2IdleMs: 700 };
/** How late a close may come after its deadline on a busy machine. */
const SLACK_MS = 1200;
const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
const DEADLINE_408 = (what: string, ms: number) => {
  const body = JSON.stringify({ code: 4, message: `${what} not received within ${ms / 1000} s`, details: [] });
  return `HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
};

interface Raw {
  readonly socket: net.Socket;
  received(): string;
  /** Milliseconds from connecting to the server's close. */
  readonly closedAfter: Promise<number>;
}

function rawConnect(port: number, open: (port: number) => net.Socket = (p) => net.connect(p, "127.0.0.1")): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const socket = open(port);
    const start = performance.now();
    let received = "";
    socket.on("data", (d: Buffer) => (received += d.toString("latin1")));
    socket.on("error", () => {});
    const closedAfter = new Promise<number>((r) => socket.once("close", () => r(performance.now() - start)));
    socket.once(socket instanceof tls.TLSSocket ? "secureConnect" : "connect", () => resolve({ socket, received: () => received, closedAfter }));
    socket.once("error", reject);
  });
}

/** Writes `text` a byte at a time every `everyMs`, until the socket closes. */
function trickle(socket: net.Socket, text: string | Buffer, everyMs: number): void {
  const bytes = Buffer.from(text);
  let i = 0;
  const timer = setInterval(() => {
    if (socket.destroyed || i >= bytes.length) return clearInterval(timer);
    socket.write(bytes.subarray(i, ++i));
  }, everyMs);
  socket.once("close", () => clearInterval(timer));
}

const sockets: Array<{ destroy(): void }> = [];

describe("deadlines on a cleartext connection", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ timeouts: TIMEOUTS });
  });
  afterAll(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    await server.close();
  });
  const connect = async () => {
    const raw = await rawConnect(server.port);
    sockets.push(raw.socket);
    return raw;
  };

  it("closes a connection trickling the HTTP/2 preface at the protocol-sniff deadline", async () => {
    const raw = await connect();
    trickle(raw.socket, PREFACE, 100);
    const after = await raw.closedAfter;
    expect(after).toBeGreaterThanOrEqual(TIMEOUTS.handshakeMs - 50);
    expect(after).toBeLessThan(TIMEOUTS.handshakeMs + SLACK_MS);
    expect(raw.received()).toBe("");
  });

  it("answers 408 to each of 50 connections that sent only G, and closes them at the headers deadline", async () => {
    const raws = await Promise.all(Array.from({ length: 50 }, () => connect()));
    for (const raw of raws) raw.socket.write("G");
    const afters = await Promise.all(raws.map((raw) => raw.closedAfter));
    expect(Math.max(...afters)).toBeLessThan(TIMEOUTS.headersMs + SLACK_MS);
    expect(Math.min(...afters)).toBeGreaterThanOrEqual(TIMEOUTS.headersMs - 50);
    for (const raw of raws) expect(raw.received()).toBe(DEADLINE_408("request headers", TIMEOUTS.headersMs));
  });

  it("answers 408 to a slowloris whose header lines keep coming, at the headers deadline", async () => {
    const raw = await connect();
    raw.socket.write("GET /v1/sessions HTTP/1.1\r\nHost: x\r\n");
    trickle(raw.socket, "X-Slow: " + "a".repeat(1000), 100);
    const after = await raw.closedAfter;
    expect(after).toBeLessThan(TIMEOUTS.headersMs + SLACK_MS);
    expect(raw.received()).toBe(DEADLINE_408("request headers", TIMEOUTS.headersMs));
  });

  it("closes an idle keep-alive connection after the keep-alive timeout, silently", async () => {
    const raw = await connect();
    raw.socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    await until(() => raw.received().includes("\r\n\r\n"), "the answer");
    const answered = raw.received();
    expect(answered).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(await raw.closedAfter).toBeLessThan(TIMEOUTS.keepAliveMs + SLACK_MS);
    expect(raw.received()).toBe(answered);
  });

  it("answers 408 to a kept-alive connection trickling its next request, at the headers deadline from the last answer", async () => {
    const raw = await connect();
    raw.socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    await until(() => raw.received().includes("\r\n\r\n"), "the answer");
    const answered = raw.received();
    trickle(raw.socket, "GET /v1/sessions HTTP/1.1\r\nHost: x\r\nX-Slow: " + "a".repeat(1000), 100);
    expect(await raw.closedAfter).toBeLessThan(TIMEOUTS.headersMs + SLACK_MS);
    expect(raw.received()).toBe(answered + DEADLINE_408("request headers", TIMEOUTS.headersMs));
  });

  it("answers 408 to an upload trickling its body, at the body deadline, and stays up", async () => {
    const raw = await connect();
    const body = JSON.stringify({ agent_id: AGENT_ID, title: "slow upload".padEnd(200, ".") });
    raw.socket.write(`POST /v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`);
    trickle(raw.socket, body, 100);
    const after = await raw.closedAfter;
    expect(after).toBeGreaterThanOrEqual(TIMEOUTS.bodyMs - 50);
    expect(after).toBeLessThan(TIMEOUTS.bodyMs + SLACK_MS);
    expect(raw.received()).toBe(DEADLINE_408("the request body", TIMEOUTS.bodyMs));
    expect((await requestJson(`${server.url}/v1/sessions`)).status).toBe(200);
  });

  it("closes an HTTP/2 connection that sent only the preface at the setup deadline", async () => {
    const raw = await connect();
    raw.socket.write(PREFACE);
    const after = await raw.closedAfter;
    expect(after).toBeLessThan(TIMEOUTS.h2SetupMs + SLACK_MS);
  });

  it("closes an HTTP/2 connection trickling its first SETTINGS frame at the setup deadline", async () => {
    const raw = await connect();
    raw.socket.write(PREFACE);
    trickle(raw.socket, Buffer.from([0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100]), 100);
    const after = await raw.closedAfter;
    expect(after).toBeLessThan(TIMEOUTS.h2SetupMs + SLACK_MS);
  });

  it("resets with CANCEL an HTTP/2 stream whose body never comes, at the body deadline; the connection stays usable", async () => {
    const session = http2.connect(server.url);
    sockets.push(session);
    session.on("error", () => {});
    const started = performance.now();
    const stream = session.request({ ":method": "POST", ":path": "/v1/sessions", "content-type": "application/json" });
    stream.on("error", () => {});
    stream.write('{"agent_id":');
    await new Promise((resolve) => stream.once("close", resolve));
    const after = performance.now() - started;
    expect(stream.rstCode).toBe(http2.constants.NGHTTP2_CANCEL);
    expect(after).toBeGreaterThanOrEqual(TIMEOUTS.bodyMs - 50);
    expect(after).toBeLessThan(TIMEOUTS.bodyMs + SLACK_MS);
    const probe = session.request({ ":path": "/healthz" });
    const [headers] = await new Promise<[http2.IncomingHttpHeaders]>((resolve) => probe.once("response", (h) => resolve([h])));
    probe.resume();
    expect(headers[":status"]).toBe(200);
    session.close();
  });

  it("closes an HTTP/2 connection with no open stream at the idle deadline, and keeps one with an open stream", async () => {
    const idle = http2.connect(server.url);
    const busy = http2.connect(server.url);
    sockets.push(idle, busy);
    idle.on("error", () => {});
    busy.on("error", () => {});
    const started = performance.now();
    const idleClosed = new Promise<number>((resolve) => idle.once("close", () => resolve(performance.now() - started)));
    let busyClosed = false;
    busy.once("close", () => (busyClosed = true));
    const probe = idle.request({ ":path": "/healthz" });
    probe.resume();
    // A health watch over Connect: a server stream that stays open.
    const watch = busy.request({ ":method": "POST", ":path": "/grpc.health.v1.Health/Watch", "content-type": "application/connect+json" });
    watch.end(envelope(0, Buffer.from("{}")));
    let watched = "";
    watch.on("data", (d: Buffer) => (watched += d.toString()));
    expect(await idleClosed).toBeLessThan(TIMEOUTS.h2IdleMs + SLACK_MS);
    await until(() => watched.includes("SERVING"), "the health watch's first message");
    // Past the idle, setup and body deadlines, the watching connection is still open.
    await new Promise((resolve) => setTimeout(resolve, TIMEOUTS.h2IdleMs + TIMEOUTS.bodyMs + 300));
    expect(busyClosed).toBe(false);
    expect(watch.closed).toBe(false);
    busy.close();
  });

  it("counts each expired deadline by kind", async () => {
    const scrape = await scrapeMetrics(server.url);
    const expired = (deadline: string) => scrape.value("sessions_connection_deadlines_expired_total", { deadline });
    // What the tests above ran into, in this file's order.
    expect({
      handshake: expired("handshake"),
      headers: expired("headers"),
      h2_setup: expired("h2_setup"),
      body: expired("body"),
      h2_idle: expired("h2_idle"),
    }).toStrictEqual({ handshake: 1, headers: 52, h2_setup: 2, body: 2, h2_idle: 1 });
  });
});

describe("deadlines on a TLS connection (h2 and http/1.1 by ALPN)", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ tls: true, shutdownTimeoutMs: 1000, timeouts: TIMEOUTS });
  });
  afterAll(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    await server.close();
  });
  const connectTls = async (alpn: string) => {
    const raw = await rawConnect(server.port, (port) => tls.connect({ port, host: "127.0.0.1", rejectUnauthorized: false, ALPNProtocols: [alpn] }));
    sockets.push(raw.socket);
    return raw;
  };

  it("closes a TCP connection that never starts its TLS handshake at the handshake deadline", async () => {
    const raw = await rawConnect(server.port);
    sockets.push(raw.socket);
    expect(await raw.closedAfter).toBeLessThan(TIMEOUTS.handshakeMs + SLACK_MS);
  });

  it("answers 408 to an HTTP/1.1 slowloris at the headers deadline", async () => {
    const raw = await connectTls("http/1.1");
    raw.socket.write("GET /v1/sessions HTTP/1.1\r\nHost: x\r\n");
    trickle(raw.socket, "X-Slow: " + "a".repeat(1000), 100);
    expect(await raw.closedAfter).toBeLessThan(TIMEOUTS.headersMs + SLACK_MS);
    expect(raw.received()).toBe(DEADLINE_408("request headers", TIMEOUTS.headersMs));
  });

  it("answers 408 to an HTTP/1.1 upload trickling its body at the body deadline", async () => {
    const raw = await connectTls("http/1.1");
    raw.socket.write(`POST /v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 300\r\n\r\n`);
    trickle(raw.socket, "a".repeat(300), 100);
    expect(await raw.closedAfter).toBeLessThan(TIMEOUTS.bodyMs + SLACK_MS);
    expect(raw.received()).toBe(DEADLINE_408("the request body", TIMEOUTS.bodyMs));
  });

  it("closes an h2 connection that sent only the preface at the setup deadline", async () => {
    const raw = await connectTls("h2");
    raw.socket.write(PREFACE);
    expect(await raw.closedAfter).toBeLessThan(TIMEOUTS.h2SetupMs + SLACK_MS);
  });

  it("closes an idle h2 connection at the idle deadline", async () => {
    const session = http2.connect(server.url, { rejectUnauthorized: false });
    sockets.push(session);
    session.on("error", () => {});
    const started = performance.now();
    const closed = new Promise<number>((resolve) => session.once("close", () => resolve(performance.now() - started)));
    const probe = session.request({ ":path": "/healthz" });
    probe.resume();
    expect(await closed).toBeLessThan(TIMEOUTS.h2IdleMs + SLACK_MS);
  });

  it("stops within the shutdown timeout plus one second with an h2 client that ignores GOAWAY and never reads", async () => {
    const raw = await connectTls("h2");
    raw.socket.write(Buffer.concat([PREFACE, Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]));
    raw.socket.pause();
    await new Promise((resolve) => setTimeout(resolve, 200));
    const started = performance.now();
    await server.stop();
    expect(performance.now() - started).toBeLessThan(1000 + 1000);
    // Its unread bytes read at last, the client sees that the server cut it.
    raw.socket.resume();
    await raw.closedAfter;
  });
});
