import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";

/** Told of the real error behind every "internal error" a client sees. */
export type InternalErrorReporter = (error: unknown, method: DescMethod) => void;

/**
 * Wraps an implementation so that any error that is not a ConnectError — a failing
 * store, a bug — reaches clients of every protocol as a bare `internal` error: never the
 * SQL, file paths or stack behind it. Those go to `report` (the server log).
 */
export function withInternalErrors<S extends DescService>(
  service: S,
  implementation: ServiceImpl<S>,
  report: InternalErrorReporter,
): ServiceImpl<S> {
  const wrapped: Record<string, unknown> = {};
  const methods = implementation as unknown as Record<string, (...args: unknown[]) => unknown>;
  for (const method of service.methods) {
    const fn = methods[method.localName]!.bind(implementation);
    const sanitize = (error: unknown): ConnectError => {
      if (error instanceof ConnectError) return error;
      report(error, method);
      return new ConnectError("internal error", Code.Internal);
    };
    switch (method.methodKind) {
      case "unary":
      case "client_streaming":
        wrapped[method.localName] = async (...args: unknown[]) => {
          try {
            return await fn(...args);
          } catch (error) {
            throw sanitize(error);
          }
        };
        break;
      case "server_streaming":
      case "bidi_streaming":
        wrapped[method.localName] = async function* (...args: unknown[]) {
          try {
            yield* fn(...args) as AsyncIterable<unknown>;
          } catch (error) {
            throw sanitize(error);
          }
        };
        break;
    }
  }
  return wrapped as ServiceImpl<S>;
}
