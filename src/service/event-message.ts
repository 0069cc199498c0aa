import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { SessionEventSchema, SessionEventType, type SessionEvent } from "../../gen/sessions/v1/session_event_pb.js";
import type { SessionEventRecord, SessionEventType as StoredType } from "../store/store.js";
import { messageMessage } from "./message-message.js";
import { sessionMessage } from "./session-message.js";
import { UsageSchema } from "../../gen/sessions/v1/session_pb.js";

const TYPE_OF: Record<StoredType, SessionEventType> = {
  created: SessionEventType.CREATED,
  updated: SessionEventType.UPDATED,
  started: SessionEventType.STARTED,
  message_added: SessionEventType.MESSAGE_ADDED,
  usage_recorded: SessionEventType.USAGE_RECORDED,
  completed: SessionEventType.COMPLETED,
  failed: SessionEventType.FAILED,
  cancelled: SessionEventType.CANCELLED,
};

/** The API's view of a stored event: the change itself (message or usage delta) where there is one. */
export function eventMessage(record: SessionEventRecord): SessionEvent {
  const change = record.message
    ? { case: "message" as const, value: messageMessage(record.message) }
    : record.usageDelta
      ? { case: "usage" as const, value: create(UsageSchema, { ...record.usageDelta }) }
      : { case: undefined };
  return create(SessionEventSchema, {
    sessionId: record.sessionId,
    sequence: BigInt(record.sequence),
    type: TYPE_OF[record.type],
    createdAt: timestampFromMs(record.createdAt),
    change,
    session: sessionMessage(record.session),
  });
}
