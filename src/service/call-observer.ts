import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { clientGone } from "./client-gone.js";

/**
 * Ends one observed call with what its client is answered: undefined for success, else
 * the error. Must return at once and never throw.
 */
export type CallEnd = (error: unknown) => void;

/** Told of every call as it starts (metrics, request logs); returns what to call when it ends. */
export type CallObserver = (method: DescMethod, context: HandlerContext) => CallEnd;

/**
 * Wraps an implementation so that `observe` sees every call of every method, on every
 * protocol (Connect and the REST transcoder call these same objects). Outermost, so that
 * what it sees is what clients get: authentication failures and internal errors included.
 * A unary call ends when it returns or throws; a stream when it is done, throws, or is
 * given up by Connect. A stream that ends quietly because its client went away (its
 * signal aborted, the watch returning without error), or that is stuck writing to a
 * client that reset it, ends as `canceled` with the cause.
 */
export function withCallObserver<S extends DescService>(
  service: S,
  implementation: ServiceImpl<S>,
  observe: CallObserver,
): ServiceImpl<S> {
  const wrapped: Record<string, unknown> = {};
  const methods = implementation as unknown as Record<string, (request: unknown, context: HandlerContext) => unknown>;
  for (const method of service.methods) {
    const fn = methods[method.localName]!.bind(implementation);
    wrapped[method.localName] =
      method.methodKind === "unary" || method.methodKind === "client_streaming"
        ? async (request: unknown, context: HandlerContext) => {
            const end = observe(method, context);
            let result: unknown;
            try {
              result = await fn(request, context);
            } catch (error) {
              end(error);
              throw error;
            }
            end(undefined);
            return result;
          }
        : async function* (request: unknown, context: HandlerContext) {
            const observed = observe(method, context);
            let ended = false;
            const end = (error: unknown) => {
              if (ended) return;
              ended = true;
              context.signal.removeEventListener("abort", onAbort);
              observed(error);
            };
            // A stream waiting to write to a client that reset it is never resumed, so it
            // never reaches `finally`: it ends when its signal aborts.
            const onAbort = () => end(clientGone(context.signal) ?? context.signal.reason);
            context.signal.addEventListener("abort", onAbort);
            let error: unknown;
            try {
              yield* fn(request, context) as AsyncIterable<unknown>;
            } catch (thrown) {
              error = thrown;
              throw thrown;
            } finally {
              if (error === undefined && context.signal.aborted) error = clientGone(context.signal) ?? CLIENT_WENT_AWAY;
              end(error);
            }
          };
  }
  return wrapped as ServiceImpl<S>;
}

const CLIENT_WENT_AWAY = new ConnectError("the client went away", Code.Canceled);
