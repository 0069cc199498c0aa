import { Code, ConnectError } from "@connectrpc/connect";
import type { ListSessionsRequest, ListSessionsResponse } from "../../gen/sessions/v1/session_service_pb.js";
import type { SessionStore } from "../store/store.js";

/** ListSessions: page tokens, filters and their validation. */
export async function listSessions(_store: SessionStore, _orgId: string, _request: ListSessionsRequest): Promise<ListSessionsResponse> {
  throw new ConnectError("ListSessions is being built", Code.Unimplemented);
}
