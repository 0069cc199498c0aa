import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as http from "node:http";
import * as http2 from "node:http2";
import * as https from "node:https";
import * as net from "node:net";
import { dirname, join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { SessionService } from "../gen/sessions/v1/session_service_pb.js";
import { AGENT_ID, startTestServer, TEST_TLS_CA, type TestServer } from "./helpers/server.js";
import { spawnServer } from "./helpers/process.js";

const body = JSON.stringify({ agent_id: AGENT_ID, title: "one port" });

function h1Post(url: string, options: https.RequestOptions = {}): Promise<{ version: string; status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const client = url.startsWith("https") ? https : http;
    const req = client.request(`${url}/v1/sessions`, { method: "POST", headers: { "content-type": "application/json" }, ...options }, (res) => {
      let text = "";
      res.on("data", (d: Buffer) => (text += d.toString()));
      res.on("end", () => resolve({ version: res.httpVersion, status: res.statusCode!, text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

function h2Post(url: string, options: http2.SecureClientSessionOptions = {}): Promise<{ status: number; text: string; alpn: string | undefined }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url, options);
    session.on("error", reject);
    const stream = session.request({ ":method": "POST", ":path": "/v1/sessions", "content-type": "application/json" });
    let status = 0;
    let text = "";
    stream.on("response", (headers) => (status = Number(headers[":status"])));
    stream.on("data", (d: Buffer) => (text += d.toString()));
    stream.on("end", () => {
      const alpn = (session.socket as { alpnProtocol?: string }).alpnProtocol;
      session.close();
      resolve({ status, text, alpn: alpn || undefined });
    });
    stream.end(body);
  });
}

describe("one cleartext port for HTTP/1.1 and h2c", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server.close();
  });

  it("serves REST over HTTP/1.1", async () => {
    const res = await h1Post(server.url);
    expect(res.version).toBe("1.1");
    expect(res.status).toBe(201);
    expect(JSON.parse(res.text).title).toBe("one port");
  });

  it("serves REST over HTTP/2 with prior knowledge on the same port", async () => {
    const res = await h2Post(server.url);
    expect(res.status).toBe(201);
    expect(JSON.parse(res.text).title).toBe("one port");
  });

  it("answers a request that is not HTTP with 400 and closes, and keeps serving", async () => {
    const { port } = new URL(server.url);
    const reply = await new Promise<string>((resolve) => {
      const socket = net.connect(Number(port), "127.0.0.1", () => socket.write("HELLO\r\n\r\n"));
      let text = "";
      socket.on("data", (d: Buffer) => (text += d.toString()));
      socket.on("close", () => resolve(text));
    });
    expect(reply).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect((await h1Post(server.url)).status).toBe(201);
  });

  it("recognises an HTTP/2 preface that arrives a few bytes at a time", async () => {
    // A proxy that forwards the client's first bytes in small, separate writes.
    const { port } = new URL(server.url);
    const proxy = net.createServer((client) => {
      const upstream = net.connect(Number(port), "127.0.0.1");
      let forwarded = 0;
      client.on("data", async (chunk: Buffer) => {
        client.pause();
        for (let i = 0; i < chunk.length; ) {
          const step = forwarded < 30 ? 3 : chunk.length - i;
          upstream.write(chunk.subarray(i, i + step));
          forwarded += step;
          i += step;
          if (forwarded <= 30) await new Promise((resolve) => setTimeout(resolve, 5));
        }
        client.resume();
      });
      upstream.pipe(client);
      client.on("close", () => upstream.destroy());
      upstream.on("close", () => client.destroy());
    });
    await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
    try {
      const res = await h2Post(`http://127.0.0.1:${(proxy.address() as net.AddressInfo).port}`);
      expect(res.status).toBe(201);
    } finally {
      proxy.close();
    }
  });
});

describe("TLS", () => {
  let server: TestServer;
  const ca = TEST_TLS_CA;
  beforeAll(async () => {
    server = await startTestServer({ tls: true });
  });
  afterAll(async () => {
    await server.close();
  });

  it("negotiates h2 by ALPN", async () => {
    expect(server.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const res = await h2Post(server.url.replace("127.0.0.1", "localhost"), { ca });
    expect(res.alpn).toBe("h2");
    expect(res.status).toBe(201);
  });

  it("negotiates http/1.1 by ALPN", async () => {
    const res = await h1Post(server.url.replace("127.0.0.1", "localhost"), { ca });
    expect(res.version).toBe("1.1");
    expect(res.status).toBe(201);
  });

  it("serves gRPC over TLS", async () => {
    const transport = createGrpcTransport({ baseUrl: server.url.replace("127.0.0.1", "localhost"), nodeOptions: { ca } });
    const client = createClient(SessionService, transport);
    const session = await client.createSession({ agentId: AGENT_ID, title: "tls" });
    expect((await client.getSession({ id: session.id })).title).toBe("tls");
  });

  it("is enabled from the command line by --tls-cert and --tls-key", async () => {
    const p = await spawnServer([
      "--port", "0", "--db", join(dirname(server.dbPath), "cli.db"),
      "--tls-cert", new URL("./fixtures/tls-cert.pem", import.meta.url).pathname,
      "--tls-key", new URL("./fixtures/tls-key.pem", import.meta.url).pathname,
    ]);
    try {
      expect(p.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      const created = await h1Post(p.url.replace("127.0.0.1", "localhost"), { ca });
      // A fresh database has no agent yet: the answer is the service's own 400, over TLS.
      expect(created.status).toBe(400);
      expect(JSON.parse(created.text).message).toBe(`Invalid agent ID: agent ${AGENT_ID} does not exist`);
    } finally {
      process.kill(-p.child.pid!, "SIGTERM");
      expect(await p.exited).toBe(0);
    }
  });
});
