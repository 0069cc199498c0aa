import { describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { createdLocations } from "../../src/rest/created-location.js";
import { httpBindingsOf } from "../../src/rest/http-rule.js";
import { buildTestService, type MethodSpec } from "./test-service.js";

/** The Location each binding with one would answer for a Resp of the given fields. */
function locationsFor(methods: readonly MethodSpec[], response: { title?: string; inner?: { id: string } }) {
  const service = buildTestService(methods);
  const bindings = httpBindingsOf(service);
  const resp = service.methods.find((m) => m.output.name === "Resp")!.output;
  const result: Record<string, string | undefined> = {};
  for (const [binding, locationOf] of createdLocations(bindings)) {
    result[binding.method.name] = locationOf(create(resp, response));
  }
  return result;
}

const createThing: MethodSpec = { name: "CreateThing", rule: { pattern: { case: "post", value: "/v1/things" }, body: "*" } };
const getThing: MethodSpec = { name: "GetThing", input: "Resp", rule: { pattern: { case: "get", value: "/v1/things/{title}" } } };

describe("createdLocations", () => {
  it("pairs a POST on a collection with the GET one segment below it that returns the same message", () => {
    expect(locationsFor([createThing, getThing], { title: "t1" })).toEqual({ CreateThing: "/v1/things/t1" });
  });

  it("fills a nested field path and percent-encodes the value", () => {
    const getByInner: MethodSpec = { name: "GetThing", input: "Resp", rule: { pattern: { case: "get", value: "/v1/things/{inner.id}" } } };
    expect(locationsFor([createThing, getByInner], { inner: { id: "a b/c" } })).toEqual({ CreateThing: "/v1/things/a%20b%2Fc" });
  });

  it("pairs a collection under a parent with a multi-segment resource name", () => {
    const create: MethodSpec = { name: "CreateThing", rule: { pattern: { case: "post", value: "/v1/{parent=shelves/*}/things" }, body: "inner" } };
    const get: MethodSpec = { name: "GetThing", input: "Resp", rule: { pattern: { case: "get", value: "/v1/{title=shelves/*/things/*}" } } };
    expect(locationsFor([create, get], { title: "shelves/1/things/2" })).toEqual({ CreateThing: "/v1/shelves/1/things/2" });
  });

  it("gives undefined when the response leaves the name empty", () => {
    expect(locationsFor([createThing, getThing], {})).toEqual({ CreateThing: undefined });
  });

  it.each<[string, MethodSpec[]]>([
    ["a POST with a custom verb", [{ name: "CreateThing", rule: { pattern: { case: "post", value: "/v1/things:batch" }, body: "*" } }, getThing]],
    ["a POST without a body", [{ name: "CreateThing", rule: { pattern: { case: "post", value: "/v1/things" } } }, getThing]],
    ["a PUT", [{ name: "CreateThing", rule: { pattern: { case: "put", value: "/v1/things" }, body: "*" } }, getThing]],
    ["a GET returning another message", [createThing, { name: "GetThing", output: "Req", rule: { pattern: { case: "get", value: "/v1/things/{name}" } } }]],
    ["a GET with a custom verb", [createThing, { name: "GetThing", input: "Resp", rule: { pattern: { case: "get", value: "/v1/things/{title}:peek" } } }]],
    ["a GET two segments below", [createThing, { name: "GetThing", input: "Resp", rule: { pattern: { case: "get", value: "/v1/things/{title}/x" } } }]],
    ["a GET under another collection", [createThing, { name: "GetThing", input: "Resp", rule: { pattern: { case: "get", value: "/v1/others/{title}" } } }]],
    ["a GET whose variable the response does not have", [createThing, { name: "GetThing", rule: { pattern: { case: "get", value: "/v1/things/{name}" } } }]],
  ])("finds no Location for %s", (_, methods) => {
    expect(locationsFor(methods, { title: "t1" })).toEqual({});
  });

  it("finds no Location when the GET's variable is not a string in the response", () => {
    const withVariable = (variable: string) =>
      buildTestService([
        { name: "CreateThing", output: "Req", rule: { pattern: { case: "post", value: "/v1/things" }, body: "*" } },
        { name: "GetThing", output: "Req", rule: { pattern: { case: "get", value: `/v1/things/{${variable}}` } } },
      ]);
    expect(createdLocations(httpBindingsOf(withVariable("name"))).size).toBe(1);
    expect(createdLocations(httpBindingsOf(withVariable("count"))).size).toBe(0);
  });
});
