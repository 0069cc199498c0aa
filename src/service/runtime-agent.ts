import { Code, ConnectError } from "@connectrpc/connect";
import type { GetRuntimeAgentRequest, RuntimeAgent } from "../../gen/sessions/v1/session_service_pb.js";
import type { Store } from "../store/store.js";

/** GetRuntimeAgent: the session's effective model and capabilities. */
export async function runtimeAgent(_store: Store, _orgId: string, _request: GetRuntimeAgentRequest): Promise<RuntimeAgent> {
  throw new ConnectError("GetRuntimeAgent is being built", Code.Unimplemented);
}
