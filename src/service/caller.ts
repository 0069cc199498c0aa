import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextKey, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { Authenticator, Caller } from "../auth/authenticator.js";

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
  const wrapped: Record<string, unknown> = {};
  const methods = implementation as unknown as Record<string, (request: unknown, context: HandlerContext) => unknown>;
  const authenticate = async (context: HandlerContext) => {
    context.values.set(callerKey, await authenticator.authenticate(context.requestHeader));
  };
  for (const method of service.methods) {
    const fn = methods[method.localName]!.bind(implementation);
    wrapped[method.localName] =
      method.methodKind === "unary" || method.methodKind === "client_streaming"
        ? async (request: unknown, context: HandlerContext) => {
            await authenticate(context);
            return fn(request, context);
          }
        : async function* (request: unknown, context: HandlerContext) {
            await authenticate(context);
            yield* fn(request, context) as AsyncIterable<unknown>;
          };
  }
  return wrapped as ServiceImpl<S>;
}
