import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { SessionService } from "../../gen/sessions/v1/session_service_pb.js";
import type { CreateSessionRequest, GetSessionRequest } from "../../gen/sessions/v1/session_service_pb.js";
import type { Session } from "../../gen/sessions/v1/session_pb.js";
import type { SessionRecord, SessionStore } from "../store/store.js";
import { createIdGenerator } from "../ids.js";
import { callerOrgId } from "./caller.js";
import { validateCreateSession, validateSessionId } from "./session-validation.js";
import { sessionMessage } from "./session-message.js";

export interface SessionServiceDeps {
  readonly store: SessionStore;
  /** Unix milliseconds; injectable so tests can pin time. */
  readonly now?: () => number;
}

/** sessions.v1.SessionService: knows nothing of HTTP or of how the store keeps rows. */
export class SessionServiceImpl implements ServiceImpl<typeof SessionService> {
  private readonly store: SessionStore;
  private readonly now: () => number;
  private readonly newId: (prefix: string) => string;

  constructor(deps: SessionServiceDeps) {
    this.store = deps.store;
    this.now = deps.now ?? Date.now;
    this.newId = createIdGenerator(this.now);
  }

  async createSession(request: CreateSessionRequest, context: HandlerContext): Promise<Session> {
    validateCreateSession(request);
    const now = this.now();
    const record: SessionRecord = {
      id: this.newId("session"),
      orgId: callerOrgId(context),
      agentId: request.agentId,
      modelId: request.modelId,
      capabilities: request.capabilities.map((c) => ({ capabilityId: c.capabilityId, config: c.config })),
      title: request.title,
      tags: request.tags,
      state: "pending",
      usage: { inputTokens: 0n, outputTokens: 0n, cacheReadTokens: 0n, cacheCreationTokens: 0n },
      promptPreview: "",
      responsePreview: "",
      createdAt: now,
      updatedAt: now,
      startedAt: undefined,
      finishedAt: undefined,
    };
    await this.store.insertSession(record);
    return sessionMessage(record);
  }

  async getSession(request: GetSessionRequest, context: HandlerContext): Promise<Session> {
    validateSessionId(request.id);
    const record = await this.store.findSession(callerOrgId(context), request.id);
    if (!record) throw new ConnectError(`session ${request.id} not found`, Code.NotFound);
    return sessionMessage(record);
  }
}
