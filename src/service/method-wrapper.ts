import type { DescMethod, DescService } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";

/** What a wrapper does around each call of one method. */
export interface MethodHooks {
  /** Runs before the method with its context; throwing refuses the call. */
  readonly before?: (context: HandlerContext) => Promise<void>;
  /** Runs after a unary method returned, before its answer is encoded; throwing replaces the answer. */
  readonly after?: (context: HandlerContext) => void;
  /** The error the client sees for one the method (or `before`) threw. */
  readonly mapError?: (error: unknown, context: HandlerContext) => unknown;
}

/**
 * An implementation whose every method runs inside the hooks `hooksFor` gives it — for
 * unary and streaming methods alike (a stream's errors surface while it is iterated).
 * The wrappers built on this (authentication, internal errors) apply to every protocol,
 * since Connect and the REST transcoder call the same wrapped objects.
 */
export function wrapMethods<S extends DescService>(
  service: S,
  implementation: ServiceImpl<S>,
  hooksFor: (method: DescMethod) => MethodHooks,
): ServiceImpl<S> {
  const wrapped: Record<string, unknown> = {};
  const methods = implementation as unknown as Record<string, (request: unknown, context: HandlerContext) => unknown>;
  for (const method of service.methods) {
    const fn = methods[method.localName]!.bind(implementation);
    const { before, after, mapError = (error: unknown) => error } = hooksFor(method);
    wrapped[method.localName] =
      method.methodKind === "unary" || method.methodKind === "client_streaming"
        ? async (request: unknown, context: HandlerContext) => {
            try {
              await before?.(context);
              const result = await fn(request, context);
              after?.(context);
              return result;
            } catch (error) {
              throw mapError(error, context);
            }
          }
        : async function* (request: unknown, context: HandlerContext) {
            try {
              await before?.(context);
              yield* fn(request, context) as AsyncIterable<unknown>;
            } catch (error) {
              throw mapError(error, context);
            }
          };
  }
  return wrapped as ServiceImpl<S>;
}
