import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as http from "node:http";
import * as http2 from "node:http2";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { SessionService } from "../gen/sessions/v1/session_service_pb.js";
import { startServer } from "../src/server.js";
import { CONTENT_SECURITY_POLICY } from "../src/net/static-files.js";
import { SqliteStore } from "../src/store/sqlite.js";
import { AGENT_ID, CONSOLE_ROOT, requestJson, startTestServer, type TestServer } from "./helpers/server.js";

const IMMUTABLE = "public, max-age=31536000, immutable";

/** The hashed script and stylesheet the built index.html names. */
function builtAssets(): { script: string; stylesheet: string } {
  const html = readFileSync(join(CONSOLE_ROOT, "index.html"), "utf8");
  const script = /<script type="module" src="\/(app-[A-Z2-7]{8}\.js)"><\/script>/.exec(html)?.[1];
  const stylesheet = /<link rel="stylesheet" href="\/(app-[A-Z2-7]{8}\.css)">/.exec(html)?.[1];
  if (!script || !stylesheet) throw new Error(`dist/web/index.html names no hashed script or stylesheet:\n${html}`);
  return { script, stylesheet };
}

describe("the console's static files", () => {
  let server: TestServer;
  const { script, stylesheet } = builtAssets();
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server.close();
  });

  it("answers GET / with the page: HTML, the strict CSP, revalidated on every load, naming the hashed assets", async () => {
    const res = await fetch(`${server.url}/`);
    const text = await res.text();
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(res.headers.get("content-security-policy")).toBe(
      "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; " +
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    );
    expect(res.headers.get("content-security-policy")).toBe(CONTENT_SECURITY_POLICY);
    expect(res.headers.get("cache-control")).toBe("no-cache");
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(res.headers.get("etag")).toMatch(/^"[A-Za-z0-9_-]{27}"$/);
    expect(res.headers.get("content-length")).toBe(String(Buffer.byteLength(text)));
    expect(text).toBe(readFileSync(join(CONSOLE_ROOT, "index.html"), "utf8"));
    expect(text).toContain(`<script type="module" src="/${script}"></script>`);
    expect(text).toContain(`<link rel="stylesheet" href="/${stylesheet}">`);
  });

  it("has no inline script or style for the CSP to refuse", async () => {
    const text = await (await fetch(`${server.url}/`)).text();
    expect(text.match(/<script\b[^>]*>/g)).toEqual([`<script type="module" src="/${script}">`]);
    expect(text).not.toMatch(/<style\b|\sstyle=|\son[a-z]+=/i);
    // The bundle needs no eval either (script-src without 'unsafe-eval').
    const bundle = await (await fetch(`${server.url}/${script}`)).text();
    expect(bundle).not.toMatch(/\beval\(|new Function\(/);
  });

  it("answers the page for / with a query string (?transport=grpc-web)", async () => {
    const res = await fetch(`${server.url}/?transport=grpc-web&api=http%3A%2F%2F127.0.0.1%3A1`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
  });

  it("answers the hashed script and stylesheet with their types, cached for good", async () => {
    for (const [name, type] of [
      [script, "text/javascript; charset=utf-8"],
      [stylesheet, "text/css; charset=utf-8"],
      [`${script}.map`, "application/json; charset=utf-8"],
    ] as const) {
      const res = await fetch(`${server.url}/${name}`);
      const bytes = Buffer.from(await res.arrayBuffer());
      expect(res.status, name).toBe(200);
      expect(res.headers.get("content-type"), name).toBe(type);
      expect(res.headers.get("cache-control"), name).toBe(IMMUTABLE);
      expect(res.headers.get("x-content-type-options"), name).toBe("nosniff");
      expect(res.headers.get("content-length"), name).toBe(String(bytes.length));
      expect(bytes.equals(readFileSync(join(CONSOLE_ROOT, name))), name).toBe(true);
    }
  });

  it("answers HEAD with the headers of GET and no body", async () => {
    for (const path of ["/", `/${script}`]) {
      const get = await fetch(`${server.url}${path}`);
      await get.arrayBuffer();
      const head = await fetch(`${server.url}${path}`, { method: "HEAD" });
      expect(head.status, path).toBe(200);
      expect(await head.text(), path).toBe("");
      for (const name of ["content-type", "content-length", "cache-control", "etag", "content-security-policy", "x-content-type-options"]) {
        expect(head.headers.get(name), `${path} ${name}`).toBe(get.headers.get(name));
      }
    }
  });

  it("answers 304 without a body to an If-None-Match that names the current ETag, and 200 otherwise", async () => {
    for (const path of ["/", `/${script}`]) {
      const first = await fetch(`${server.url}${path}`);
      await first.arrayBuffer();
      const etag = first.headers.get("etag")!;
      for (const header of [etag, `W/${etag}`, `"stale", ${etag}`, "*"]) {
        const res = await fetch(`${server.url}${path}`, { headers: { "if-none-match": header } });
        expect(res.status, `${path} If-None-Match: ${header}`).toBe(304);
        expect(await res.text()).toBe("");
        expect(res.headers.get("etag")).toBe(etag);
        expect(res.headers.get("cache-control")).toBe(first.headers.get("cache-control"));
      }
      const changed = await fetch(`${server.url}${path}`, { headers: { "if-none-match": '"stale"' } });
      expect(changed.status).toBe(200);
      expect((await changed.arrayBuffer()).byteLength).toBe(Number(first.headers.get("content-length")));
    }
  });

  it("leaves unknown paths and other methods to REST, which answers its 404 JSON", async () => {
    for (const [method, path] of [
      ["GET", "/nothing-here.js"],
      ["GET", "/app.js"],
      ["GET", "/index.html/"],
      ["POST", "/"],
      ["DELETE", `/${script}`],
    ] as const) {
      const res = await requestJson(`${server.url}${path}`, { method });
      expect(res.status, `${method} ${path}`).toBe(404);
      expect(res.headers.get("content-type")).toBe("application/json");
      expect(res.body).toEqual({ code: 5, message: `no route for ${path}`, details: [] });
    }
  });

  it("keeps the HTTP/1.1 connection open for the page's next request", async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const sockets = new Set<unknown>();
    try {
      for (const path of ["/", `/${script}`, `/${stylesheet}`]) {
        const { connection } = await new Promise<{ connection: string | undefined }>((resolve, reject) => {
          const req = http.get(`${server.url}${path}`, { agent }, (res) => {
            sockets.add(req.socket);
            res.resume();
            res.on("end", () => resolve({ connection: res.headers.connection }));
          });
          req.on("error", reject);
        });
        expect(connection, path).toBe("keep-alive");
      }
      expect(sockets.size).toBe(1);
    } finally {
      agent.destroy();
    }
  });

  it("serves the page over h2c too", async () => {
    const session = http2.connect(server.url);
    try {
      const { status, type, body } = await new Promise<{ status: number; type: string; body: string }>((resolve, reject) => {
        const stream = session.request({ ":method": "GET", ":path": "/" });
        let status = 0;
        let type = "";
        let body = "";
        stream.on("response", (headers) => {
          status = Number(headers[":status"]);
          type = String(headers["content-type"]);
        });
        stream.on("data", (chunk: Buffer) => (body += chunk.toString()));
        stream.on("end", () => resolve({ status, type, body }));
        stream.on("error", reject);
      });
      expect(status).toBe(200);
      expect(type).toBe("text/html; charset=utf-8");
      expect(body).toContain(`src="/${script}"`);
    } finally {
      session.close();
    }
  });

  it("keeps RPC and REST working beside it", async () => {
    const created = await requestJson(`${server.url}/v1/sessions`, { body: { agent_id: AGENT_ID, title: "beside the console" } });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    for (const transport of [
      createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
      createGrpcWebTransport({ baseUrl: server.url, httpVersion: "1.1" }),
    ]) {
      const session = await createClient(SessionService, transport).getSession({ id });
      expect(session.title).toBe("beside the console");
    }
    const listed = await requestJson(`${server.url}/v1/sessions?page_size=1`);
    expect(listed.status).toBe(200);
    expect(listed.body.sessions[0].id).toBe(id);
  });
});

describe("a server whose console folder does not exist", () => {
  it("logs one warning and serves no console: / is REST's 404", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sessions-test-"));
    const store = new SqliteStore(join(dir, "sessions.db"));
    const logs: Record<string, unknown>[] = [];
    const logger = pino({ level: "info" }, { write: (line: string) => void logs.push(JSON.parse(line)) });
    const webRoot = join(dir, "no-such-folder");
    const server = await startServer({ host: "127.0.0.1", port: 0, store, logger, webRoot });
    try {
      const res = await requestJson(`${server.url}/`);
      expect(res.status).toBe(404);
      expect(res.body).toEqual({ code: 5, message: "no route for /", details: [] });
      const warnings = logs.filter((line) => line.level === 40);
      expect(warnings).toEqual([
        expect.objectContaining({ webRoot, msg: "no console: its folder does not exist (node scripts/build.mjs builds it)" }),
      ]);
    } finally {
      await server.stop();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
