import { Code, ConnectError } from "@connectrpc/connect";
import type { WatchSessionRequest } from "../../gen/sessions/v1/session_service_pb.js";
import type { Session } from "../../gen/sessions/v1/session_pb.js";
import type { SessionStore } from "../store/store.js";
import type { SessionEvents } from "./session-events.js";

/** WatchSession: the current state, then every change, until a final status. */
// eslint-disable-next-line require-yield
export async function* watchSession(
  _store: SessionStore,
  _events: SessionEvents,
  _orgId: string,
  _request: WatchSessionRequest,
  _signal: AbortSignal,
): AsyncIterable<Session> {
  throw new ConnectError("WatchSession is being built", Code.Unimplemented);
}
