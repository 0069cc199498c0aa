import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as http2 from "node:http2";
import * as net from "node:net";
import * as tls from "node:tls";
import { startTestServer, TEST_TLS_CA, type TestServer } from "./helpers/server.js";
import { until } from "./helpers/until.js";

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
const SETTINGS = { headerTableSize: 0x1, enablePush: 0x2, maxConcurrentStreams: 0x3, initialWindowSize: 0x4, maxFrameSize: 0x5, maxHeaderListSize: 0x6 };
/**
 * What Node's GOAWAY carries when a client ignores SETTINGS_MAX_CONCURRENT_STREAMS: its
 * nghttp2 says INTERNAL_ERROR (0x2) on Node 20, PROTOCOL_ERROR (0x1) on Node 24.
 */
const STREAM_LIMIT_GOAWAY_CODE = Number(process.versions.node.split(".")[0]) >= 24 ? 0x1 : 0x2;

interface Frame {
  readonly type: number;
  readonly flags: number;
  readonly streamId: number;
  readonly payload: Buffer;
}

function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId, 5);
  return Buffer.concat([head, payload]);
}

/** HPACK for a POST of /v1/sessions, literals without indexing (no table state to keep). */
function postHeaders(authority: string): Buffer {
  const literal = (nameIndex: number, value: string) => Buffer.concat([Buffer.from([nameIndex, value.length]), Buffer.from(value)]);
  const named = (name: string, value: string) => Buffer.concat([Buffer.from([0x00, name.length]), Buffer.from(name), Buffer.from([value.length]), Buffer.from(value)]);
  return Buffer.concat([Buffer.from([0x83, 0x86]), literal(0x04, "/v1/sessions"), literal(0x01, authority), named("content-type", "application/json")]);
}

/** A raw HTTP/2 connection: what we write, and every frame the server sends, parsed. */
async function rawH2(socket: net.Socket): Promise<{ frames: Frame[]; write: (bytes: Buffer) => void; close: () => void }> {
  const frames: Frame[] = [];
  let pending = Buffer.alloc(0);
  socket.on("data", (chunk: Buffer) => {
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= 9 && pending.length >= 9 + pending.readUIntBE(0, 3)) {
      const length = pending.readUIntBE(0, 3);
      frames.push({ type: pending[3]!, flags: pending[4]!, streamId: pending.readUInt32BE(5) & 0x7fffffff, payload: pending.subarray(9, 9 + length) });
      pending = pending.subarray(9 + length);
    }
  });
  socket.on("error", () => {});
  socket.write(Buffer.concat([PREFACE, frame(0x4, 0, 0)]));
  await until(() => frames.some((f) => f.type === 0x4 && (f.flags & 0x1) === 0), "the server's SETTINGS frame");
  socket.write(frame(0x4, 0x1, 0));
  return { frames, write: (bytes) => socket.write(bytes), close: () => socket.destroy() };
}

/** Opens `count` streams after the first `skip`, headers without END_STREAM (each waits for a body); with `past`, waits for the GOAWAY. */
async function openStreams(h2: Awaited<ReturnType<typeof rawH2>>, port: number, count: number, skip: number, past: boolean): Promise<void> {
  const headers = postHeaders(`127.0.0.1:${port}`);
  for (let i = skip; i < skip + count; i++) h2.write(frame(0x1, 0x4, 2 * i + 1, headers));
  if (past) await until(() => h2.frames.some((f) => f.type === 0x7), "a GOAWAY");
}

/** The server's first SETTINGS frame, as identifier → value. */
function settingsOf(frames: Frame[]): Map<number, number> {
  const settings = frames.find((f) => f.type === 0x4 && (f.flags & 0x1) === 0)!;
  const values = new Map<number, number>();
  for (let i = 0; i + 6 <= settings.payload.length; i += 6) values.set(settings.payload.readUInt16BE(i), settings.payload.readUInt32BE(i + 2));
  return values;
}

/** The connection-level window the server grants us: 65,535 plus its WINDOW_UPDATEs on stream 0. */
function connectionWindowOf(frames: Frame[]): number {
  return frames.filter((f) => f.type === 0x8 && f.streamId === 0).reduce((window, f) => window + (f.payload.readUInt32BE(0) & 0x7fffffff), 65_535);
}

function expectEdgeSettings(frames: Frame[], maxConcurrentStreams: number): void {
  const settings = settingsOf(frames);
  expect(settings.get(SETTINGS.maxConcurrentStreams)).toBe(maxConcurrentStreams);
  expect(settings.get(SETTINGS.maxHeaderListSize)).toBe(64 * 1024);
  expect(settings.get(SETTINGS.initialWindowSize)).toBe(64 * 1024);
  expect(connectionWindowOf(frames)).toBe(1024 * 1024);
}

describe("HTTP/2 limits on the cleartext port (h2c)", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.close());

  it("announces 100 concurrent streams, a 64 KiB header list and 64 KiB stream / 1 MiB connection windows", async () => {
    const h2 = await rawH2(net.connect(server.port, "127.0.0.1"));
    try {
      await until(() => connectionWindowOf(h2.frames) > 65_535, "the server's connection WINDOW_UPDATE");
      expectEdgeSettings(h2.frames, 100);
    } finally {
      h2.close();
    }
  });

  it("gives node:http2 clients the same settings", async () => {
    const client = http2.connect(server.url);
    try {
      await new Promise<void>((resolve) => client.once("remoteSettings", () => resolve()));
      expect(client.remoteSettings.maxConcurrentStreams).toBe(100);
      expect(client.remoteSettings.maxHeaderListSize).toBe(64 * 1024);
      expect(client.remoteSettings.initialWindowSize).toBe(64 * 1024);
    } finally {
      client.close();
    }
  });

  it("closes a connection that opens a 101st concurrent stream: GOAWAY naming stream 199, nothing past it served", async () => {
    const h2 = await rawH2(net.connect(server.port, "127.0.0.1"));
    try {
      await openStreams(h2, server.port, 101, 0, true);
      // Node (nghttp2) treats a stream past the announced limit as a connection error.
      const goaway = h2.frames.find((f) => f.type === 0x7)!;
      expect([goaway.payload.readUInt32BE(0), goaway.payload.readUInt32BE(4)]).toEqual([199, STREAM_LIMIT_GOAWAY_CODE]);
      expect(h2.frames.filter((f) => f.type === 0x1)).toEqual([]);
    } finally {
      h2.close();
    }
  });

  it("answers a header list larger than 64 KiB with a stream error, not a served request", async () => {
    const client = http2.connect(server.url);
    client.on("error", () => {});
    try {
      const outcome = await new Promise<string>((resolve) => {
        const req = client.request({ ":path": "/healthz", "x-big": "a".repeat(70 * 1024) });
        req.on("response", (headers) => resolve(`status ${headers[":status"]}`));
        req.on("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
        req.on("close", () => resolve(`closed ${req.rstCode}`));
        req.end();
      });
      expect(outcome).toBe("ERR_HTTP2_STREAM_ERROR");
    } finally {
      client.destroy();
    }
  });
});

describe("HTTP/2 limits with the option lowered", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ h2MaxConcurrentStreams: 5 });
  });
  afterAll(() => server.close());

  it("announces and enforces --h2-max-concurrent-streams", async () => {
    const h2 = await rawH2(net.connect(server.port, "127.0.0.1"));
    try {
      expect(settingsOf(h2.frames).get(SETTINGS.maxConcurrentStreams)).toBe(5);
      await openStreams(h2, server.port, 5, 0, false);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(h2.frames.filter((f) => f.type === 0x7 || f.type === 0x3)).toEqual([]);
      await openStreams(h2, server.port, 1, 5, true);
      const goaway = h2.frames.find((f) => f.type === 0x7)!;
      expect([goaway.payload.readUInt32BE(0), goaway.payload.readUInt32BE(4)]).toEqual([9, STREAM_LIMIT_GOAWAY_CODE]);
    } finally {
      h2.close();
    }
  });
});

describe("HTTP/2 limits over TLS", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ tls: true });
  });
  afterAll(async () => {
    await server.close();
  });

  it("sends the same SETTINGS and connection window after ALPN h2", async () => {
    const socket = tls.connect({ port: server.port, host: "127.0.0.1", servername: "localhost", ca: TEST_TLS_CA, ALPNProtocols: ["h2"] });
    await new Promise<void>((resolve, reject) => socket.once("secureConnect", () => resolve()).once("error", reject));
    expect(socket.alpnProtocol).toBe("h2");
    const h2 = await rawH2(socket);
    try {
      await until(() => connectionWindowOf(h2.frames) > 65_535, "the server's connection WINDOW_UPDATE");
      expectEdgeSettings(h2.frames, 100);
    } finally {
      h2.close();
    }
  });
});
