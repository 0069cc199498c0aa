import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextKey, type ContextValues, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
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
 * Authenticates a request from its headers alone, before its body is read, and records
 * the caller in `values` (the call's context values) so that withCaller does not look the
 * key up again. Resolves to false when the headers do not authenticate, without saying
 * why: the caller then skips the body and lets withCaller refuse the call with its
 * error, in the call's own protocol and through the same logs and metrics.
 */
export async function authenticateFromHeaders(authenticator: Authenticator, headers: Headers, values: ContextValues): Promise<boolean> {
  try {
    values.set(callerKey, await authenticator.authenticate(headers));
    return true;
  } catch {
    return false;
  }
}

/**
 * Wraps an implementation so that every method first authenticates its request — on
 * every protocol alike, since Connect and the REST transcoder call these same objects —
 * and records the caller for callerOrgId. A caller found by authenticateFromHeaders for
 * this call is kept.
 */
export function withCaller<S extends DescService>(
  service: S,
  implementation: ServiceImpl<S>,
  authenticator: Authenticator,
): ServiceImpl<S> {
  return wrapMethods(service, implementation, () => ({
    before: async (context) => {
      if (context.values.get(callerKey)) return;
      context.values.set(callerKey, await authenticator.authenticate(context.requestHeader));
    },
  }));
}
