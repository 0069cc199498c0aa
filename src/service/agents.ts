import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type { AgentService } from "../../gen/sessions/v1/agent_service_pb.js";
import type { AgentStore } from "../store/store.js";

export interface AgentServiceDeps {
  readonly store: AgentStore;
  /** Unix milliseconds; injectable so tests can pin time. */
  readonly now?: () => number;
}

const building = () => Promise.reject(new ConnectError("AgentService is being built", Code.Unimplemented));

/** sessions.v1.AgentService. */
export class AgentServiceImpl implements ServiceImpl<typeof AgentService> {
  constructor(_deps: AgentServiceDeps) {}
  createAgent = building;
  getAgent = building;
  listAgents = building;
  updateAgent = building;
  deleteAgent = building;
}
