import { Code, ConnectError } from "@connectrpc/connect";
import { create, toJson, type JsonObject } from "@bufbuild/protobuf";

/**
 * HTTP status of each code for REST, as google.rpc.Code documents the mapping (and
 * grpc-gateway and vanguard-go serve it).
 */
const HTTP_STATUS: Record<Code, number> = {
  [Code.Canceled]: 499, // client closed request
  [Code.Unknown]: 500,
  [Code.InvalidArgument]: 400,
  [Code.DeadlineExceeded]: 504,
  [Code.NotFound]: 404,
  [Code.AlreadyExists]: 409,
  [Code.PermissionDenied]: 403,
  [Code.ResourceExhausted]: 429,
  [Code.FailedPrecondition]: 400, // not 412: that is for HTTP preconditions (If-Match)
  [Code.Aborted]: 409,
  [Code.OutOfRange]: 400,
  [Code.Unimplemented]: 501,
  [Code.Internal]: 500,
  [Code.Unavailable]: 503,
  [Code.DataLoss]: 500,
  [Code.Unauthenticated]: 401,
};

export function httpStatusOf(code: Code): number {
  return HTTP_STATUS[code] ?? 500;
}

/**
 * The JSON form of google.rpc.Status for an error: numeric code, the message without
 * Connect's "[code]" prefix, and each detail as an Any with its "@type".
 */
export function errorBody(error: ConnectError): JsonObject {
  const details: JsonObject[] = [];
  for (const detail of error.details) {
    if ("desc" in detail) {
      const json = toJson(detail.desc, create(detail.desc, detail.value), { useProtoFieldName: true }) as JsonObject;
      details.push({ "@type": `type.googleapis.com/${detail.desc.typeName}`, ...json });
    }
  }
  return { code: error.code, message: error.rawMessage, details };
}

/**
 * Errors of the HTTP edge whose status is not the code's usual one: 405, 413 and 415 say
 * more to an HTTP client than the 501, 429 and 400 of their codes. (Kept beside the
 * error rather than in a subclass: ConnectError's `instanceof` accepts any ConnectError.)
 */
const statusOverrides = new WeakMap<ConnectError, number>();

function withStatus(error: ConnectError, httpStatus: number): ConnectError {
  statusOverrides.set(error, httpStatus);
  return error;
}

/** The HTTP status to answer an error with. */
export function httpStatusOfError(error: ConnectError): number {
  return statusOverrides.get(error) ?? httpStatusOf(error.code);
}

/** The errors the HTTP edge itself raises, before any method runs. */
export const restErrors = {
  notFound: (path: string) => new ConnectError(`no route for ${path}`, Code.NotFound),
  methodNotAllowed: (method: string, path: string) =>
    withStatus(new ConnectError(`method ${method} is not allowed for ${path}`, Code.Unimplemented), 405),
  unsupportedMediaType: (contentType: string) =>
    withStatus(new ConnectError(`unsupported Content-Type "${contentType}": send application/json`, Code.InvalidArgument), 415),
  unsupportedContentEncoding: (encoding: string) =>
    withStatus(
      new ConnectError(
        `unsupported Content-Encoding "${encoding}": send the body uncompressed (Content-Encoding identity or none)`,
        Code.InvalidArgument,
      ),
      415,
    ),
  payloadTooLarge: (limit: number) =>
    withStatus(new ConnectError(`request body is larger than ${limit} bytes`, Code.ResourceExhausted), 413),
  malformedJson: (reason: string) => new ConnectError(`malformed JSON body: ${reason}`, Code.InvalidArgument),
  invalidBody: (reason: string) => new ConnectError(`invalid request body: ${reason}`, Code.InvalidArgument),
  invalidQuery: (name: string, reason: string) =>
    new ConnectError(`invalid query parameter "${name}": ${reason}`, Code.InvalidArgument),
  notAcceptable: (accept: string) =>
    withStatus(
      new ConnectError(
        `unacceptable Accept "${accept}": this method streams as text/event-stream or application/x-ndjson`,
        Code.InvalidArgument,
      ),
      406,
    ),
  invalidHeader: (name: string, reason: string) => new ConnectError(`invalid ${name} header: ${reason}`, Code.InvalidArgument),
  invalidPath: (reason: string) => new ConnectError(`invalid path: ${reason}`, Code.InvalidArgument),
};
