import { Code, ConnectError } from "@connectrpc/connect";

/**
 * Etags (AIP-154) derive from a record's version, which the store bumps on every change.
 * They are opaque to clients, and prefixed with the kind of resource so that one
 * resource's etag is never another's by accident.
 */
export function etagOf(kind: "session" | "agent", version: number): string {
  return `${kind}-v${version}`;
}

/**
 * Throws `aborted` when the client sent an etag that is not the current one: the resource
 * changed since the client read it. An empty etag means "whatever the current version".
 */
export function checkEtag(kind: "session" | "agent", id: string, given: string, version: number): void {
  if (given !== "" && given !== etagOf(kind, version)) {
    throw new ConnectError(
      `${kind} ${id} has changed since it was read: etag ${given} is not the current ${etagOf(kind, version)}`,
      Code.Aborted,
    );
  }
}
