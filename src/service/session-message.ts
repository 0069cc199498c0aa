import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { SessionSchema, SessionStatus, type Session } from "../../gen/sessions/v1/session_pb.js";
import type { SessionRecord, SessionState } from "../store/store.js";
import { etagOf } from "./etag.js";
import { capabilityMessages } from "./capability-message.js";

const STATUS_OF_STATE: Record<SessionState, SessionStatus> = {
  pending: SessionStatus.PENDING,
  running: SessionStatus.RUNNING,
  completed: SessionStatus.COMPLETED,
  failed: SessionStatus.FAILED,
  cancelled: SessionStatus.CANCELLED,
};

/** The API's name of each state, as error messages show it. */
export function statusName(state: SessionState): string {
  return `SESSION_STATUS_${state.toUpperCase()}`;
}

/** The stored state of each API status; undefined for UNSPECIFIED and unknown numbers. */
export function stateOfStatus(status: SessionStatus): SessionState | undefined {
  return (Object.keys(STATUS_OF_STATE) as SessionState[]).find((state) => STATUS_OF_STATE[state] === status);
}

/** The API's view of a stored session. Unset times stay unset (absent in JSON). */
export function sessionMessage(record: SessionRecord): Session {
  return create(SessionSchema, {
    id: record.id,
    orgId: record.orgId,
    agentId: record.agentId,
    modelId: record.modelId,
    capabilities: capabilityMessages(record.capabilities),
    title: record.title,
    tags: [...record.tags],
    status: STATUS_OF_STATE[record.state],
    usage: { ...record.usage },
    promptPreview: record.promptPreview,
    responsePreview: record.responsePreview,
    createdAt: timestampFromMs(record.createdAt),
    updatedAt: timestampFromMs(record.updatedAt),
    startedAt: record.startedAt === undefined ? undefined : timestampFromMs(record.startedAt),
    finishedAt: record.finishedAt === undefined ? undefined : timestampFromMs(record.finishedAt),
    error: record.error,
    etag: etagOf("session", record.version),
  });
}
