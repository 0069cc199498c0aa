import { create } from "@bufbuild/protobuf";
import { EmptySchema, type Empty } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { Agent } from "../../gen/sessions/v1/agent_pb.js";
import {
  AgentService, ListAgentsResponseSchema, type CreateAgentRequest, type DeleteAgentRequest, type GetAgentRequest,
  type ListAgentsRequest, type ListAgentsResponse, type UpdateAgentRequest,
} from "../../gen/sessions/v1/agent_service_pb.js";
import { createIdGenerator } from "../ids.js";
import { monotonicClock } from "../clock.js";
import type { AgentRecord, AgentStore } from "../store/store.js";
import { Violations } from "../validate.js";
import { agentMessage } from "./agent-message.js";
import { capabilityRecords } from "./capability-message.js";
import { validateAgentId, validateAgentUpdate, validateCreateAgent } from "./agent-validation.js";
import { callerOrgId } from "./caller.js";
import { checkEtag } from "./etag.js";
import { decodePageToken } from "./page-token.js";
import { checkPageSize, DEFAULT_PAGE_BYTES, pageOf } from "./paging.js";
import { idempotencyKey, keyedResult } from "./idempotency.js";
import { DEFAULT_CONCURRENT_LISTS, WorkLimiter } from "./work-limiter.js";

/** Agent listings have no filters; the key still names the listing so a session token is refused. */
const AGENT_LIST_KEY = "agents";

export interface AgentServiceDeps {
  readonly store: AgentStore;
  /** Unix milliseconds; injectable so tests can pin time. */
  readonly now?: () => number;
  /** The byte budget of a ListAgents page; DEFAULT_PAGE_BYTES when omitted. */
  readonly listPageBytes?: number;
  /** Bounds the list pages built at once (shared with SessionService); its own when omitted. */
  readonly lists?: WorkLimiter;
}

/** sessions.v1.AgentService: knows nothing of HTTP or of how the store keeps rows. */
export class AgentServiceImpl implements ServiceImpl<typeof AgentService> {
  private readonly store: AgentStore;
  private readonly now: () => number;
  private readonly newId: (prefix: string) => string;
  private readonly listPageBytes: number;
  private readonly lists: WorkLimiter;

  constructor(deps: AgentServiceDeps) {
    this.store = deps.store;
    this.listPageBytes = deps.listPageBytes ?? DEFAULT_PAGE_BYTES;
    this.lists = deps.lists ?? new WorkLimiter(DEFAULT_CONCURRENT_LISTS);
    this.now = monotonicClock(deps.now);
    this.newId = createIdGenerator(this.now);
  }

  async createAgent(request: CreateAgentRequest, context: HandlerContext): Promise<Agent> {
    validateCreateAgent(request);
    const now = this.now();
    const record: AgentRecord = {
      id: this.newId("agent"),
      orgId: callerOrgId(context),
      name: request.name,
      defaultModelId: request.defaultModelId,
      capabilities: capabilityRecords(request.capabilities),
      createdAt: now,
      updatedAt: now,
      version: 1,
    };
    const key = idempotencyKey(AgentService.method.createAgent, request, now);
    if (!key) {
      await this.store.insertAgent(record);
      return agentMessage(record);
    }
    // A retry answers with the original agent as it is now, exactly as a GET would.
    return agentMessage(keyedResult(await this.store.insertAgent(record, key), record, "agent", request.requestId));
  }

  async getAgent(request: GetAgentRequest, context: HandlerContext): Promise<Agent> {
    validateAgentId(request.id);
    const record = await this.store.findAgent(callerOrgId(context), request.id);
    if (!record) throw notFound(request.id);
    return agentMessage(record);
  }

  async listAgents(request: ListAgentsRequest, context: HandlerContext): Promise<ListAgentsResponse> {
    const violations = new Violations();
    const pageSize = checkPageSize(violations, request.pageSize);
    violations.throwIfAny();
    const cursor = decodePageToken(request.pageToken, AGENT_LIST_KEY);
    const orgId = callerOrgId(context);
    const page = await this.lists.run(context.signal, () => this.store.listAgents(orgId, cursor, pageSize, this.listPageBytes));
    const { items, nextPageToken } = pageOf(page, AGENT_LIST_KEY);
    return create(ListAgentsResponseSchema, { agents: items.map(agentMessage), nextPageToken });
  }

  async updateAgent(request: UpdateAgentRequest, context: HandlerContext): Promise<Agent> {
    const fields = validateAgentUpdate(request);
    const { id, etag, name, defaultModelId, capabilities } = request.agent!;
    const orgId = callerOrgId(context);
    if (fields.size === 0) {
      // Nothing to change: answer the agent as it is, still refusing a stale etag.
      const current = await this.store.findAgent(orgId, id);
      if (!current) throw notFound(id);
      checkEtag("agent", id, etag, current.version);
      return agentMessage(current);
    }
    const now = this.now();
    const updated = await this.store.mutateAgent(orgId, id, (current) => {
      // Inside the store's transaction, so no other change slips in between check and write.
      checkEtag("agent", id, etag, current.version);
      return {
        ...current,
        name: fields.has("name") ? name : current.name,
        defaultModelId: fields.has("default_model_id") ? defaultModelId : current.defaultModelId,
        capabilities: fields.has("capabilities") ? capabilityRecords(capabilities) : current.capabilities,
        updatedAt: now,
      };
    });
    if (!updated) throw notFound(id);
    return agentMessage(updated);
  }

  async deleteAgent(request: DeleteAgentRequest, context: HandlerContext): Promise<Empty> {
    validateAgentId(request.id);
    const deleted = await this.store.deleteAgent(callerOrgId(context), request.id, (current) =>
      checkEtag("agent", request.id, request.etag, current.version),
    );
    if (!deleted) throw notFound(request.id);
    return create(EmptySchema);
  }
}

function notFound(id: string): ConnectError {
  return new ConnectError(`agent ${id} not found`, Code.NotFound);
}

