import { create } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import {
  ListSessionsResponseSchema, type ListSessionsRequest, type ListSessionsResponse,
} from "../../gen/sessions/v1/session_service_pb.js";
import { SessionStatus } from "../../gen/sessions/v1/session_pb.js";
import type { SessionFilter, SessionState, SessionStore } from "../store/store.js";
import { Violations } from "../validate.js";
import { checkId, LIMITS } from "./field-rules.js";
import { decodePageToken } from "./page-token.js";
import { checkPageSize, pageOf } from "./paging.js";
import { readInChunks } from "./chunked-read.js";
import { sessionMessage, stateOfStatus } from "./session-message.js";

/** google.protobuf.Timestamp's range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z. */
const MIN_SECONDS = -62135596800n;
const MAX_SECONDS = 253402300799n;

/**
 * ListSessions: one page of the caller's sessions, newest first. The page token is a
 * keyset cursor (created_at, id) bound to the filters, so a deep page costs what the
 * first does, and sessions created while a client pages are newer than its cursor and
 * never show up in (or shift) the pages still to come. A page ends early, with its token,
 * at `pageBytes` of stored sessions (see StoredPage), and a client that goes away stops
 * the reading between chunks of rows (see readInChunks).
 */
export async function listSessions(
  store: SessionStore,
  orgId: string,
  request: ListSessionsRequest,
  pageBytes: number,
  signal: AbortSignal,
): Promise<ListSessionsResponse> {
  const { pageSize, filter } = validateListSessions(request);
  const filterKey = sessionFilterKey(filter);
  const cursor = decodePageToken(request.pageToken, filterKey);
  const page = await readInChunks(
    (from, limit, maxBytes) => store.listSessions(orgId, filter, from, limit, maxBytes),
    cursor,
    pageSize,
    pageBytes,
    signal,
  );
  const { items, nextPageToken } = pageOf(page, filterKey);
  return create(ListSessionsResponseSchema, { sessions: items.map(sessionMessage), nextPageToken });
}

/**
 * The page size and store filter of a request; throws invalid_argument listing every
 * bad field. Repeated statuses and tags are deduplicated (a repeat changes nothing).
 * An agent_id of an unknown agent, or of another organisation's, is no error: it
 * matches no session, as any filter value may.
 */
function validateListSessions(request: ListSessionsRequest): { pageSize: number; filter: SessionFilter } {
  const violations = new Violations();
  const pageSize = checkPageSize(violations, request.pageSize);
  if (request.agentId !== "") checkId(violations, "agent", request.agentId, "agent_id");

  const states = new Set<SessionState>();
  request.status.forEach((status, i) => {
    const state = stateOfStatus(status);
    if (state !== undefined) states.add(state);
    else if (status === SessionStatus.UNSPECIFIED) {
      violations.add(`status[${i}]`, `status[${i}] must be a session status, not SESSION_STATUS_UNSPECIFIED`);
    } else violations.add(`status[${i}]`, `status[${i}] must be a session status, got ${status}`);
  });

  request.tag.forEach((tag, i) => {
    if (tag === "") violations.add(`tag[${i}]`, `tag[${i}] must not be empty`);
  });
  const tags = new Set(request.tag);
  // A session has at most LIMITS.tags tags, so more cannot all match; the bound also
  // keeps the query (one index probe per tag) small.
  if (tags.size > LIMITS.tags) violations.add("tag", `tag must have at most ${LIMITS.tags} distinct entries, got ${tags.size}`);

  const after = checkTimestamp(violations, request.createdAfter, "created_after");
  const before = checkTimestamp(violations, request.createdBefore, "created_before");
  if (after && before && compareTimestamps(after, before) >= 0) {
    violations.add("created_after", "created_after must be earlier than created_before");
  }
  violations.throwIfAny();

  return {
    pageSize,
    filter: {
      agentId: request.agentId === "" ? undefined : request.agentId,
      states: [...states],
      tags: [...tags],
      // Stored times are whole milliseconds: created_at > 1.5 ms is created_at > 1, and
      // created_at < 1.5 ms is created_at < 2.
      createdAfter: after && Number(after.seconds) * 1000 + Math.floor(after.nanos / 1e6),
      createdBefore: before && Number(before.seconds) * 1000 + Math.ceil(before.nanos / 1e6),
    },
  };
}

/**
 * Equal exactly when two filters select the same sessions: a page token works with the
 * same filters in any order or repetition, and with a different page_size.
 */
function sessionFilterKey(filter: SessionFilter): string {
  return JSON.stringify([
    "sessions",
    filter.agentId ?? null,
    [...new Set(filter.states)].sort(),
    [...new Set(filter.tags)].sort(),
    filter.createdAfter ?? null,
    filter.createdBefore ?? null,
  ]);
}

/** The timestamp when it is set and valid; undefined otherwise (with a violation if invalid). */
function checkTimestamp(violations: Violations, timestamp: Timestamp | undefined, field: string): Timestamp | undefined {
  if (timestamp === undefined) return undefined;
  // JSON (REST, Connect JSON) cannot carry these; binary clients can.
  if (timestamp.seconds < MIN_SECONDS || timestamp.seconds > MAX_SECONDS) {
    violations.add(field, `${field} must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999999Z`);
    return undefined;
  }
  if (!Number.isInteger(timestamp.nanos) || timestamp.nanos < 0 || timestamp.nanos > 999_999_999) {
    violations.add(field, `${field}.nanos must be between 0 and 999999999, got ${timestamp.nanos}`);
    return undefined;
  }
  return timestamp;
}

function compareTimestamps(a: Timestamp, b: Timestamp): number {
  if (a.seconds !== b.seconds) return a.seconds < b.seconds ? -1 : 1;
  return a.nanos - b.nanos;
}
