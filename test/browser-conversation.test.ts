import { rmSync } from "node:fs";
import { dirname } from "node:path";
import { fromBinary, fromJsonString } from "@bufbuild/protobuf";
import type { Page, Request } from "playwright-core";
import { beforeEach, describe, expect, it } from "vitest";
import { StreamSessionEventsRequestSchema } from "../gen/sessions/v1/session_service_pb.js";
import { saveScreenshot, useBrowser, type WatchedPage } from "./helpers/browser.js";
import { insertTestKey } from "./helpers/keys.js";
import { AGENT_ID, DEFAULT_ORG_ID, MODEL_ID, requestJson, startTestServer, type TestServer } from "./helpers/server.js";

// The session view of the console, in a real Chromium over both of connect-web's
// transports: the conversation another client writes over REST, as a person sees it
// (roles, texts, collapsed tool calls and results, tokens), and followed live from the
// session's event log — across a server restart and behind an API key.

const browser = useBrowser();

type TransportName = "connect" | "grpc-web";

/** What a transport puts on the wire: connect-web sends Connect as JSON and gRPC-Web as binary protobuf. */
const TRANSPORTS: { name: TransportName; streamContentType: string }[] = [
  { name: "connect", streamContentType: "application/connect+json" },
  { name: "grpc-web", streamContentType: "application/grpc-web+proto" },
];

type JsonObject = { [key: string]: unknown };

interface RestUsage {
  input_tokens: number;
  output_tokens: number;
  cache_read_tokens: number;
  cache_creation_tokens: number;
}

/** A content part as REST JSON writes it: exactly one key. */
type RestPart =
  | { text: string }
  | { tool_call: { id: string; name: string; arguments?: JsonObject } }
  | { tool_result: { tool_call_id: string; output?: JsonObject; is_error?: boolean } };

interface NewMessage {
  role: "MESSAGE_ROLE_USER" | "MESSAGE_ROLE_ASSISTANT" | "MESSAGE_ROLE_SYSTEM" | "MESSAGE_ROLE_TOOL";
  content: RestPart[];
  model_id?: string;
  usage?: RestUsage;
}

interface RestMessage {
  id: string;
  session_id: string;
  role: string;
  content: RestPart[];
  model_id: string;
  usage?: { input_tokens: string; output_tokens: string };
  created_at: string;
  sequence: string;
}

const usage = (input: number, output: number): RestUsage => ({
  input_tokens: input,
  output_tokens: output,
  cache_read_tokens: 0,
  cache_creation_tokens: 0,
});

/** A short agent run: a prompt, a reply that calls a tool, the tool's result, and the answer. */
const READ_ARGUMENTS = { path: "src/billing/invoice.ts", range: { from: 1, to: 120 }, follow_symlinks: false, tags: ["ci", null] };
const READ_OUTPUT = { lines: 118, truncated: false, preview: "export function invoiceTotal(" };
const RUN: NewMessage[] = [
  { role: "MESSAGE_ROLE_USER", content: [{ text: "Review PR 42: is the invoice rounding right?" }] },
  {
    role: "MESSAGE_ROLE_ASSISTANT",
    model_id: MODEL_ID,
    usage: usage(1200, 350),
    content: [
      { text: "Let me read the invoice code first." },
      { tool_call: { id: "call_read_1", name: "read_file", arguments: READ_ARGUMENTS } },
    ],
  },
  { role: "MESSAGE_ROLE_TOOL", content: [{ tool_result: { tool_call_id: "call_read_1", output: READ_OUTPUT } }] },
  {
    role: "MESSAGE_ROLE_ASSISTANT",
    model_id: MODEL_ID,
    usage: usage(2600, 410),
    content: [{ text: "The rounding happens per line,\nnot on the total: totals can be off by a cent." }],
  },
];

/** Another client of the API: plain REST calls from Node, each checked for its status. */
class RestClient {
  constructor(private readonly baseUrl: () => string, private readonly key?: string) {}

  private async call(path: string, init: { method?: string; body?: unknown }, expected: number): Promise<any> {
    const headers: Record<string, string> = this.key ? { authorization: `Bearer ${this.key}` } : {};
    const res = await requestJson(`${this.baseUrl()}${path}`, { ...init, headers });
    if (res.status !== expected) throw new Error(`${init.method ?? "GET"} ${path} answered ${res.status}: ${JSON.stringify(res.body)}`);
    return res.body;
  }

  async startedSession(title: string): Promise<string> {
    const { id } = await this.call("/v1/sessions", { body: { agent_id: AGENT_ID, title } }, 201);
    await this.call(`/v1/sessions/${id}:start`, { method: "POST" }, 200);
    return id;
  }

  add(sessionId: string, message: NewMessage): Promise<RestMessage> {
    return this.call(`/v1/sessions/${sessionId}/messages`, { body: message }, 201);
  }

  async addAll(sessionId: string, messages: NewMessage[]): Promise<RestMessage[]> {
    const added: RestMessage[] = [];
    for (const message of messages) added.push(await this.add(sessionId, message));
    return added;
  }

  async messages(sessionId: string): Promise<RestMessage[]> {
    return (await this.call(`/v1/sessions/${sessionId}/messages?page_size=1000`, {}, 200)).messages;
  }

  session(sessionId: string): Promise<{ usage: { input_tokens: string; output_tokens: string }; response_preview: string }> {
    return this.call(`/v1/sessions/${sessionId}`, {}, 200);
  }

  complete(sessionId: string): Promise<unknown> {
    return this.call(`/v1/sessions/${sessionId}:complete`, { method: "POST" }, 200);
  }
}

/** A message of the conversation as the page shows it. */
interface ShownMessage {
  id: string | null;
  sequence: string | null;
  role: string | null;
  texts: (string | null)[];
  toolCalls: { name: string | null; callId: string | null; open: boolean }[];
  toolResults: { name: string | null; callId: string | null; open: boolean }[];
  tokens: string | null;
}

async function shownMessages(page: Page): Promise<ShownMessage[]> {
  return page.getByTestId("message").evaluateAll((items) =>
    items.map((item) => {
      const tools = (testId: string) =>
        [...item.querySelectorAll(`[data-testid="${testId}"]`)].map((details: any) => ({
          name: details.querySelector('[data-testid="tool-name"]').textContent,
          callId: details.getAttribute("data-tool-call-id"),
          open: details.open,
        }));
      return {
        id: item.getAttribute("data-message-id"),
        sequence: item.getAttribute("data-sequence"),
        role: item.querySelector('[data-testid="message-role"]')!.textContent,
        texts: [...item.querySelectorAll('[data-testid="message-text"]')].map((p) => p.textContent),
        toolCalls: tools("tool-call"),
        toolResults: tools("tool-result"),
        tokens: item.querySelector('[data-testid="message-tokens"]')?.textContent ?? null,
      };
    }),
  );
}

/** The messages the console should show for what the API holds, oldest first. */
function expectedMessages(messages: RestMessage[]): ShownMessage[] {
  const toolNames = new Map<string, string>();
  return messages.map((m) => {
    const calls = m.content.flatMap((p) => ("tool_call" in p ? [p.tool_call] : []));
    for (const call of calls) toolNames.set(call.id, call.name);
    const role = m.role.replace("MESSAGE_ROLE_", "").toLowerCase();
    return {
      id: m.id,
      sequence: m.sequence,
      role,
      texts: m.content.flatMap((p) => ("text" in p ? [p.text] : [])),
      toolCalls: calls.map((c) => ({ name: c.name, callId: c.id, open: false })),
      toolResults: m.content.flatMap((p) =>
        "tool_result" in p ? [{ name: toolNames.get(p.tool_result.tool_call_id) ?? null, callId: p.tool_result.tool_call_id, open: false }] : [],
      ),
      tokens: role === "assistant" && m.usage ? `input ${m.usage.input_tokens} · output ${m.usage.output_tokens}` : null,
    };
  });
}

const text = (page: Page, testId: string) => page.getByTestId(testId).textContent();

/** Waits until the element's text is `expected`; a timeout reports the last text seen. */
async function expectText(page: Page, testId: string, expected: string, timeout = 5000): Promise<void> {
  await expect.poll(() => text(page, testId), { timeout, message: `text of ${testId}` }).toBe(expected);
}

/** Waits until the page shows exactly these messages, as the API holds them. */
async function expectConversation(page: Page, messages: RestMessage[], timeout = 5000): Promise<void> {
  await expect.poll(() => shownMessages(page), { timeout, message: "messages shown" }).toEqual(expectedMessages(messages));
}

/**
 * Records the sequence of every message item the page ever inserts, removed or not: a
 * message shown twice, even for a moment, is in it twice.
 */
async function recordInsertedMessages(page: Page): Promise<void> {
  await page.getByTestId("conversation").evaluate((list) => {
    const inserted: string[] = [];
    (globalThis as { insertedSequences?: string[] }).insertedSequences = inserted;
    const { MutationObserver } = globalThis as any;
    new MutationObserver((records: any[]) => {
      for (const record of records) for (const node of record.addedNodes) inserted.push(node.getAttribute("data-sequence"));
    }).observe(list, { childList: true });
  });
}

const insertedSequences = (page: Page) => page.evaluate(() => (globalThis as { insertedSequences?: string[] }).insertedSequences);

/** The after_sequence a StreamSessionEvents request asked for, decoded from its one enveloped message. */
function afterSequenceOf(request: Request, transport: TransportName): bigint {
  const body = request.postDataBuffer();
  if (!body || body.length < 5) throw new Error(`StreamSessionEvents request without an enveloped body: ${body?.length ?? 0} bytes`);
  const payload = body.subarray(5, 5 + body.readUInt32BE(1));
  const message =
    transport === "connect"
      ? fromJsonString(StreamSessionEventsRequestSchema, payload.toString("utf8"))
      : fromBinary(StreamSessionEventsRequestSchema, payload);
  return message.afterSequence;
}

/** Chromium's console line for a 401 answer to a fetch, as the harness records it. */
function unauthorized(url: string): string {
  return `Failed to load resource: the server responded with a status of 401 (Unauthorized) (${url}:1)`;
}

/** Nothing went wrong on the page: no console errors, no uncaught errors, no failed requests. */
function expectNoProblems(watched: WatchedPage): void {
  expect(watched.consoleErrors, watched.diagnostics()).toEqual([]);
  expect(watched.pageErrors, watched.diagnostics()).toEqual([]);
  expect(watched.failedRequests, watched.diagnostics()).toEqual([]);
}

describe.each(TRANSPORTS)("conversation over $name", ({ name: transport, streamContentType }) => {
  let server: TestServer;
  let rest: RestClient;
  // One server per test; it stops after the harness's afterEach, so that a failing test's
  // screenshot still shows the page as it was.
  beforeEach(async (context) => {
    server = await startTestServer();
    rest = new RestClient(() => server.url);
    context.onTestFinished(() => server.close());
  });

  const sessionUrl = (id: string) => `${server.url}/?${new URLSearchParams({ transport })}#/sessions/${id}`;
  const rpcUrl = (method: string) => `${server.url}/sessions.v1.SessionService/${method}`;
  /** Every StreamSessionEvents request the page makes from now on. */
  const streamRequests = (page: Page) => {
    const requests: Request[] = [];
    page.on("request", (request) => {
      if (request.url() === rpcUrl("StreamSessionEvents")) requests.push(request);
    });
    return requests;
  };

  it("shows the messages in order with their roles and texts, tool calls and results collapsed, and assistant tokens", async () => {
    const id = await rest.startedSession("Review PR 42");
    const added = await rest.addAll(id, RUN);
    const watched = browser.current();
    const { page } = watched;
    await page.goto(sessionUrl(id));
    await expectText(page, "watch-state", "live");

    await expectConversation(page, added);
    expect(await rest.messages(id)).toEqual(added);
    expect((await shownMessages(page)).map((m) => m.role)).toEqual(["user", "assistant", "tool", "assistant"]);
    expect(await page.locator("#conversation-count").textContent()).toBe("4 messages");
    expect(await page.getByTestId("conversation-empty").isHidden()).toBe(true);
    expect(await page.locator("#conversation-box").getAttribute("role")).toBe("log");
    expect(await page.locator("#conversation-box").getAttribute("aria-busy")).toBe(null);
    // The text keeps its line break.
    expect(await page.getByTestId("message").nth(3).getByTestId("message-text").innerText()).toBe(
      "The rounding happens per line,\nnot on the total: totals can be off by a cent.",
    );
    // The whole title of the tokens is the generation's usage.
    expect(await page.getByTestId("message").nth(1).getByTestId("message-tokens").getAttribute("title")).toBe(
      "input 1200 · output 350 · cache read 0 · cache write 0",
    );

    // Collapsed: the JSON is there but hidden until the summary is clicked.
    const call = page.getByTestId("tool-call");
    const args = call.getByTestId("tool-arguments");
    expect(await args.isVisible()).toBe(false);
    expect(await call.locator("summary").innerText()).toBe("Tool call read_file call_read_1");
    await call.locator("summary").click();
    await args.waitFor({ state: "visible" });
    const storedArguments = (added[1]!.content[1] as { tool_call: { arguments: JsonObject } }).tool_call.arguments;
    expect(storedArguments).toEqual(READ_ARGUMENTS);
    expect(await args.textContent()).toBe(JSON.stringify(storedArguments, null, 2));
    expect(await args.getAttribute("aria-label")).toBe("arguments of read_file");

    const result = page.getByTestId("tool-result");
    const output = result.getByTestId("tool-output");
    expect(await output.isVisible()).toBe(false);
    expect(await result.locator("summary").innerText()).toBe("Tool result read_file call_read_1");
    await result.locator("summary").click();
    await output.waitFor({ state: "visible" });
    expect(await output.textContent()).toBe(JSON.stringify(READ_OUTPUT, null, 2));

    // The session's fields agree with the messages: the sum of their tokens, the previews.
    const stored = await rest.session(id);
    expect(stored.usage).toMatchObject({ input_tokens: "3800", output_tokens: "760" });
    expect([await text(page, "detail-input-tokens"), await text(page, "detail-output-tokens")]).toEqual(["3800", "760"]);
    expect(await text(page, "detail-status")).toBe("running");
    expect(await page.locator("#detail-prompt").textContent()).toBe("Review PR 42: is the invoice rounding right?");
    expect(await page.locator("#detail-response").textContent()).toBe(stored.response_preview);
    expectNoProblems(watched);
  });

  it("shows a finished session's whole conversation, and the watch ends after its final event", async () => {
    const id = await rest.startedSession("Done already");
    const added = await rest.addAll(id, RUN);
    await rest.complete(id);
    const { page } = browser.current();
    const requests = streamRequests(page);
    await page.goto(sessionUrl(id));
    await expectText(page, "watch-state", "ended");
    await expectConversation(page, added);
    expect(await text(page, "detail-status")).toBe("completed");
    expect([await text(page, "detail-input-tokens"), await text(page, "detail-output-tokens")]).toEqual(["3800", "760"]);
    expect(requests).toHaveLength(1);
    expectNoProblems(browser.current());
  });

  it("says so when a session has no messages yet, then shows the first one live", async () => {
    const id = await rest.startedSession("Quiet so far");
    const { page } = browser.current();
    await page.goto(sessionUrl(id));
    await expectText(page, "watch-state", "live");
    await page.getByTestId("conversation-empty").waitFor({ state: "visible" });
    expect(await text(page, "conversation-empty")).toBe("No messages yet.");
    expect(await shownMessages(page)).toEqual([]);

    const first = await rest.add(id, RUN[0]!);
    await expectConversation(page, [first]);
    expect(await page.getByTestId("conversation-empty").isHidden()).toBe(true);
    expect(await page.locator("#conversation-count").textContent()).toBe("1 message");
    expectNoProblems(browser.current());
  });

  it("follows the conversation live: another client's messages appear in order, once each, without a reload", async () => {
    const id = await rest.startedSession("Followed live");
    const before = await rest.addAll(id, RUN.slice(0, 2));
    const { page } = browser.current();
    const requests = streamRequests(page);
    await page.goto(sessionUrl(id));
    await expectText(page, "watch-state", "live");
    await expectConversation(page, before);
    await page.evaluate(() => ((globalThis as { sameDocument?: boolean }).sameDocument = true));
    await recordInsertedMessages(page);

    // One at a time, checking each is shown before the next; then a burst.
    const live: RestMessage[] = [];
    for (const message of RUN.slice(2)) {
      live.push(await rest.add(id, message));
      await expectConversation(page, [...before, ...live]);
    }
    const burst = Array.from({ length: 12 }, (_, i): NewMessage =>
      i % 2 === 0
        ? { role: "MESSAGE_ROLE_USER", content: [{ text: `follow-up ${i}` }] }
        : { role: "MESSAGE_ROLE_ASSISTANT", model_id: MODEL_ID, usage: usage(100 + i, 10 + i), content: [{ text: `answer ${i}` }] },
    );
    live.push(...(await rest.addAll(id, burst)));
    await expectConversation(page, [...before, ...live]);
    expect(await rest.messages(id)).toEqual([...before, ...live]);
    expect(await insertedSequences(page)).toEqual(live.map((m) => m.sequence));

    const stored = await rest.session(id);
    await expect.poll(() => text(page, "detail-input-tokens")).toBe(stored.usage.input_tokens);
    expect(await text(page, "detail-output-tokens")).toBe(stored.usage.output_tokens);
    expect(await page.locator("#detail-response").textContent()).toBe("answer 11");

    await rest.complete(id);
    await expectText(page, "watch-state", "ended");
    expect(await text(page, "detail-status")).toBe("completed");
    expect(await page.evaluate(() => (globalThis as { sameDocument?: boolean }).sameDocument)).toBe(true);
    // One stream, opened just before the last message loaded: its first event brings the session.
    expect(requests.map((r) => afterSequenceOf(r, transport))).toEqual([BigInt(before.at(-1)!.sequence) - 1n]);
    expectNoProblems(browser.current());
  });

  it("resumes after a server restart from the last sequence seen: nothing missed, nothing shown twice", async (context) => {
    const id = await rest.startedSession("Across a restart");
    const before = await rest.addAll(id, RUN.slice(0, 2));
    const { page } = browser.current();
    const requests = streamRequests(page);
    await page.goto(sessionUrl(id));
    await expectText(page, "watch-state", "live");
    const during = [await rest.add(id, RUN[2]!)];
    await expectConversation(page, [...before, ...during]);
    await recordInsertedMessages(page);

    // The server stops (ending the stream with unavailable) and comes back on the same
    // port and database; a message is appended before the console has reconnected.
    const first = server;
    context.onTestFinished(() => rmSync(dirname(first.dbPath), { recursive: true, force: true }));
    await first.stop();
    await first.store.close();
    // Back within the console's first wait (1 s), so that it never meets a refused connection.
    server = await startTestServer({ dbPath: first.dbPath, port: first.port });
    await expectText(page, "watch-state", "reconnecting");
    expect(await page.locator("#detail-error").textContent()).toMatch(/^The event stream dropped \(.+\); resuming in 1 s\.$/);
    const after = [await rest.add(id, RUN[3]!)];

    await expectText(page, "watch-state", "live");
    await expectConversation(page, [...before, ...during, ...after]);
    after.push(await rest.add(id, { role: "MESSAGE_ROLE_USER", content: [{ text: "and after the restart, live" }] }));
    await expectConversation(page, [...before, ...during, ...after]);
    expect(await insertedSequences(page)).toEqual(after.map((m) => m.sequence));
    expect(await page.locator("#detail-error").isHidden()).toBe(true);
    // The second stream asked for the events after the last one the first delivered.
    expect(requests.map((r) => afterSequenceOf(r, transport))).toEqual([
      BigInt(before.at(-1)!.sequence) - 1n,
      BigInt(during.at(-1)!.sequence),
    ]);
    const watched = browser.current();
    expect(watched.consoleErrors, watched.diagnostics()).toEqual([]);
    expect(watched.pageErrors, watched.diagnostics()).toEqual([]);
    // connect-web stops reading a stream at its error status (here the server's unavailable
    // as it stopped) and cancels the rest of the body: when that rest had not quite arrived,
    // Chromium reports the first stream as aborted. Nothing else may fail.
    const aborted = `POST ${rpcUrl("StreamSessionEvents")}: net::ERR_ABORTED`;
    expect(watched.failedRequests.filter((line) => line !== aborted), watched.diagnostics()).toEqual([]);
    expect(watched.failedRequests.length, watched.diagnostics()).toBeLessThanOrEqual(1);
  });

  it("on a keyed server, takes the key from the prompt and follows the conversation with it, never in a URL", async () => {
    const id = await rest.startedSession("Behind a key");
    const before = await rest.addAll(id, RUN.slice(0, 2));
    const { key } = await insertTestKey(server.store, DEFAULT_ORG_ID, "console");
    const keyed = new RestClient(() => server.url, key);
    const watched = browser.current();
    const { page } = watched;
    const urls: string[] = [];
    page.on("request", (request) => urls.push(request.url()));
    const requests = streamRequests(page);

    await page.goto(sessionUrl(id));
    await page.getByTestId("api-key-form").waitFor({ state: "visible" });
    await expectText(page, "watch-state", "error");
    expect(await page.locator("#detail-error").textContent()).toBe("Watch failed: missing API key: send Authorization: Bearer <key>");
    expect(await shownMessages(page)).toEqual([]);
    // Neither loading nor claiming the session has no messages.
    expect(await page.locator("#conversation-box").getAttribute("aria-busy")).toBe(null);
    expect(await page.getByTestId("conversation-empty").isHidden()).toBe(true);

    await page.getByTestId("api-key-input").fill(key);
    await page.getByTestId("api-key-submit").click();
    await expectText(page, "watch-state", "live");
    await expectConversation(page, before);
    const live = await keyed.addAll(id, RUN.slice(2));
    await expectConversation(page, [...before, ...live]);

    expect(requests).toHaveLength(1);
    const headers = await requests[0]!.allHeaders();
    expect(headers["authorization"]).toBe(`Bearer ${key}`);
    expect(headers["content-type"]).toBe(streamContentType);
    expect(urls.filter((url) => url.includes(key) || url.includes(encodeURIComponent(key)))).toEqual([]);
    // Before the key: the agents and the messages were refused (Connect answers 401, which Chromium logs; gRPC-Web 200).
    expect(watched.consoleErrors, watched.diagnostics()).toEqual(
      transport === "connect" ? [unauthorized(`${server.url}/sessions.v1.AgentService/ListAgents`), unauthorized(rpcUrl("ListMessages"))] : [],
    );
    expect(watched.pageErrors, watched.diagnostics()).toEqual([]);
    expect(watched.failedRequests, watched.diagnostics()).toEqual([]);
  });

  it("shows a conversation with a tool call opened (screenshot)", async () => {
    const id = await rest.startedSession("Review PR 42");
    const added = await rest.addAll(id, RUN);
    const { page } = browser.current();
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.goto(sessionUrl(id));
    await expectText(page, "watch-state", "live");
    await expectConversation(page, added);
    await page.getByTestId("tool-call").locator("summary").click();
    await page.getByTestId("tool-arguments").waitFor({ state: "visible" });
    // Chart.js draws on the next animation frame after a resize; let it.
    await page.evaluate(() => new Promise((resolve) => (globalThis as any).requestAnimationFrame(() => (globalThis as any).requestAnimationFrame(resolve))));
    await saveScreenshot(page, `conversation over ${transport}`);
    expectNoProblems(browser.current());
  });
});
