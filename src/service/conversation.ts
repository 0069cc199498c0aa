import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import type { Message } from "../../gen/sessions/v1/message_pb.js";
import {
  ListMessagesResponseSchema, ListSessionEventsResponseSchema, SessionService, type AddMessageRequest, type GetMessageRequest,
  type ListMessagesRequest, type ListMessagesResponse, type ListSessionEventsRequest, type ListSessionEventsResponse,
} from "../../gen/sessions/v1/session_service_pb.js";
import type { ContentPartRecord, MessageRecord, SessionRecord, SessionState, Store, StoredPage } from "../store/store.js";
import { truncateCodePoints, Violations } from "../validate.js";
import { callerOrgId } from "./caller.js";
import { checkId } from "./field-rules.js";
import { idempotencyKey } from "./idempotency.js";
import { validateAddMessage } from "./message-validation.js";
import { messageMessage } from "./message-message.js";
import { eventMessage } from "./event-message.js";
import { statusName } from "./session-message.js";
import { addUsage, PREVIEW_LENGTH } from "./usage.js";
import { checkPageSize } from "./paging.js";
import { decodeSequenceToken, encodeSequenceToken } from "./page-token.js";
import { readInChunksAlong } from "./chunked-read.js";
import type { SessionEvents } from "./session-events.js";
import type { WorkLimiter } from "./work-limiter.js";

/**
 * The most messages a session holds by default; AddMessage past it is resource_exhausted.
 * 10,000 messages of a long agent run (a few hundred tool calls, each a call and a result,
 * over many turns) is far beyond what one model context holds, and it bounds one session's
 * log (and a follower's catch-up from the start) to what a few hundred pages read.
 */
export const DEFAULT_MESSAGES_PER_SESSION = 10_000;

/** States a message can be added in. */
const OPEN_STATES: readonly SessionState[] = ["pending", "running"];

export interface ConversationDeps {
  readonly store: Store;
  readonly events: SessionEvents;
  readonly now: () => number;
  readonly newId: (prefix: string) => string;
  readonly lists: WorkLimiter;
  readonly listPageBytes: number;
  /** DEFAULT_MESSAGES_PER_SESSION when omitted. */
  readonly messagesPerSession?: number;
}

/**
 * The conversation RPCs of SessionService: AddMessage, GetMessage, ListMessages and
 * ListSessionEvents. SessionServiceImpl delegates to it.
 */
export class Conversation {
  private readonly messagesPerSession: number;

  constructor(private readonly deps: ConversationDeps) {
    this.messagesPerSession = deps.messagesPerSession ?? DEFAULT_MESSAGES_PER_SESSION;
  }

  /**
   * Stores the message with its MESSAGE_ADDED event and the session's change (usage,
   * previews, message count) in one transaction. Previews: prompt_preview is set once, by
   * the first user message with text or the first RecordUsage with a prompt_preview,
   * whichever comes first; response_preview is the latest of an assistant message's text
   * and a RecordUsage's response_preview, whichever was written last.
   */
  async addMessage(request: AddMessageRequest, context: HandlerContext): Promise<Message> {
    const valid = validateAddMessage(request);
    const orgId = callerOrgId(context);
    const sessionId = request.sessionId;
    const now = this.deps.now();
    const record: MessageRecord = {
      id: this.deps.newId("message"),
      orgId,
      sessionId,
      role: valid.role,
      content: valid.content,
      modelId: valid.modelId,
      usage: valid.usage,
      createdAt: now,
      sequence: 0,
    };
    const text = truncateCodePoints(textOf(valid.content), PREVIEW_LENGTH);
    const cap = this.messagesPerSession;
    const key = idempotencyKey(SessionService.method.addMessage, request, now);
    const result = await this.deps.store.appendMessage(
      record,
      (current): SessionRecord => {
        if (!OPEN_STATES.includes(current.state)) {
          throw new ConnectError(
            `cannot add a message to session ${sessionId}: it is ${statusName(current.state)}, and only a session that is ` +
              `${OPEN_STATES.map(statusName).join(" or ")} takes messages`,
            Code.FailedPrecondition,
          );
        }
        if (current.messageCount >= cap) {
          throw new ConnectError(
            `session ${sessionId} has reached its cap of ${cap} messages; continue the conversation in a new session`,
            Code.ResourceExhausted,
          );
        }
        return {
          ...current,
          usage: valid.usage ? addUsage(current, valid.usage) : current.usage,
          promptPreview: current.promptPreview === "" && valid.role === "user" ? text : current.promptPreview,
          responsePreview: valid.role === "assistant" && text !== "" ? text : current.responsePreview,
          updatedAt: now,
        };
      },
      key,
    );
    if (!result) throw sessionNotFound(sessionId);
    switch (result.outcome) {
      case "appended":
        this.deps.events.changed(result.session);
        return messageMessage(result.message);
      case "replayed":
        return messageMessage(result.message);
      case "deleted":
        throw new ConnectError(
          `message ${result.id}, added earlier with request_id ${request.requestId}, has since been deleted`,
          Code.NotFound,
        );
      case "conflict":
        throw new ConnectError(
          `request_id ${request.requestId} was already used within the last 24 hours by a different request to add a ` +
            "message; a retry must repeat the original request exactly, and a new message needs a new request_id",
          Code.AlreadyExists,
        );
    }
  }

  async getMessage(request: GetMessageRequest, context: HandlerContext): Promise<Message> {
    const violations = new Violations();
    checkId(violations, "session", request.sessionId, "session_id");
    checkId(violations, "message", request.id, "id");
    violations.throwIfAny();
    const orgId = callerOrgId(context);
    const found = await this.deps.store.findMessage(orgId, request.sessionId, request.id);
    if (found) return messageMessage(found);
    if (!(await this.deps.store.findSession(orgId, request.sessionId))) throw sessionNotFound(request.sessionId);
    throw new ConnectError(`message ${request.id} not found in session ${request.sessionId}`, Code.NotFound);
  }

  /** Oldest first; the page token is the sequence of the page's last message, bound to the session. */
  listMessages(request: ListMessagesRequest, context: HandlerContext): Promise<ListMessagesResponse> {
    const violations = new Violations();
    checkId(violations, "session", request.sessionId, "session_id");
    const pageSize = checkPageSize(violations, request.pageSize);
    violations.throwIfAny();
    const listKey = JSON.stringify(["messages", request.sessionId]);
    const after = decodeSequenceToken(request.pageToken, listKey) ?? 0;
    const orgId = callerOrgId(context);
    return this.deps.lists.run(context.signal, async () => {
      await this.requireSession(orgId, request.sessionId);
      const page = await this.readPage(
        (from, limit, maxBytes) => this.deps.store.listMessages(orgId, request.sessionId, from, limit, maxBytes),
        after,
        pageSize,
        context.signal,
      );
      return create(ListMessagesResponseSchema, {
        messages: page.records.map(messageMessage),
        nextPageToken: nextToken(page, listKey),
      });
    });
  }

  /**
   * By ascending sequence from after_sequence on; the page token continues the same
   * listing and is refused with another after_sequence or session.
   */
  listSessionEvents(request: ListSessionEventsRequest, context: HandlerContext): Promise<ListSessionEventsResponse> {
    const violations = new Violations();
    checkId(violations, "session", request.sessionId, "session_id");
    if (request.afterSequence < 0n) {
      violations.add("after_sequence", `after_sequence must be at least 0, got ${request.afterSequence}`);
    }
    const pageSize = checkPageSize(violations, request.pageSize);
    violations.throwIfAny();
    const afterSequence = request.afterSequence > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(request.afterSequence);
    const listKey = JSON.stringify(["session_events", request.sessionId, afterSequence]);
    const after = decodeSequenceToken(request.pageToken, listKey) ?? afterSequence;
    const orgId = callerOrgId(context);
    return this.deps.lists.run(context.signal, async () => {
      await this.requireSession(orgId, request.sessionId);
      const page = await this.readPage(
        (from, limit, maxBytes) => this.deps.store.listSessionEvents(orgId, request.sessionId, from, limit, maxBytes),
        after,
        pageSize,
        context.signal,
      );
      return create(ListSessionEventsResponseSchema, {
        events: page.records.map(eventMessage),
        nextPageToken: nextToken(page, listKey),
      });
    });
  }

  private async requireSession(orgId: string, sessionId: string): Promise<void> {
    if (!(await this.deps.store.findSession(orgId, sessionId))) throw sessionNotFound(sessionId);
  }

  private readPage<T extends { readonly sequence: number }>(
    read: (from: number, limit: number, maxBytes: number) => Promise<StoredPage<T>>,
    after: number,
    pageSize: number,
    signal: AbortSignal,
  ): Promise<StoredPage<T>> {
    return readInChunksAlong<T, number>(
      (from, limit, maxBytes) => read(from ?? after, limit, maxBytes),
      after,
      pageSize,
      this.deps.listPageBytes,
      signal,
      (last) => last.sequence,
    );
  }
}

function nextToken<T extends { readonly sequence: number }>(page: StoredPage<T>, listKey: string): string {
  const last = page.records[page.records.length - 1];
  return page.more && last !== undefined ? encodeSequenceToken(last.sequence, listKey) : "";
}

/** A message's text for previews: its text parts joined by newlines. */
function textOf(content: readonly ContentPartRecord[]): string {
  return content
    .filter((part) => part.kind === "text")
    .map((part) => part.text)
    .join("\n");
}

export function sessionNotFound(id: string): ConnectError {
  return new ConnectError(`session ${id} not found`, Code.NotFound);
}
