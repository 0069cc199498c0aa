import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PRISM_REQUEST_REFUSED, PRISM_RESPONSE_REFUSED, startPrismProxy, type PrismProxy } from "./helpers/prism.js";
import { readmeBlocks } from "./helpers/readme.js";
import { MODEL_ID, startTestServer, type TestServer } from "./helpers/server.js";

// The OpenAPI document against a validator nobody here wrote: Stoplight's Prism, as a
// proxy in `--errors` mode in front of the real server, validating every request and every
// answer against the served /openapi.json. A request the server accepts must not be refused
// (422) and an answer must conform (else Prism answers 500), with no `sl-violations` header
// either way. Controls prove that Prism really checks both directions.

const run = promisify(execFile);
const REPO = new URL("..", import.meta.url).pathname;
const UNKNOWN_SESSION_ID = "session_ffffffffffffffffffffffffffffffff";
const UNKNOWN_AGENT_ID = "agent_ffffffffffffffffffffffffffffffff";
const OTHER_MODEL_ID = "model_00000000000000000000000000000042";
/** A property the doctored document requires in every answer, which the server never writes. */
const NEVER_WRITTEN = "never_written";

type Json = any;

interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  readonly body: Json;
}

let server: TestServer;
let prism: PrismProxy;
/** A Prism in front of the same server whose document requires NEVER_WRITTEN in every response object. */
let doctoredPrism: PrismProxy;
let doc: Json;
let scratch: string;

beforeAll(async () => {
  // No seeded agent: the README's commands run on a fresh database, as the README says.
  server = await startTestServer({ seedAgent: false });
  doc = await (await fetch(`${server.url}/openapi.json`)).json();
  scratch = mkdtempSync(join(tmpdir(), "openapi-conformance-"));
  // Prism reads the served document from a file: on Node 24 its own fetch of a URL fails
  // ("Expected signal to be an instance of AbortSignal"), whatever the document.
  const served = join(scratch, "openapi.json");
  writeFileSync(served, JSON.stringify(doc));
  const doctored = join(scratch, "doctored-openapi.json");
  writeFileSync(doctored, JSON.stringify(requiringNeverWritten(doc)));
  // Both at once: each takes a few seconds to start.
  [prism, doctoredPrism] = await Promise.all([
    startPrismProxy(served, server.url),
    startPrismProxy(doctored, server.url),
  ]);
}, 60_000);

afterAll(async () => {
  await Promise.all([prism?.close(), doctoredPrism?.close()]);
  await server?.close();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

/** A copy of the document whose response objects (not the -Input and -Patch forms) each require NEVER_WRITTEN. */
function requiringNeverWritten(document: Json): Json {
  const copy = structuredClone(document);
  for (const [name, schema] of Object.entries<Json>(copy.components.schemas)) {
    if (/-(Input|Patch)$/.test(name) || schema.type !== "object") continue;
    schema.properties = { ...schema.properties, [NEVER_WRITTEN]: { type: "string" } };
    schema.required = [...(schema.required ?? []), NEVER_WRITTEN];
  }
  return copy;
}

async function send(base: string, method: string, path: string, init: { body?: unknown; headers?: Record<string, string> } = {}): Promise<Answer> {
  const hasBody = init.body !== undefined;
  const res = await fetch(base + path, {
    method,
    headers: { ...(hasBody ? { "content-type": "application/json" } : {}), ...init.headers },
    body: hasBody ? (typeof init.body === "string" ? init.body : JSON.stringify(init.body)) : undefined,
  });
  const text = await res.text();
  let body: Json;
  try {
    body = text === "" ? undefined : JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: res.status, headers: res.headers, text, body };
}

/** What Prism found wrong with an exchange: its `sl-violations` header, or the problem it answered instead. */
function violationsOf(answer: { status: number; headers: Headers; text: string }): string[] {
  const violations: string[] = [];
  const header = answer.headers.get("sl-violations");
  if (header !== null) violations.push(`sl-violations: ${header}`);
  if ((answer.headers.get("content-type") ?? "").startsWith("application/problem+json")) {
    violations.push(`Prism answered ${answer.status} instead of the server: ${answer.text}`);
  }
  return violations;
}

/** The operations of the document, to tell which one a request exercised. */
function operationsOf(document: Json): { id: string; method: string; pattern: RegExp }[] {
  return Object.entries<Json>(document.paths).flatMap(([path, item]) =>
    Object.entries<Json>(item).map(([method, operation]) => ({
      id: operation.operationId as string,
      method: method.toUpperCase(),
      pattern: new RegExp("^" + path.replace(/\{[^}]+\}/g, "[^/:]+") + "$"),
    })),
  );
}

describe("the README's REST examples through Prism", () => {
  it("run as written, and Prism finds nothing wrong with any request or answer", async () => {
    const prismHost = new URL(prism.url).host;
    const serverHost = new URL(server.url).host;
    // The blocks with REST calls (the watch in the lifecycle goes to the server directly).
    const blocks = readmeBlocks("Using it", "sh").filter((block) => block.includes("/v1/"));
    const calls = blocks.join("\n").match(/(?<!buf )\bcurl\s/g)?.length ?? 0;
    expect(calls).toBeGreaterThanOrEqual(10);
    const answers = join(scratch, "readme-answers");
    rmSync(answers, { recursive: true, force: true });
    const script = [
      "set -euo pipefail",
      `mkdir -p "${answers}"`,
      // Every curl also dumps the answer's status line and headers into a file of its own.
      `curl() { command curl -D "$(mktemp -p "${answers}")" "$@"; }`,
      ...blocks,
    ]
      .join("\n")
      .replaceAll("127.0.0.1:8080/v1/", `${prismHost}/v1/`)
      .replaceAll("127.0.0.1:8080", serverHost);
    const { stdout } = await run("bash", ["-c", script], { cwd: REPO, timeout: 60_000 });

    const dumps = readdirSync(answers).map((file) => readFileSync(join(answers, file), "utf8"));
    expect(dumps).toHaveLength(calls);
    const problems: string[] = [];
    const statuses = new Set<number>();
    for (const dump of dumps) {
      const answer = parseHeaderDump(dump);
      statuses.add(answer.status);
      for (const violation of violationsOf({ ...answer, text: "" })) problems.push(`${violation}\n${dump}`);
    }
    expect(problems, `${problems.join("\n")}\nscript output:\n${stdout}`).toEqual([]);
    expect([...statuses]).toEqual(expect.arrayContaining([200, 201, 400]));
  });
});

/** The last status line and headers `curl -D` wrote (a 100 Continue comes first). */
function parseHeaderDump(dump: string): { status: number; headers: Headers } {
  const blocks = dump.split(/\r?\n\r?\n/).filter((block) => block.startsWith("HTTP/"));
  const [statusLine, ...lines] = blocks[blocks.length - 1]!.split(/\r?\n/);
  const headers = new Headers();
  for (const line of lines) {
    const colon = line.indexOf(":");
    if (colon > 0) headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  return { status: Number(statusLine!.split(" ")[1]), headers };
}

describe("REST traffic through Prism: every operation, with the forms proto3 JSON allows", () => {
  const covered = new Map<string, Set<number>>();

  /** Sends through Prism; fails on any violation or an unexpected status; notes the operation and status. */
  async function call(
    method: string,
    path: string,
    expected: number,
    init: { body?: unknown; headers?: Record<string, string> } = {},
  ): Promise<Json> {
    const answer = await send(prism.url, method, path, init);
    const what = `${method} ${path} ${init.body === undefined ? "" : JSON.stringify(init.body)}`;
    expect(violationsOf(answer), `${what}\n${prism.output().split("\n").slice(-20).join("\n")}`).toEqual([]);
    expect(answer.status, `${what}: ${answer.text}`).toBe(expected);
    const pathOnly = path.split("?")[0]!;
    const operation = operationsOf(doc).find((op) => op.method === method && op.pattern.test(pathOnly));
    expect(operation, `${method} ${pathOnly} is an operation of the document`).toBeDefined();
    const statuses = covered.get(operation!.id) ?? new Set();
    statuses.add(answer.status);
    covered.set(operation!.id, statuses);
    if (expected === 201) expect(answer.headers.get("location"), what).toBe(`${pathOnly}/${answer.body.id}`);
    return answer.body;
  }

  it("agents: create by proto or lowerCamelCase names, read, list, update by mask or by body, delete", async () => {
    const agent = await call("POST", "/v1/agents", 201, {
      body: { name: "reviewer", default_model_id: MODEL_ID, capabilities: [{ capability_id: "web.search", config: { max_results: 5 } }] },
    });
    const camel = await call("POST", "/v1/agents", 201, {
      body: { name: "planner", defaultModelId: MODEL_ID, capabilities: [{ capabilityId: "shell", config: null }], requestId: null },
      headers: { "content-type": "application/json; charset=utf-8" },
    });
    await call("POST", "/v1/agents", 400, { body: { name: "bad model", default_model_id: "model_42" } });
    await call("POST", "/v1/agents", 400, { body: { name: "", default_model_id: MODEL_ID } });

    await call("GET", `/v1/agents/${agent.id}`, 200);
    await call("GET", `/v1/agents/${UNKNOWN_AGENT_ID}`, 404);
    await call("GET", "/v1/agents/agent_42", 400);
    const page = await call("GET", "/v1/agents?page_size=1", 200);
    expect(page.next_page_token).not.toBe("");
    await call("GET", `/v1/agents?pageSize=1&page_token=${encodeURIComponent(page.next_page_token)}`, 200);
    await call("GET", "/v1/agents?page_token=not-a-token", 400);

    // The mask in the query; the body's id and etag as the agent was read.
    const renamed = await call("PATCH", `/v1/agents/${agent.id}?update_mask=name`, 200, {
      body: { id: agent.id, name: "renamed", etag: agent.etag },
    });
    // Without a mask the keys present are the mask; lowerCamelCase names too.
    await call("PATCH", `/v1/agents/${agent.id}`, 200, { body: { defaultModelId: OTHER_MODEL_ID, capabilities: [] } });
    // The whole agent sent back as it was read, output-only fields and all, under a mask.
    await call("PATCH", `/v1/agents/${camel.id}?update_mask=name`, 200, { body: { ...camel, name: "round trip" } });
    await call("PATCH", `/v1/agents/${agent.id}?update_mask=name`, 409, { body: { name: "stale", etag: renamed.etag } });
    await call("PATCH", `/v1/agents/${agent.id}?update_mask=org_id`, 400, { body: { name: "x" } });
    await call("PATCH", `/v1/agents/${UNKNOWN_AGENT_ID}`, 404, { body: { name: "nobody" } });

    await call("DELETE", `/v1/agents/${camel.id}?etag=agent-v1`, 409);
    expect(await call("DELETE", `/v1/agents/${camel.id}`, 200)).toEqual({});
    await call("DELETE", `/v1/agents/${camel.id}`, 404);
  });

  it("sessions: create, read, list with every filter, update, the lifecycle verbs, usage, runtime, delete", async () => {
    const agent = await call("POST", "/v1/agents", 201, { body: { name: "runner", default_model_id: MODEL_ID } });
    const session = await call("POST", "/v1/sessions", 201, {
      body: { agent_id: agent.id, title: "first", tags: ["ci", "nightly"], capabilities: [{ capability_id: "web.search", config: { n: 1 } }] },
    });
    const camel = await call("POST", "/v1/sessions", 201, {
      body: { agentId: agent.id, modelId: OTHER_MODEL_ID, title: null, tags: null, requestId: "0b9f2c8e-7d51-4a3b-9e6f-1c2d3e4f5a6b" },
    });
    // A retry of the same request_id answers the same session, 201 again.
    const retried = await call("POST", "/v1/sessions", 201, {
      body: { agentId: agent.id, modelId: OTHER_MODEL_ID, title: null, tags: null, requestId: "0b9f2c8e-7d51-4a3b-9e6f-1c2d3e4f5a6b" },
    });
    expect(retried.id).toBe(camel.id);
    await call("POST", "/v1/sessions", 409, {
      body: { agent_id: agent.id, title: "changed", request_id: "0b9f2c8e-7d51-4a3b-9e6f-1c2d3e4f5a6b" },
    });
    await call("POST", "/v1/sessions", 400, { body: { agent_id: "agent_42" } });
    await call("POST", "/v1/sessions", 400, { body: { agent_id: UNKNOWN_AGENT_ID } });

    await call("GET", `/v1/sessions/${session.id}`, 200);
    await call("GET", `/v1/sessions/${UNKNOWN_SESSION_ID}`, 404);
    await call("GET", "/v1/sessions/session_42", 400);

    const since = new Date(Date.parse(session.created_at) - 3_600_000).toISOString().replace("Z", "+00:00");
    const listed = await call(
      "GET",
      `/v1/sessions?agent_id=${agent.id}&status=SESSION_STATUS_PENDING&status=2&tag=ci&created_after=${encodeURIComponent(since)}` +
        `&created_before=9999-12-31T23:59:59Z&page_size=1`,
      200,
    );
    expect(listed.sessions.map((s: Json) => s.id)).toEqual([session.id]);
    await call("GET", `/v1/sessions?agentId=${agent.id}&pageSize=1`, 200);
    await call("GET", "/v1/sessions?page_size=-1", 400);
    await call("GET", "/v1/sessions?status=0", 400);

    // PATCH: the Session itself as the body, the mask in the query.
    const titled = await call("PATCH", `/v1/sessions/${session.id}?update_mask=title,tags`, 200, {
      body: { id: session.id, title: "renamed", tags: ["ci"], etag: session.etag },
    });
    // Read, change, send back whole: output-only fields under a mask are ignored.
    await call("PATCH", `/v1/sessions/${session.id}?update_mask=title`, 200, { body: { ...titled, title: "round trip" } });
    // Output-only fields with a mask that leaves them out, by number and by lowerCamelCase name.
    await call("PATCH", `/v1/sessions/${session.id}?update_mask=title`, 200, {
      body: { title: "again", status: 4, usage: { inputTokens: 5 }, createdAt: "2026-01-01T00:00:00.5+02:00" },
    });
    // Without a mask, a key present with null clears the field.
    await call("PATCH", `/v1/sessions/${session.id}`, 200, { body: { title: null } });
    await call("PATCH", `/v1/sessions/${session.id}`, 400, { body: { status: "SESSION_STATUS_FAILED" } });
    await call("PATCH", `/v1/sessions/${session.id}?update_mask=title`, 409, { body: { title: "stale", etag: session.etag } });
    await call("PATCH", `/v1/sessions/${UNKNOWN_SESSION_ID}?update_mask=title`, 404, { body: { title: "nobody" } });

    // The lifecycle verbs take no body, or {}.
    await call("POST", `/v1/sessions/${session.id}:start`, 200, { body: {} });
    await call("POST", `/v1/sessions/${session.id}:start`, 400);
    await call("POST", `/v1/sessions/${UNKNOWN_SESSION_ID}:start`, 404);
    // int64 as numbers and as strings, null, lowerCamelCase.
    const used = await call("POST", `/v1/sessions/${session.id}:recordUsage`, 200, {
      body: { input_tokens: 5, output_tokens: "7", cacheReadTokens: 3, cache_creation_tokens: null, prompt_preview: "hello", responsePreview: "hi" },
    });
    expect(used.usage).toEqual({ input_tokens: "5", output_tokens: "7", cache_read_tokens: "3", cache_creation_tokens: "0" });
    await call("POST", `/v1/sessions/${session.id}:recordUsage`, 400, { body: { input_tokens: -1 } });
    await call("POST", `/v1/sessions/${session.id}:complete`, 200);
    await call("POST", `/v1/sessions/${session.id}:complete`, 400, { body: {} });
    await call("POST", `/v1/sessions/${UNKNOWN_SESSION_ID}:complete`, 404, { body: {} });

    await call("POST", `/v1/sessions/${camel.id}:start`, 200);
    await call("POST", `/v1/sessions/${camel.id}:fail`, 200, { body: { error: "the model went away" } });
    await call("POST", `/v1/sessions/${camel.id}:fail`, 400, { body: { error: "again" } });
    await call("POST", `/v1/sessions/${UNKNOWN_SESSION_ID}:fail`, 404, { body: { error: "nobody" } });

    const pending = await call("POST", "/v1/sessions", 201, { body: { agent_id: agent.id } });
    await call("POST", `/v1/sessions/${pending.id}:cancel`, 200, { body: {} });
    await call("POST", `/v1/sessions/${pending.id}:cancel`, 400);
    await call("POST", `/v1/sessions/${UNKNOWN_SESSION_ID}:cancel`, 404);

    await call("GET", `/v1/sessions/${session.id}/runtime`, 200);
    await call("GET", `/v1/sessions/${UNKNOWN_SESSION_ID}/runtime`, 404);

    await call("DELETE", `/v1/sessions/${pending.id}?etag=session-v1`, 409);
    expect(await call("DELETE", `/v1/sessions/${pending.id}`, 200)).toEqual({});
    await call("DELETE", `/v1/sessions/${pending.id}`, 404);
  });

  it("the conversation: messages of every kind by proto and lowerCamelCase names, read, listed, the event log", async () => {
    const agent = await call("POST", "/v1/agents", 201, { body: { name: "talker", default_model_id: MODEL_ID } });
    const session = await call("POST", "/v1/sessions", 201, { body: { agent_id: agent.id } });
    const path = `/v1/sessions/${session.id}/messages`;
    const prompt = await call("POST", path, 201, { body: { role: "MESSAGE_ROLE_USER", content: [{ text: "Review PR 42" }] } });
    await call("POST", `${path}?request_id=0c9f2c8e-7d51-4a3b-9e6f-1c2d3e4f5a6b`, 201, {
      body: {
        role: 2,
        content: [{ text: "Looking." }, { toolCall: { id: "call_1", name: "search", arguments: { q: "PR 42", n: [1, null, true] } } }],
        modelId: MODEL_ID,
        usage: { inputTokens: 12, output_tokens: "3", cache_read_tokens: null },
      },
    });
    await call("POST", path, 201, {
      body: { role: "MESSAGE_ROLE_TOOL", content: [{ tool_result: { tool_call_id: "call_1", output: { hits: [] }, is_error: false } }] },
    });
    await call("POST", `${path}?request_id=0c9f2c8e-7d51-4a3b-9e6f-1c2d3e4f5a6b`, 409, { body: { role: "MESSAGE_ROLE_USER", content: [{ text: "other" }] } });
    await call("POST", path, 400, { body: { role: "MESSAGE_ROLE_USER", content: [] } });
    await call("POST", `/v1/sessions/${UNKNOWN_SESSION_ID}/messages`, 404, { body: { role: "MESSAGE_ROLE_USER", content: [{ text: "x" }] } });

    await call("GET", `${path}/${prompt.id}`, 200);
    await call("GET", `${path}/message_42`, 400);
    await call("GET", `/v1/sessions/${UNKNOWN_SESSION_ID}/messages/${prompt.id}`, 404);
    const page = await call("GET", `${path}?page_size=2`, 200);
    expect(page.messages).toHaveLength(2);
    await call("GET", `${path}?pageSize=2&page_token=${encodeURIComponent(page.next_page_token)}`, 200);
    await call("GET", `${path}?page_token=not-a-token`, 400);
    await call("GET", `/v1/sessions/${UNKNOWN_SESSION_ID}/messages`, 404);

    const events = await call("GET", `/v1/sessions/${session.id}/events?after_sequence=1&page_size=2`, 200);
    expect(events.events.map((e: Json) => e.sequence)).toEqual(["2", "3"]);
    await call("GET", `/v1/sessions/${session.id}/events?afterSequence=1&page_token=${encodeURIComponent(events.next_page_token)}`, 200);
    await call("GET", `/v1/sessions/${session.id}/events?after_sequence=-1`, 400);
    await call("GET", `/v1/sessions/${UNKNOWN_SESSION_ID}/events`, 404);
  });

  it("the event stream of a finished session: SSE and NDJSON, and an unknown session", async () => {
    const agent = await call("POST", "/v1/agents", 201, { body: { name: "followed", default_model_id: MODEL_ID } });
    const session = await call("POST", "/v1/sessions", 201, { body: { agent_id: agent.id } });
    await call("POST", `/v1/sessions/${session.id}:cancel`, 200, { body: {} });
    const path = `/v1/sessions/${session.id}/events:stream`;
    const sse: string = await call("GET", path, 200, { headers: { accept: "text/event-stream" } });
    expect(sse.split("\n\n").filter((e) => e !== "").map((e) => e.split("\n").slice(0, 2).join(" "))).toEqual([
      "id: 1 event: SESSION_EVENT_TYPE_CREATED",
      "id: 2 event: SESSION_EVENT_TYPE_CANCELLED",
    ]);
    const lines: string = await call("GET", path, 200, { headers: { accept: "application/x-ndjson" } });
    expect(lines.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l).type)).toEqual(["SESSION_EVENT_TYPE_CREATED", "SESSION_EVENT_TYPE_CANCELLED"]);
    await call("GET", `/v1/sessions/${UNKNOWN_SESSION_ID}/events:stream`, 404, { headers: { accept: "text/event-stream" } });
  });

  it("covered every operation of the document, each with a success and an error", () => {
    const all = operationsOf(doc).map((op) => op.id).sort();
    expect(all).toHaveLength(21);
    expect([...covered.keys()].sort()).toEqual(all);
    for (const [id, statuses] of covered) {
      expect([...statuses].some((s) => s < 300), id).toBe(true);
      expect([...statuses].some((s) => s >= 400), id).toBe(true);
    }
    const seen = new Set([...covered.values()].flatMap((s) => [...s]));
    expect([...seen].sort()).toEqual([200, 201, 400, 404, 409]);
  });
});

describe("Prism really validates", () => {
  let sessionId: string;
  beforeAll(async () => {
    const agent = await send(server.url, "POST", "/v1/agents", { body: { name: "controls", default_model_id: MODEL_ID } });
    const session = await send(server.url, "POST", "/v1/sessions", { body: { agent_id: agent.body.id } });
    sessionId = session.body.id;
    await send(server.url, "POST", `/v1/sessions/${sessionId}:start`);
  });

  it("refuses (422, not forwarded) requests the document forbids, which the server refuses too", async () => {
    const forbidden: [method: string, path: string, init: { body?: unknown; headers?: Record<string, string> }, serverStatus: number][] = [
      ["POST", `/v1/sessions/${sessionId}:recordUsage`, { body: { input_tokens: "five" } }, 400],
      ["POST", `/v1/sessions/${sessionId}:recordUsage`, { body: { input_tokens: 1.5 } }, 400],
      ["POST", `/v1/sessions/${sessionId}:recordUsage`, { body: { prompt_preview: 42 } }, 400],
      ["POST", "/v1/sessions", { body: { title: "no agent" } }, 400],
      ["POST", "/v1/sessions", { body: { agent_id: "agent_x" }, headers: { "content-type": "text/plain" } }, 415],
      ["POST", `/v1/sessions/${sessionId}:fail`, { body: {} }, 400],
      ["PATCH", `/v1/sessions/${sessionId}?update_mask=title`, { body: { title: 5 } }, 400],
      ["PATCH", `/v1/sessions/${sessionId}`, { body: { tags: [null] } }, 400],
      ["GET", "/v1/sessions?status=SESSION_STATUS_BOGUS", {}, 400],
      ["GET", "/v1/sessions?status=9", {}, 400],
      ["GET", "/v1/sessions?page_size=ten", {}, 400],
      ["GET", "/v1/sessions?created_after=yesterday", {}, 400],
    ];
    for (const [method, path, init, serverStatus] of forbidden) {
      const what = `${method} ${path} ${JSON.stringify(init.body ?? "")}`;
      const viaPrism = await send(prism.url, method, path, init);
      expect(viaPrism.status, `${what}: ${viaPrism.text}`).toBe(422);
      expect(viaPrism.body.type, what).toBe(PRISM_REQUEST_REFUSED);
      expect(viaPrism.body.validation.length, what).toBeGreaterThan(0);
      const direct = await send(server.url, method, path, init);
      expect(direct.status, `${what} sent to the server: ${direct.text}`).toBe(serverStatus);
    }
    // Refused requests never reached the server: no usage was recorded.
    const session = await send(server.url, "GET", `/v1/sessions/${sessionId}`);
    expect(session.body.usage.input_tokens).toBe("0");
  });

  it("names what it refused: the field, where it is and why", async () => {
    const refused = await send(prism.url, "POST", `/v1/sessions/${sessionId}:recordUsage`, { body: { input_tokens: "five" } });
    expect(refused.body.validation).toEqual([
      { location: ["body", "input_tokens"], severity: "Error", code: "pattern", message: 'Request body property input_tokens must match pattern "^-?[0-9]+$"' },
    ]);
  });

  it("replaces answers that do not conform with a 500 and lists the violations, though the server answered", async () => {
    // The server's own status for each, read directly (the write only through Prism).
    const exchanges: [method: string, path: string, init: { body?: unknown }, serverStatus: number | undefined][] = [
      ["GET", `/v1/sessions/${sessionId}`, {}, 200],
      ["GET", "/v1/sessions?page_size=1", {}, 200],
      ["GET", `/v1/sessions/${sessionId}/runtime`, {}, 200],
      ["POST", `/v1/sessions/${sessionId}:recordUsage`, { body: { input_tokens: 1 } }, undefined],
      ["GET", `/v1/sessions/${UNKNOWN_SESSION_ID}`, {}, 404],
      ["GET", "/v1/agents", {}, 200],
    ];
    for (const [method, path, init, serverStatus] of exchanges) {
      const what = `${method} ${path}`;
      if (serverStatus !== undefined) expect((await send(server.url, method, path, init)).status, what).toBe(serverStatus);
      const viaPrism = await send(doctoredPrism.url, method, path, init);
      expect(viaPrism.status, `${what}: ${viaPrism.text}`).toBe(500);
      expect(viaPrism.body.type, what).toBe(PRISM_RESPONSE_REFUSED);
      const violations = JSON.parse(viaPrism.headers.get("sl-violations") ?? "[]");
      expect(violations.length, what).toBeGreaterThan(0);
      for (const violation of violations) {
        expect(violation.location[0], what).toBe("response");
        expect(violation.message, what).toContain(NEVER_WRITTEN);
      }
    }
    // The answers were real: the usage was recorded through the doctored proxy.
    const session = await send(server.url, "GET", `/v1/sessions/${sessionId}`);
    expect(session.body.usage.input_tokens).toBe("1");
  });
});
