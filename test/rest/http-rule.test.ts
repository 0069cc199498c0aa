import { describe, expect, it } from "vitest";
import { httpBindingsOf, HttpRuleError } from "../../src/rest/http-rule.js";
import { LibraryService } from "../../gen/library/v1/library_pb.js";
import { buildTestService, type MethodSpec, type RuleInit } from "./test-service.js";

const get = (path: string): RuleInit["pattern"] => ({ case: "get", value: path });
const post = (path: string): RuleInit["pattern"] => ({ case: "post", value: path });

/** The error httpBindingsOf throws for a service of the given methods. */
function ruleErrorOf(methods: readonly MethodSpec[]): unknown {
  try {
    httpBindingsOf(buildTestService(methods));
  } catch (err) {
    return err;
  }
  return undefined;
}

describe("httpBindingsOf on the library test proto", () => {
  const bindings = httpBindingsOf(LibraryService);
  const summary = bindings.map((b) => `${b.method.name} ${b.httpMethod} ${b.template.source}`);

  it("reads every rule and additional binding, and skips methods without the option", () => {
    expect(summary).toEqual([
      "CreateShelf POST /v1/shelves",
      "GetShelf GET /v1/shelves/{id}",
      "CreateBook POST /v1/{parent=shelves/*}/books",
      "GetBook GET /v1/{name=shelves/*/books/*}",
      "UpdateBook PATCH /v1/{book.name=shelves/*/books/*}",
      "DeleteBook DELETE /v1/{name=shelves/*/books/*}",
      "ListBooks GET /v1/{parent=shelves/*}/books",
      "ListBooks GET /v1/books",
      "SearchBooks GET /v1/books:search",
      "CheckoutBook POST /v1/{name=shelves/*/books/*}:checkout",
      "GetBookTitle GET /v1/{name=shelves/*/books/*}:title",
      "GetFile GET /v1/files/{path=**}",
      "WatchShelf GET /v1/shelves/{shelf_id}/events:watch",
      "FollowBooks POST /v1/books:follow",
    ]);
  });

  it("reads the event_stream option of a server stream into its fields", () => {
    const watchShelf = bindings.find((b) => b.method.name === "WatchShelf")!;
    expect(watchShelf.streaming).toBe(true);
    expect([watchShelf.eventStream?.id?.name, watchShelf.eventStream?.type?.name, watchShelf.eventStream?.resume?.name]).toEqual([
      "sequence",
      "kind",
      "after_sequence",
    ]);
    const followBooks = bindings.find((b) => b.method.name === "FollowBooks")!;
    expect([followBooks.streaming, followBooks.eventStream, followBooks.body.kind]).toEqual([true, undefined, "whole"]);
  });

  it("maps body '' / '*' / 'field' and response_body", () => {
    const byName = (name: string) => bindings.find((b) => b.method.name === name)!;
    expect(byName("GetShelf").body).toEqual({ kind: "none" });
    expect(byName("CheckoutBook").body).toEqual({ kind: "whole" });
    const createShelf = byName("CreateShelf").body;
    expect(createShelf.kind === "field" && createShelf.field.name).toBe("shelf");
    expect(byName("GetBookTitle").responseBody?.name).toBe("title");
    expect(byName("GetBook").responseBody).toBeUndefined();
  });

  it("resolves a nested path variable to its field chain", () => {
    const update = bindings.find((b) => b.method.name === "UpdateBook")!;
    expect([...update.pathFields].map(([path, chain]) => [path, chain.map((f) => f.name)])).toEqual([
      ["book.name", ["book", "name"]],
    ]);
  });
});

describe("httpBindingsOf on annotations it cannot serve", () => {
  it("accepts a custom pattern and upper-cases its kind", () => {
    const [binding] = httpBindingsOf(
      buildTestService([{ name: "Head", rule: { pattern: { case: "custom", value: { kind: "head", path: "/v1/{name}" } } } }]),
    );
    expect(binding!.httpMethod).toBe("HEAD");
  });

  const cases: Array<[string, MethodSpec, string]> = [
    ["a body on GET", { name: "Get", rule: { pattern: get("/v1/{name}"), body: "*" } }, "GET cannot have a body"],
    ["a body on DELETE", { name: "Delete", rule: { pattern: { case: "delete", value: "/v1/{name}" }, body: "inner" } }, "DELETE cannot have a body"],
    ["a body naming no field", { name: "Create", rule: { pattern: post("/v1/things"), body: "nope" } }, `body "nope" is not a field of test.v1.Req`],
    ["a body naming a nested field", { name: "Create", rule: { pattern: post("/v1/things"), body: "inner.id" } }, `body "inner.id" is not a field of test.v1.Req`],
    ["a response_body naming no field", { name: "Get", rule: { pattern: get("/v1/x"), responseBody: "nope" } }, `response_body "nope" is not a field of test.v1.Resp`],
    ["a path variable naming no field", { name: "Get", rule: { pattern: get("/v1/{nope}") } }, `path variable "nope": test.v1.Req has no field "nope"`],
    ["a path variable by JSON-style name", { name: "Get", rule: { pattern: get("/v1/{Name}") } }, `path variable "Name": test.v1.Req has no field "Name"`],
    ["a path variable naming a message", { name: "Get", rule: { pattern: get("/v1/{inner}") } }, `path variable "inner" must name a singular scalar or enum field`],
    ["a path variable naming a repeated field", { name: "Get", rule: { pattern: get("/v1/{tags}") } }, `path variable "tags" must name a singular scalar or enum field`],
    ["a path variable through a scalar", { name: "Get", rule: { pattern: get("/v1/{name.x}") } }, `path variable "name.x": "name" is not a singular message field, so it has no field "x"`],
    ["a path variable naming no nested field", { name: "Get", rule: { pattern: get("/v1/{inner.nope}") } }, `path variable "inner.nope": test.v1.Inner has no field "nope"`],
    ["a template syntax error", { name: "Get", rule: { pattern: get("/v1/{name") } }, `syntax error in path template "/v1/{name" at column 10: expected '}'`],
    ["a custom kind that is not a method name", { name: "Get", rule: { pattern: { case: "custom", value: { kind: "GE T", path: "/v1/x" } } } }, `custom kind "GE T" is not an HTTP method name`],
    ["a client-streaming method", { name: "Upload", clientStreaming: true, rule: { pattern: post("/v1/x"), body: "*" } }, "is only supported on unary and server-streaming methods"],
    ["a bidirectional method", { name: "Chat", clientStreaming: true, serverStreaming: true, rule: { pattern: post("/v1/x"), body: "*" } }, "is only supported on unary and server-streaming methods"],
    ["nested additional_bindings", { name: "Get", rule: { pattern: get("/v1/x"), additionalBindings: [{ pattern: get("/v1/y"), additionalBindings: [{ pattern: get("/v1/z") }] }] } }, "additional_bindings cannot nest additional_bindings"],
    ["an additional binding without a pattern", { name: "Get", rule: { pattern: get("/v1/x"), additionalBindings: [{ body: "*" }] } }, "binding has no pattern"],
    ["a rule with only additional_bindings", { name: "Get", rule: { additionalBindings: [{ pattern: get("/v1/x") }] } }, "binding has no pattern"],
    ["an additional binding with a bad body", { name: "Get", rule: { pattern: get("/v1/x"), additionalBindings: [{ pattern: get("/v1/y"), body: "*" }] } }, "GET cannot have a body"],
  ];

  const watch = (eventStream: NonNullable<MethodSpec["eventStream"]>): MethodSpec => ({
    name: "Watch",
    serverStreaming: true,
    rule: { pattern: get("/v1/{name}:watch") },
    eventStream,
  });
  const eventStreamCases: Array<[string, MethodSpec, string]> = [
    ["an id_field naming no field", watch({ idField: "nope" }), `id_field "nope" is not a field of test.v1.Resp`],
    ["an id_field naming a message", watch({ idField: "inner" }), `id_field "inner" must be a singular integer or string field`],
    ["a type_field naming a message", watch({ typeField: "inner" }), `type_field "inner" must be a singular enum or string field`],
    ["a resume_field naming no request field", watch({ resumeField: "title" }), `resume_field "title" is not a field of test.v1.Req`],
    ["a resume_field naming a repeated field", watch({ resumeField: "tags" }), `resume_field "tags" must be a singular integer or string field`],
    ["the option on a unary method", { name: "Get", rule: { pattern: get("/v1/{name}") }, eventStream: { idField: "title" } }, "is only for server-streaming methods"],
  ];

  it.each(eventStreamCases)("refuses %s in (sessions.http.v1.event_stream), naming the method", (_, method, problem) => {
    const err = ruleErrorOf([method]);
    expect(err).toBeInstanceOf(HttpRuleError);
    expect((err as Error).message).toBe(`test.v1.TestService.${method.name}: (sessions.http.v1.event_stream) ${problem}`);
  });

  it.each(cases)("refuses %s, naming the method", (_, method, problem) => {
    const err = ruleErrorOf([{ name: "Fine", rule: { pattern: get("/v1/fine") } }, method]);
    expect(err).toBeInstanceOf(HttpRuleError);
    expect((err as Error).message).toBe(`test.v1.TestService.${method.name}: google.api.http ${problem}`);
  });

  it("binds a server-streaming method as a stream", () => {
    const [binding] = httpBindingsOf(buildTestService([{ name: "Watch", serverStreaming: true, rule: { pattern: get("/v1/{name}:watch") } }]));
    expect(binding!.streaming).toBe(true);
    expect(binding!.eventStream).toBeUndefined();
  });

  it("gives no binding to a method without the option, streaming or not", () => {
    expect(httpBindingsOf(buildTestService([{ name: "Watch", serverStreaming: true }, { name: "Ping" }]))).toEqual([]);
  });
});
