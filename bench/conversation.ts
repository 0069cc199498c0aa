import { SqliteStore } from "../src/store/sqlite.js";
import type { ContentPartRecord, MessageRecord, MessageRole, SessionRecord, UsageRecord } from "../src/store/store.js";
import { createIdGenerator } from "../src/ids.js";
import { DEFAULT_ORG_ID } from "../src/auth/authenticator.js";

/**
 * The long conversation the page reads go through: one RUNNING session whose event log
 * holds `events` events (its CREATED, its STARTED, then messages), written through the
 * store into the database file before the server opens it. Through the store, so that the
 * rows are exactly what the server writes (message, event and session change in one
 * transaction each, sequences assigned by the store); without the server, so that the
 * fill costs no requests: the appends are sent a batch at a time and the store's group
 * commit makes each batch one transaction, about a second for 10,000.
 *
 * The messages cycle through a turn of an agent run: a user prompt, an assistant reply
 * calling a tool (with usage), the tool's result, and an assistant answer (with usage).
 */
export interface Conversation {
  readonly agentId: string;
  readonly sessionId: string;
  /** Events in its log: sequences 1..events. */
  readonly events: number;
  readonly messages: number;
  readonly seconds: number;
}

const BATCH = 256;
const TURN_USAGE: UsageRecord = { inputTokens: 1200n, outputTokens: 80n, cacheReadTokens: 1000n, cacheCreationTokens: 0n };

export async function fillConversation(path: string, events: number): Promise<Conversation> {
  const started = performance.now();
  const store = new SqliteStore(path);
  try {
    let clock = Date.now() - 3_600_000; // an hour ago, a millisecond per change
    const newId = createIdGenerator(() => clock);
    const agentId = newId("agent");
    await store.insertAgent({
      id: agentId, orgId: DEFAULT_ORG_ID, name: "long conversation", defaultModelId: "model_0123456789abcdef0123456789abcdef",
      capabilities: [], createdAt: clock, updatedAt: clock, version: 1,
    });
    const session: SessionRecord = {
      id: newId("session"), orgId: DEFAULT_ORG_ID, agentId, modelId: "", capabilities: [], title: "long conversation",
      tags: ["bench"], state: "pending",
      usage: { inputTokens: 0n, outputTokens: 0n, cacheReadTokens: 0n, cacheCreationTokens: 0n },
      promptPreview: "", responsePreview: "", error: "", createdAt: clock, updatedAt: clock,
      startedAt: undefined, finishedAt: undefined, version: 1, messageCount: 0, lastSequence: 0,
    };
    if (!(await store.insertSession(session))) throw new Error("the long conversation's session was not stored");
    clock++;
    const running = await store.mutateSession(DEFAULT_ORG_ID, session.id, { type: "started" }, (s) => ({
      ...s, state: "running", startedAt: clock, updatedAt: clock,
    }));
    if (running?.lastSequence !== 2) throw new Error(`the long conversation's start left sequence ${running?.lastSequence}, not 2`);

    const messages = events - running.lastSequence;
    for (let from = 0; from < messages; from += BATCH) {
      clock++;
      const batch = Array.from({ length: Math.min(BATCH, messages - from) }, (_, k) => {
        const message = turnMessage(from + k, session.id, newId("message"), clock);
        return store.appendMessage(message, (s) => ({
          ...s,
          usage: message.usage ? addUsage(s.usage, message.usage) : s.usage,
          promptPreview: s.promptPreview === "" && message.role === "user" ? textOf(message) : s.promptPreview,
          responsePreview: message.role === "assistant" && textOf(message) !== "" ? textOf(message) : s.responsePreview,
          updatedAt: clock,
        }));
      });
      for (const appended of await Promise.all(batch)) {
        if (appended?.outcome !== "appended") throw new Error(`an append to the long conversation ended ${appended?.outcome}`);
      }
    }
    const stored = await store.findSession(DEFAULT_ORG_ID, session.id);
    if (stored?.lastSequence !== events || stored.messageCount !== messages) {
      throw new Error(`the long conversation holds ${stored?.lastSequence} events and ${stored?.messageCount} messages, not ${events} and ${messages}`);
    }
    return { agentId, sessionId: session.id, events, messages, seconds: (performance.now() - started) / 1000 };
  } finally {
    await store.close();
  }
}

function turnMessage(i: number, sessionId: string, id: string, createdAt: number): MessageRecord {
  const call = `call_${Math.floor(i / 4)}`;
  const base = { id, orgId: DEFAULT_ORG_ID, sessionId, createdAt, sequence: 0, modelId: "", usage: undefined };
  const shaped = (role: MessageRole, content: ContentPartRecord[], assistant = false): MessageRecord => ({
    ...base, role, content, ...(assistant ? { modelId: "model_0123456789abcdef0123456789abcdef", usage: TURN_USAGE } : {}),
  });
  switch (i % 4) {
    case 0:
      return shaped("user", [{ kind: "text", text: `Review file ${i / 4} of pull request 42 and fix what fails.` }]);
    case 1:
      return shaped("assistant", [
        { kind: "text", text: "Running the tests first." },
        { kind: "tool_call", id: call, name: "run_tests", arguments: { path: `src/file-${Math.floor(i / 4)}.ts`, watch: false } },
      ], true);
    case 2:
      return shaped("tool", [{ kind: "tool_result", toolCallId: call, output: { passed: 41, failed: 1, failures: ["parses empty input"] }, isError: false }]);
    default:
      return shaped("assistant", [{ kind: "text", text: "One test failed on empty input; the parser now returns an empty list for it." }], true);
  }
}

function textOf(message: MessageRecord): string {
  return message.content.map((p) => (p.kind === "text" ? p.text : "")).join("").slice(0, 200);
}

function addUsage(a: UsageRecord, b: UsageRecord): UsageRecord {
  return {
    inputTokens: a.inputTokens + b.inputTokens,
    outputTokens: a.outputTokens + b.outputTokens,
    cacheReadTokens: a.cacheReadTokens + b.cacheReadTokens,
    cacheCreationTokens: a.cacheCreationTokens + b.cacheCreationTokens,
  };
}

/**
 * The ListMessages page token that opens the page after `position` messages, found by
 * paging once with 1,000-message pages (page size is not part of the token).
 */
export async function messagesPageToken(baseUrl: string, sessionId: string, position: number): Promise<string> {
  let token = "";
  for (let seen = 0; seen < position; ) {
    const size = Math.min(1000, position - seen);
    const url = `${baseUrl}/v1/sessions/${sessionId}/messages?page_size=${size}${token ? `&page_token=${encodeURIComponent(token)}` : ""}`;
    const response = await fetch(url);
    const text = await response.text();
    if (response.status !== 200) throw new Error(`GET ${url}: ${response.status} ${text}`);
    const page = JSON.parse(text) as { messages: unknown[]; next_page_token: string };
    seen += page.messages.length;
    token = page.next_page_token;
    if (token === "" && seen < position) throw new Error(`the conversation ended after ${seen} messages, before position ${position}`);
  }
  return token;
}
