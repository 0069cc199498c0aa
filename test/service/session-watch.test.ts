import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { WatchSessionRequestSchema } from "../../gen/sessions/v1/session_service_pb.js";
import type { Session } from "../../gen/sessions/v1/session_pb.js";
import { SessionEvents } from "../../src/service/session-events.js";
import { sessionMessage } from "../../src/service/session-message.js";
import { watchSession } from "../../src/service/session-watch.js";
import type { SessionRecord, SessionState, SessionStore } from "../../src/store/store.js";

const ORG = "org_00000000000000000000000000000001";
const ID = "session_0123456789abcdef0123456789abcdef";

function record(version: number, state: SessionState = "running"): SessionRecord {
  return {
    id: ID,
    orgId: ORG,
    agentId: "agent_0123456789abcdef0123456789abcdef",
    modelId: "",
    capabilities: [],
    title: `v${version}`,
    tags: [],
    state,
    usage: { inputTokens: BigInt(version), outputTokens: 0n, cacheReadTokens: 0n, cacheCreationTokens: 0n },
    promptPreview: "",
    responsePreview: "",
    error: "",
    createdAt: 1_700_000_000_000,
    updatedAt: 1_700_000_000_000 + version,
    startedAt: undefined,
    finishedAt: undefined,
    version,
    messageCount: 0,
    lastSequence: version,
  };
}

/** A store whose only session read is `read`; it may publish changes while "reading". */
function storeReading(read: () => SessionRecord | undefined): SessionStore {
  return { findSession: async () => read() } as unknown as SessionStore;
}

function start(store: SessionStore, events: SessionEvents, signal = new AbortController().signal, queueLimit?: number) {
  const request = create(WatchSessionRequestSchema, { id: ID });
  return watchSession(store, events, ORG, request, signal, queueLimit)[Symbol.asyncIterator]();
}

async function rest(it: AsyncIterator<Session>): Promise<{ messages: Session[]; error?: ConnectError }> {
  const messages: Session[] = [];
  try {
    for (let r = await it.next(); !r.done; r = await it.next()) messages.push(r.value);
    return { messages };
  } catch (error) {
    return { messages, error: error as ConnectError };
  }
}

describe("watchSession", () => {
  it("sends a change committed between the subscription and the read after the state read", async () => {
    const events = new SessionEvents();
    const it = start(storeReading(() => {
      events.changed(record(2));
      return record(1);
    }), events);
    expect((await it.next()).value).toStrictEqual(sessionMessage(record(1)));
    expect((await it.next()).value).toStrictEqual(sessionMessage(record(2)));
    events.changed(record(3, "completed"));
    expect(await rest(it)).toStrictEqual({ messages: [sessionMessage(record(3, "completed"))] });
    expect(events.watchedSessions).toBe(0);
  });

  it("drops queued changes that the state read already includes, and any older than the last sent", async () => {
    const events = new SessionEvents();
    const it = start(storeReading(() => {
      events.changed(record(2));
      events.changed(record(3));
      return record(3);
    }), events);
    expect((await it.next()).value).toStrictEqual(sessionMessage(record(3)));
    events.changed(record(2));
    events.changed(record(4, "failed"));
    expect(await rest(it)).toStrictEqual({ messages: [sessionMessage(record(4, "failed"))] });
  });

  it("ends after a session that is already final, having subscribed and unsubscribed", async () => {
    const events = new SessionEvents();
    let watchersDuringRead = -1;
    const it = start(storeReading(() => {
      watchersDuringRead = events.watchers(ORG, ID);
      return record(5, "cancelled");
    }), events);
    expect(await rest(it)).toStrictEqual({ messages: [sessionMessage(record(5, "cancelled"))] });
    expect(watchersDuringRead).toBe(1);
    expect(events.watchedSessions).toBe(0);
  });

  it("answers not_found for a session that is not there", async () => {
    const events = new SessionEvents();
    const { messages, error } = await rest(start(storeReading(() => undefined), events));
    expect(messages).toStrictEqual([]);
    expect(error).toBeInstanceOf(ConnectError);
    expect([error!.code, error!.rawMessage]).toStrictEqual([Code.NotFound, `session ${ID} not found`]);
    expect(events.watchedSessions).toBe(0);
  });

  it("ends with not_found after the changes that came before a delete", async () => {
    const events = new SessionEvents();
    const it = start(storeReading(() => record(1)), events);
    await it.next();
    events.changed(record(2));
    events.deleted(ORG, ID);
    events.changed(record(3));
    const { messages, error } = await rest(it);
    expect(messages).toStrictEqual([sessionMessage(record(2))]);
    expect([error!.code, error!.rawMessage]).toStrictEqual([Code.NotFound, `session ${ID} was deleted`]);
    expect(events.watchedSessions).toBe(0);
  });

  it("unsubscribes at the change that overflows the queue and then answers resource_exhausted", async () => {
    const events = new SessionEvents();
    const it = start(storeReading(() => record(1)), events, undefined, 3);
    await it.next();
    // Not reading: three changes fit, the fourth overflows.
    for (const version of [2, 3, 4]) events.changed(record(version));
    expect(events.watchers(ORG, ID)).toBe(1);
    events.changed(record(5));
    expect(events.watchers(ORG, ID)).toBe(0);
    const { messages, error } = await rest(it);
    expect(messages).toStrictEqual([]);
    expect([error!.code, error!.rawMessage]).toStrictEqual([
      Code.ResourceExhausted,
      `watcher fell behind: more than 3 changes of session ${ID} were waiting to be sent; watch again for the current state`,
    ]);
  });

  it("ends quietly when the client goes away while it waits for a change", async () => {
    const events = new SessionEvents();
    const abort = new AbortController();
    const it = start(storeReading(() => record(1)), events, abort.signal);
    await it.next();
    const next = it.next();
    abort.abort();
    expect(await next).toStrictEqual({ done: true, value: undefined });
    expect(events.watchedSessions).toBe(0);
  });

  it("unsubscribes when the client goes away even while the stream is not being read", async () => {
    const events = new SessionEvents();
    const abort = new AbortController();
    const it = start(storeReading(() => record(1)), events, abort.signal);
    await it.next();
    events.changed(record(2));
    abort.abort();
    expect(events.watchedSessions).toBe(0);
    expect(await rest(it)).toStrictEqual({ messages: [] });
  });

  it("ends with the abort reason when it is a ConnectError, as a server stop sends", async () => {
    const events = new SessionEvents();
    const abort = new AbortController();
    const it = start(storeReading(() => record(1)), events, abort.signal);
    await it.next();
    const stopping = new ConnectError("server is shutting down", Code.Unavailable);
    abort.abort(stopping);
    expect(await rest(it)).toStrictEqual({ messages: [], error: stopping });
    expect(events.watchedSessions).toBe(0);
  });

  it("ends after the state when the signal was aborted before the watch began", async () => {
    const events = new SessionEvents();
    const abort = new AbortController();
    abort.abort();
    const { messages } = await rest(start(storeReading(() => record(1)), events, abort.signal));
    expect(messages).toStrictEqual([sessionMessage(record(1))]);
    expect(events.watchedSessions).toBe(0);
  });

  it("refuses a malformed id before subscribing", async () => {
    const events = new SessionEvents();
    const request = create(WatchSessionRequestSchema, { id: "session_12" });
    const it = watchSession(storeReading(() => record(1)), events, ORG, request, new AbortController().signal)[Symbol.asyncIterator]();
    const { error } = await rest(it);
    expect(error!.code).toBe(Code.InvalidArgument);
    expect(events.watchedSessions).toBe(0);
  });
});
