import { describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { errorBody, httpStatusOf, httpStatusOfError, restErrors } from "../../src/rest/errors.js";
import { BadRequestSchema, ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";

describe("httpStatusOf", () => {
  const table: Array<[Code, number]> = [
    [Code.Canceled, 499],
    [Code.Unknown, 500],
    [Code.InvalidArgument, 400],
    [Code.DeadlineExceeded, 504],
    [Code.NotFound, 404],
    [Code.AlreadyExists, 409],
    [Code.PermissionDenied, 403],
    [Code.ResourceExhausted, 429],
    [Code.FailedPrecondition, 400],
    [Code.Aborted, 409],
    [Code.OutOfRange, 400],
    [Code.Unimplemented, 501],
    [Code.Internal, 500],
    [Code.Unavailable, 503],
    [Code.DataLoss, 500],
    [Code.Unauthenticated, 401],
  ];

  it.each(table)("maps code %i to HTTP %i", (code, status) => {
    expect(httpStatusOf(code)).toBe(status);
  });

  it("has a row above for every Code", () => {
    const codes = Object.values(Code).filter((v): v is Code => typeof v === "number");
    expect(table.map(([code]) => code)).toEqual(codes);
  });

  it("answers 500 for a code outside the enum", () => {
    expect(httpStatusOf(99 as Code)).toBe(500);
  });
});

describe("errorBody", () => {
  it("is google.rpc.Status JSON with the message unprefixed and no details", () => {
    const error = new ConnectError("shelf not found", Code.NotFound);
    expect(error.message).toBe("[not_found] shelf not found");
    expect(errorBody(error)).toEqual({ code: 5, message: "shelf not found", details: [] });
  });

  it("renders a BadRequest detail as an Any with @type and proto field names", () => {
    const error = new ConnectError("invalid shelf", Code.InvalidArgument, undefined, [
      {
        desc: BadRequestSchema,
        value: {
          fieldViolations: [
            { field: "shelf.theme", description: "must not be empty" },
            { field: "shelf.id", description: "must be unique" },
          ],
        },
      },
    ]);
    expect(errorBody(error)).toEqual({
      code: 3,
      message: "invalid shelf",
      details: [
        {
          "@type": "type.googleapis.com/google.rpc.BadRequest",
          field_violations: [
            { field: "shelf.theme", description: "must not be empty" },
            { field: "shelf.id", description: "must be unique" },
          ],
        },
      ],
    });
  });

  it("renders several details in order", () => {
    const error = new ConnectError("slow down", Code.ResourceExhausted, undefined, [
      { desc: ErrorInfoSchema, value: { reason: "RATE_LIMITED", domain: "example.com", metadata: { retry_after: "5" } } },
      { desc: BadRequestSchema, value: {} },
    ]);
    expect(errorBody(error).details).toEqual([
      { "@type": "type.googleapis.com/google.rpc.ErrorInfo", reason: "RATE_LIMITED", domain: "example.com", metadata: { retry_after: "5" } },
      { "@type": "type.googleapis.com/google.rpc.BadRequest" },
    ]);
  });

  it("leaves out a detail received as bytes, whose schema it does not have", () => {
    // As ConnectError.from / a Connect client leaves details parsed from the wire.
    const error = new ConnectError("from upstream", Code.Internal);
    error.details.push({ type: "google.rpc.BadRequest", value: new Uint8Array([10, 0]) });
    expect(errorBody(error)).toEqual({ code: 13, message: "from upstream", details: [] });
  });
});

describe("restErrors", () => {
  it.each([
    ["notFound", restErrors.notFound("/v2/x"), 404, Code.NotFound, "no route for /v2/x"],
    ["methodNotAllowed", restErrors.methodNotAllowed("PUT", "/v1/shelves"), 405, Code.Unimplemented, "method PUT is not allowed for /v1/shelves"],
    ["unsupportedMediaType", restErrors.unsupportedMediaType("text/plain"), 415, Code.InvalidArgument, `unsupported Content-Type "text/plain": send application/json`],
    ["payloadTooLarge", restErrors.payloadTooLarge(1024), 413, Code.ResourceExhausted, "request body is larger than 1024 bytes"],
    ["malformedJson", restErrors.malformedJson("oops"), 400, Code.InvalidArgument, "malformed JSON body: oops"],
    ["invalidBody", restErrors.invalidBody("oops"), 400, Code.InvalidArgument, "invalid request body: oops"],
    ["invalidQuery", restErrors.invalidQuery("q", "oops"), 400, Code.InvalidArgument, `invalid query parameter "q": oops`],
    ["invalidPath", restErrors.invalidPath("oops"), 400, Code.InvalidArgument, "invalid path: oops"],
  ])("%s answers HTTP %i with code %i", (_, error, status, code, message) => {
    expect(httpStatusOfError(error)).toBe(status);
    expect(error.code).toBe(code);
    expect(error.rawMessage).toBe(message);
  });

  it("keeps the status override to the error it was made for", () => {
    restErrors.payloadTooLarge(1);
    expect(httpStatusOfError(new ConnectError("quota", Code.ResourceExhausted))).toBe(429);
  });
});
