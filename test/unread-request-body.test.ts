import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as http from "node:http";
import * as http2 from "node:http2";
import { AGENT_ID, startTestServer, type TestServer } from "./helpers/server.js";

const oversized = JSON.stringify({ agentId: AGENT_ID, title: "x".repeat(2 * 1024 * 1024) });

describe("a request answered before its body was read", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server.close(); // stop() is idempotent: the last test stops the server itself
  });

  it.each([
    ["Connect", "/sessions.v1.SessionService/CreateSession", 429],
    ["REST", "/v1/sessions", 413],
  ])("over HTTP/1.1 (%s) is answered with Connection: close, and the client's next call works", async (_, path, status) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const post = (body: string) =>
      new Promise<{ status: number; connection: string | undefined }>((resolve, reject) => {
        const req = http.request(`${server.url}${path}`, { method: "POST", agent, headers: { "content-type": "application/json" } }, (res) => {
          res.resume();
          res.on("end", () => resolve({ status: res.statusCode!, connection: res.headers.connection }));
        });
        req.on("error", reject);
        req.end(body);
      });
    expect(await post(oversized)).toEqual({ status, connection: "close" });
    const next = await post(JSON.stringify({ agent_id: AGENT_ID }));
    expect(next.status).toBe(path === "/v1/sessions" ? 201 : 200);
    agent.destroy();
  });

  it("over HTTP/2 is answered, and neither a client that keeps uploading nor one that stops holds up a stop", async () => {
    const session = http2.connect(server.url);
    session.on("error", () => {});
    const stream = session.request({
      ":method": "POST",
      ":path": "/sessions.v1.SessionService/CreateSession",
      "content-type": "application/json",
    });
    stream.on("error", () => {});
    let status = 0;
    let body = "";
    stream.on("response", (headers) => (status = Number(headers[":status"])));
    stream.on("data", (d: Buffer) => (body += d.toString()));
    const answered = new Promise((resolve) => stream.once("end", resolve));
    // The first part of an oversized body, and the stream left open.
    stream.write(oversized.slice(0, 1024 * 1024 + 100));
    await answered;
    expect(status).toBe(429);
    expect(JSON.parse(body).code).toBe("resource_exhausted");

    const started = Date.now();
    await server.stop();
    expect(Date.now() - started).toBeLessThan(1000);
    expect(server.logs.filter((l) => l.msg === "shutdown timeout: in-flight requests were cut off")).toEqual([]);
    session.destroy();
  });
});
