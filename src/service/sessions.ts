import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { Empty } from "@bufbuild/protobuf/wkt";
import { EmptySchema } from "@bufbuild/protobuf/wkt";
import { create } from "@bufbuild/protobuf";
import { SessionService } from "../../gen/sessions/v1/session_service_pb.js";
import type {
  CancelSessionRequest, CompleteSessionRequest, CreateSessionRequest, DeleteSessionRequest, FailSessionRequest,
  GetRuntimeAgentRequest, GetSessionRequest, ListSessionsRequest, ListSessionsResponse, RecordUsageRequest,
  RuntimeAgent, StartSessionRequest, UpdateSessionRequest, WatchSessionRequest, AddMessageRequest, GetMessageRequest,
  ListMessagesRequest, ListMessagesResponse, ListSessionEventsRequest, ListSessionEventsResponse,
  StreamSessionEventsRequest,
} from "../../gen/sessions/v1/session_service_pb.js";
import type { Message } from "../../gen/sessions/v1/message_pb.js";
import type { SessionEvent } from "../../gen/sessions/v1/session_event_pb.js";
import type { Session } from "../../gen/sessions/v1/session_pb.js";
import type { SessionChange, SessionRecord, SessionState, Store } from "../store/store.js";
import { createIdGenerator } from "../ids.js";
import { monotonicClock } from "../clock.js";
import { truncateCodePoints, Violations } from "../validate.js";
import { callerOrgId } from "./caller.js";
import {
  UPDATABLE_SESSION_FIELDS, validateCreateSession, validateFailSession, validateRecordUsage, validateSessionId,
  validateSessionUpdate,
} from "./session-validation.js";
import { sessionMessage, statusName } from "./session-message.js";
import { checkEtag } from "./etag.js";
import { capabilityRecords } from "./capability-message.js";
import type { SessionEvents } from "./session-events.js";
import { DEFAULT_CONCURRENT_LISTS, WorkLimiter } from "./work-limiter.js";
import { listSessions } from "./session-list.js";
import { DEFAULT_PAGE_BYTES } from "./paging.js";
import { runtimeAgent } from "./runtime-agent.js";
import { watchSession } from "./session-watch.js";
import { streamSessionEvents } from "./session-event-stream.js";
import { eventMessage } from "./event-message.js";
import { idempotencyKey, keyedResult } from "./idempotency.js";
import { addUsage, PREVIEW_LENGTH } from "./usage.js";
import { Conversation } from "./conversation.js";

export { PREVIEW_LENGTH } from "./usage.js";

export interface SessionServiceDeps {
  readonly store: Store;
  readonly events: SessionEvents;
  /** Unix milliseconds; injectable so tests can pin time. */
  readonly now?: () => number;
  /** The byte budget of a ListSessions page; DEFAULT_PAGE_BYTES when omitted. */
  readonly listPageBytes?: number;
  /** Bounds the list pages built at once (shared with AgentService); its own when omitted. */
  readonly lists?: WorkLimiter;
  /** The most messages a session holds; DEFAULT_MESSAGES_PER_SESSION when omitted. */
  readonly messagesPerSession?: number;
}

/** The lifecycle: which states each move starts from, and where it goes. */
const MOVES = {
  start: { from: ["pending"], to: "running", event: "started" },
  complete: { from: ["running"], to: "completed", event: "completed" },
  fail: { from: ["running"], to: "failed", event: "failed" },
  cancel: { from: ["pending", "running"], to: "cancelled", event: "cancelled" },
} as const satisfies Record<string, { from: readonly SessionState[]; to: SessionState; event: SessionChange["type"] }>;

/** sessions.v1.SessionService: knows nothing of HTTP or of how the store keeps rows. */
export class SessionServiceImpl implements ServiceImpl<typeof SessionService> {
  private readonly store: Store;
  private readonly events: SessionEvents;
  private readonly now: () => number;
  private readonly newId: (prefix: string) => string;
  private readonly listPageBytes: number;
  private readonly lists: WorkLimiter;
  private readonly conversation: Conversation;

  constructor(deps: SessionServiceDeps) {
    this.store = deps.store;
    this.listPageBytes = deps.listPageBytes ?? DEFAULT_PAGE_BYTES;
    this.lists = deps.lists ?? new WorkLimiter(DEFAULT_CONCURRENT_LISTS);
    this.events = deps.events;
    this.now = monotonicClock(deps.now);
    this.newId = createIdGenerator(this.now);
    this.conversation = new Conversation({
      store: this.store,
      events: this.events,
      now: this.now,
      newId: this.newId,
      lists: this.lists,
      listPageBytes: this.listPageBytes,
      messagesPerSession: deps.messagesPerSession,
    });
  }

  async createSession(request: CreateSessionRequest, context: HandlerContext): Promise<Session> {
    validateCreateSession(request);
    const now = this.now();
    const record: SessionRecord = {
      id: this.newId("session"),
      orgId: callerOrgId(context),
      agentId: request.agentId,
      modelId: request.modelId,
      capabilities: capabilityRecords(request.capabilities),
      title: request.title,
      tags: request.tags,
      state: "pending",
      usage: { inputTokens: 0n, outputTokens: 0n, cacheReadTokens: 0n, cacheCreationTokens: 0n },
      promptPreview: "",
      responsePreview: "",
      error: "",
      createdAt: now,
      updatedAt: now,
      startedAt: undefined,
      finishedAt: undefined,
      version: 1,
      messageCount: 0,
      // The store appends the CREATED event, sequence 1, with the insert.
      lastSequence: 1,
    };
    const key = idempotencyKey(SessionService.method.createSession, request, now);
    const result = key ? await this.store.insertSession(record, key) : await this.store.insertSession(record);
    if (result === false) {
      const violations = new Violations();
      violations.add("agent_id", `Invalid agent ID: agent ${request.agentId} does not exist`);
      violations.throwIfAny();
    }
    // A retry answers with the original session as it is now, exactly as a GET would.
    return sessionMessage(typeof result === "object" ? keyedResult(result, record, "session", request.requestId) : record);
  }

  async getSession(request: GetSessionRequest, context: HandlerContext): Promise<Session> {
    validateSessionId(request.id);
    const record = await this.store.findSession(callerOrgId(context), request.id);
    if (!record) throw notFound(request.id);
    return sessionMessage(record);
  }

  listSessions(request: ListSessionsRequest, context: HandlerContext): Promise<ListSessionsResponse> {
    const orgId = callerOrgId(context);
    return this.lists.run(context.signal, () => listSessions(this.store, orgId, request, this.listPageBytes, context.signal));
  }

  async updateSession(request: UpdateSessionRequest, context: HandlerContext): Promise<Session> {
    const fields = updatedFields(request);
    validateSessionUpdate(request, fields);
    const { id, etag, title, tags } = request.session!;
    const orgId = callerOrgId(context);
    if (fields.size === 0) {
      const current = await this.store.findSession(orgId, id);
      if (!current) throw notFound(id);
      checkEtag("session", id, etag, current.version);
      return sessionMessage(current);
    }
    return this.change(orgId, id, { type: "updated" }, (current) => {
      checkEtag("session", id, etag, current.version);
      return {
        ...current,
        title: fields.has("title") ? title : current.title,
        tags: fields.has("tags") ? [...tags] : current.tags,
      };
    });
  }

  async deleteSession(request: DeleteSessionRequest, context: HandlerContext): Promise<Empty> {
    validateSessionId(request.id);
    const orgId = callerOrgId(context);
    const deleted = await this.store.deleteSession(orgId, request.id, (current) =>
      checkEtag("session", request.id, request.etag, current.version),
    );
    if (!deleted) throw notFound(request.id);
    this.events.deleted(orgId, request.id);
    return create(EmptySchema);
  }

  startSession(request: StartSessionRequest, context: HandlerContext): Promise<Session> {
    return this.move(context, request.id, "start", (current, now) => ({ ...current, startedAt: now }));
  }

  completeSession(request: CompleteSessionRequest, context: HandlerContext): Promise<Session> {
    return this.move(context, request.id, "complete", (current, now) => ({ ...current, finishedAt: now }));
  }

  failSession(request: FailSessionRequest, context: HandlerContext): Promise<Session> {
    validateFailSession(request);
    return this.move(context, request.id, "fail", (current, now) => ({ ...current, finishedAt: now, error: request.error }));
  }

  cancelSession(request: CancelSessionRequest, context: HandlerContext): Promise<Session> {
    return this.move(context, request.id, "cancel", (current, now) => ({ ...current, finishedAt: now }));
  }

  /**
   * Usage adds up in the store's transaction, so concurrent calls lose nothing. Allowed in
   * every status: an executor may report a turn's tokens after it completed the session.
   */
  async recordUsage(request: RecordUsageRequest, context: HandlerContext): Promise<Session> {
    validateRecordUsage(request);
    const prompt = truncateCodePoints(request.promptPreview, PREVIEW_LENGTH);
    const response = truncateCodePoints(request.responsePreview, PREVIEW_LENGTH);
    const delta = {
      inputTokens: request.inputTokens,
      outputTokens: request.outputTokens,
      cacheReadTokens: request.cacheReadTokens,
      cacheCreationTokens: request.cacheCreationTokens,
    };
    return this.change(callerOrgId(context), request.id, { type: "usage_recorded", usageDelta: delta }, (current) => {
      return {
        ...current,
        usage: addUsage(current, delta),
        promptPreview: current.promptPreview === "" ? prompt : current.promptPreview,
        responsePreview: response === "" ? current.responsePreview : response,
      };
    });
  }

  getRuntimeAgent(request: GetRuntimeAgentRequest, context: HandlerContext): Promise<RuntimeAgent> {
    return runtimeAgent(this.store, callerOrgId(context), request);
  }

  watchSession(request: WatchSessionRequest, context: HandlerContext): AsyncIterable<Session> {
    return watchSession(this.store, this.events, callerOrgId(context), request, context.signal);
  }

  addMessage(request: AddMessageRequest, context: HandlerContext): Promise<Message> {
    return this.conversation.addMessage(request, context);
  }

  getMessage(request: GetMessageRequest, context: HandlerContext): Promise<Message> {
    return this.conversation.getMessage(request, context);
  }

  listMessages(request: ListMessagesRequest, context: HandlerContext): Promise<ListMessagesResponse> {
    return this.conversation.listMessages(request, context);
  }

  listSessionEvents(request: ListSessionEventsRequest, context: HandlerContext): Promise<ListSessionEventsResponse> {
    return this.conversation.listSessionEvents(request, context);
  }

  streamSessionEvents(request: StreamSessionEventsRequest, context: HandlerContext): AsyncIterable<SessionEvent> {
    return streamSessionEvents(this.store, this.events, callerOrgId(context), request, context.signal, eventMessage);
  }

  /** A lifecycle move: allowed only from its `from` states; anything else is failed_precondition. */
  private move(
    context: HandlerContext,
    id: string,
    name: keyof typeof MOVES,
    apply: (current: SessionRecord, now: number) => SessionRecord,
  ): Promise<Session> {
    const { from, to, event } = MOVES[name];
    return this.change(callerOrgId(context), id, { type: event }, (current, now) => {
      if (!(from as readonly SessionState[]).includes(current.state)) {
        throw new ConnectError(
          `cannot ${name} session ${id}: it is ${statusName(current.state)}, and only a session that is ` +
            `${from.map(statusName).join(" or ")} can ${name}`,
          Code.FailedPrecondition,
        );
      }
      return { ...apply(current, now), state: to };
    });
  }

  /**
   * Checks the id, applies a change in one store transaction with its event (`change`),
   * stamps updated_at, and tells watchers.
   */
  private async change(
    orgId: string,
    id: string,
    change: SessionChange,
    mutation: (current: SessionRecord, now: number) => SessionRecord,
  ): Promise<Session> {
    validateSessionId(id);
    const now = this.now();
    const updated = await this.store.mutateSession(orgId, id, change, (current) => ({ ...mutation(current, now), updatedAt: now }));
    if (!updated) throw notFound(id);
    this.events.changed(updated);
    return sessionMessage(updated);
  }
}

function notFound(id: string): ConnectError {
  return new ConnectError(`session ${id} not found`, Code.NotFound);
}

/**
 * The fields an update sets. An explicit mask must name only updatable fields (`id` and
 * `etag` identify the session and are allowed); an empty mask means every updatable
 * field with a value (AIP-134). Over REST the transcoder fills an empty mask from the
 * keys present in the body, so a REST client can also clear a field.
 */
function updatedFields(request: UpdateSessionRequest): Set<string> {
  const updatable: readonly string[] = UPDATABLE_SESSION_FIELDS;
  const paths = request.updateMask?.paths ?? [];
  if (paths.length === 0) {
    const session = request.session;
    return new Set(
      [session?.title ? "title" : "", session && session.tags.length > 0 ? "tags" : ""].filter((f) => f !== ""),
    );
  }
  const violations = new Violations();
  const fields = new Set<string>();
  for (const path of paths) {
    if (updatable.includes(path)) fields.add(path);
    else if (path !== "id" && path !== "etag") {
      violations.add("update_mask", `update_mask: "${path}" cannot be updated; only ${updatable.join(" and ")} can`);
    }
  }
  violations.throwIfAny();
  return fields;
}
