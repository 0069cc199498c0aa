import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { StoreUnavailableError } from "../store/store.js";
import { wrapMethods } from "./method-wrapper.js";
import { clientGone } from "./client-gone.js";

/**
 * Told of the real error behind every `internal` or `unavailable` answer the wrapper
 * makes, with that answer and the call's context (its request id, for the log).
 */
export type InternalErrorReporter = (error: unknown, method: DescMethod, answered: ConnectError, context: HandlerContext) => void;

/**
 * Wraps an implementation so that any error that is not a ConnectError reaches clients of
 * every protocol with a clean message, never the SQL, file paths or stack behind it:
 * storage that is unavailable for now (a full disk, a read-only file, I/O errors, a lock
 * held too long) as `unavailable` with the store's own clean message, so that clients
 * retry; anything else (a bug, a damaged file) as a bare `internal` error. The real error
 * goes to `report` (the server log). A failure of a call whose client has gone away (a
 * body read cut short) is `canceled` with its cause, and no report: it is no fault here.
 */
export function withInternalErrors<S extends DescService>(
  service: S,
  implementation: ServiceImpl<S>,
  report: InternalErrorReporter,
): ServiceImpl<S> {
  return wrapMethods(service, implementation, (method) => ({
    mapError: (error, context) => {
      if (error instanceof ConnectError) return error;
      const gone = clientGone(context.signal);
      if (gone) return gone;
      const answered =
        error instanceof StoreUnavailableError
          ? new ConnectError(error.message, Code.Unavailable, undefined, undefined, error)
          : new ConnectError("internal error", Code.Internal, undefined, undefined, error);
      report(error, method, answered, context);
      return answered;
    },
  }));
}
