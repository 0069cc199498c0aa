import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextKey, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { Authenticator, Caller } from "../auth/authenticator.js";
import { wrapMethods } from "./method-wrapper.js";

export { DEFAULT_ORG_ID } from "../auth/authenticator.js";

const callerKey = createContextKey<Caller | undefined>(undefined, { description: "authenticated caller" });

/**
 * The organisation a request acts for. Fails closed: a handler reached without
 * authentication is a wiring bug, never a reason to fall back to a default organisation.
 */
export function callerOrgId(context: HandlerContext): string {
  const caller = context.values.get(callerKey);
  if (!caller) throw new ConnectError("request reached a handler without authentication", Code.Internal);
  return caller.orgId;
}

/** The authenticated caller; undefined for a method that authenticates no one (health). */
export function callerOf(context: HandlerContext): Caller | undefined {
  return context.values.get(callerKey);
}

/**
 * Wraps an implementation so that every method first authenticates its request — on
 * every protocol alike, since Connect and the REST transcoder call these same objects —
 * and records the caller for callerOrgId.
 */
export function withCaller<S extends DescService>(
  service: S,
  implementation: ServiceImpl<S>,
  authenticator: Authenticator,
): ServiceImpl<S> {
  return wrapMethods(service, implementation, () => ({
    before: async (context) => {
      context.values.set(callerKey, await authenticator.authenticate(context.requestHeader));
    },
  }));
}
