import { createHash } from "node:crypto";
import { clone, toJson, type DescMessage, type DescMethod, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { IdempotencyKey, KeyedInsert } from "../store/store.js";
import type { Violations } from "../validate.js";

/** How long a request_id is remembered: a retry after this creates anew. */
export const IDEMPOTENCY_WINDOW_MS = 24 * 60 * 60 * 1000;

/** A UUID of any version or variant: 8-4-4-4-12 hex digits, either case. */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** request_id: empty (no idempotency) or a UUID. */
export function checkRequestId(violations: Violations, requestId: string, field = "request_id"): void {
  if (requestId !== "" && !UUID.test(requestId)) {
    violations.add(field, `${field} must be a UUID (8-4-4-4-12 hex digits, e.g. 0190f3a2-7c41-7b2e-9d4f-3a5b6c7d8e9f) or empty`);
  }
}

/** A create request that may carry a request_id. */
type KeyedRequest<I extends DescMessage> = MessageShape<I> & { requestId: string };

/**
 * The store's idempotency key of a create, or undefined when the request has no
 * request_id. The id is lowercased (UUIDs are case-insensitive, RFC 9562), so a retry
 * that changes only its case is the same retry. The hash covers the rest of the request
 * as canonical JSON (object keys sorted), so that a Struct sent with its keys in another
 * order, or a field sent as its default value, still counts as the same request.
 */
export function idempotencyKey<I extends DescMessage>(
  method: DescMethod & { input: I },
  request: KeyedRequest<I>,
  now: number,
): IdempotencyKey | undefined {
  if (request.requestId === "") return undefined;
  const rest = clone(method.input, request) as KeyedRequest<I>;
  rest.requestId = "";
  return {
    method: `${method.parent.typeName}/${method.name}`,
    requestId: request.requestId.toLowerCase(),
    requestHash: createHash("sha256").update(canonicalJson(toJson(method.input, rest))).digest(),
    expiredBefore: now - IDEMPOTENCY_WINDOW_MS,
  };
}

/**
 * The resource a keyed create answers with: the new one, or for a retry the original as
 * it is now (current state, as a GET would show it — not a snapshot of the first answer).
 * Throws already_exists when the request_id was used by a different request, and
 * not_found when its resource has been deleted since (creating it again would be the
 * duplicate the request_id is there to prevent).
 */
export function keyedResult<T>(result: KeyedInsert<T>, inserted: T, kind: "session" | "agent", requestId: string): T {
  switch (result.outcome) {
    case "inserted":
      return inserted;
    case "replayed":
      return result.record;
    case "deleted":
      throw new ConnectError(
        `${kind} ${result.id}, created earlier with request_id ${requestId}, has since been deleted`,
        Code.NotFound,
      );
    case "conflict":
      throw new ConnectError(
        `request_id ${requestId} was already used within the last 24 hours by a different request to create ` +
          `${kind === "agent" ? "an" : "a"} ${kind}; a retry must repeat the original request exactly, and a new ` +
          `${kind} needs a new request_id`,
        Code.AlreadyExists,
      );
  }
}

/** JSON with every object's keys sorted, at every depth; arrays keep their order. */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}
