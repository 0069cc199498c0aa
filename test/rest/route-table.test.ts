import { describe, expect, it } from "vitest";
import { httpBindingsOf, HttpRuleError, type HttpBinding } from "../../src/rest/http-rule.js";
import { RouteTable, type RouteMatch } from "../../src/rest/route-table.js";
import { PathDecodeError } from "../../src/rest/path-template.js";
import { LibraryService } from "../../gen/library/v1/library_pb.js";
import { buildTestService } from "./test-service.js";

/** A match reduced to what a test compares: method name, template and path values. */
function summary(match: RouteMatch) {
  switch (match.kind) {
    case "found":
      return { method: match.binding.method.name, template: match.binding.template.source, values: Object.fromEntries(match.pathValues) };
    case "method-not-allowed":
      return { allow: match.allow };
    case "not-found":
      return "not-found";
  }
}

function constructionError(bindings: readonly HttpBinding[]): unknown {
  try {
    new RouteTable(bindings);
  } catch (err) {
    return err;
  }
  return undefined;
}

describe("RouteTable over the library service", () => {
  const table = new RouteTable(httpBindingsOf(LibraryService));
  const route = (method: string, path: string) => summary(table.match(method, path));

  it("routes a simple path variable", () => {
    expect(route("GET", "/v1/shelves/7")).toEqual({ method: "GetShelf", template: "/v1/shelves/{id}", values: { id: "7" } });
  });

  it("routes the same path by HTTP method", () => {
    const template = "/v1/{name=shelves/*/books/*}";
    expect(route("GET", "/v1/shelves/1/books/2")).toEqual({ method: "GetBook", template, values: { name: "shelves/1/books/2" } });
    expect(route("DELETE", "/v1/shelves/1/books/2")).toEqual({ method: "DeleteBook", template, values: { name: "shelves/1/books/2" } });
    expect(route("PATCH", "/v1/shelves/1/books/2")).toEqual({
      method: "UpdateBook",
      template: "/v1/{book.name=shelves/*/books/*}",
      values: { "book.name": "shelves/1/books/2" },
    });
  });

  it("routes a custom verb before the plain path that would also take the segment", () => {
    expect(route("GET", "/v1/shelves/1/books/2:title")).toEqual({
      method: "GetBookTitle",
      template: "/v1/{name=shelves/*/books/*}:title",
      values: { name: "shelves/1/books/2" },
    });
    expect(route("POST", "/v1/shelves/1/books/2:checkout")).toEqual({
      method: "CheckoutBook",
      template: "/v1/{name=shelves/*/books/*}:checkout",
      values: { name: "shelves/1/books/2" },
    });
    expect(route("GET", "/v1/books:search")).toEqual({ method: "SearchBooks", template: "/v1/books:search", values: {} });
  });

  it("does not take a bare ':verb' segment as the verb", () => {
    expect(route("GET", "/v1/shelves/1/books/:title")).toEqual({
      method: "GetBook",
      template: "/v1/{name=shelves/*/books/*}",
      values: { name: "shelves/1/books/:title" },
    });
  });

  it("routes both paths of additional_bindings to the same method", () => {
    expect(route("GET", "/v1/shelves/3/books")).toEqual({ method: "ListBooks", template: "/v1/{parent=shelves/*}/books", values: { parent: "shelves/3" } });
    expect(route("GET", "/v1/books")).toEqual({ method: "ListBooks", template: "/v1/books", values: {} });
  });

  it("routes '**' over any number of segments", () => {
    expect(route("GET", "/v1/files/a/b/c.txt")).toEqual({ method: "GetFile", template: "/v1/files/{path=**}", values: { path: "a/b/c.txt" } });
  });

  it("answers not-found for a path no binding has", () => {
    expect(route("GET", "/v2/shelves/1")).toBe("not-found");
    expect(route("GET", "/v1/shelves/1/")).toBe("not-found");
    expect(route("GET", "/v1/shelves//books")).toBe("not-found");
    expect(route("GET", "/")).toBe("not-found");
    expect(route("GET", "v1/books")).toBe("not-found");
    expect(route("GET", "/v1/books:nope")).toBe("not-found");
  });

  it("answers method-not-allowed with every method of that path, sorted", () => {
    expect(route("PUT", "/v1/shelves/1/books/2")).toEqual({ allow: ["DELETE", "GET", "PATCH"] });
    expect(route("PUT", "/v1/shelves/1/books")).toEqual({ allow: ["GET", "POST"] });
    expect(route("GET", "/v1/shelves")).toEqual({ allow: ["POST"] });
    expect(route("POST", "/v1/shelves/1")).toEqual({ allow: ["GET"] });
    expect(route("DELETE", "/v1/books:search")).toEqual({ allow: ["GET"] });
  });

  it("is exact about the method name", () => {
    expect(route("get", "/v1/shelves/1")).toEqual({ allow: ["GET"] });
  });

  it("throws PathDecodeError for bad percent-encoding in the binding that matches", () => {
    expect(() => table.match("GET", "/v1/shelves/%zz")).toThrowError(PathDecodeError);
    expect(() => table.match("GET", "/v1/shelves/%zz")).toThrowError(`malformed percent-encoding in path segment "%zz"`);
  });

  it("answers 405, not a decode error, when only another method's binding matches the badly encoded path", () => {
    expect(route("POST", "/v1/shelves/%zz")).toEqual({ allow: ["GET"] });
  });
});

describe("RouteTable specificity", () => {
  // Declared least specific first, so that only the table's ordering can pick the right one.
  const service = buildTestService([
    { name: "GetAny", rule: { pattern: { case: "get", value: "/v1/{name=**}" } } },
    { name: "GetShelf", rule: { pattern: { case: "get", value: "/v1/shelves/{name}" } } },
    { name: "GetSpecial", rule: { pattern: { case: "get", value: "/v1/shelves/special" } } },
    { name: "GetInShelf", rule: { pattern: { case: "get", value: "/v1/{parent=*}/{name=special}" } } },
    { name: "Cancel", rule: { pattern: { case: "get", value: "/v1/{name=shelves/*}:cancel" } } },
  ]);
  const bindings = httpBindingsOf(service);

  it("prefers literals to '*' to '**', and verbs to plain paths, whatever the declaration order", () => {
    for (const order of [bindings, [...bindings].reverse()]) {
      const table = new RouteTable(order);
      const method = (path: string) => {
        const match = table.match("GET", path);
        return match.kind === "found" ? match.binding.method.name : match.kind;
      };
      expect(method("/v1/shelves/special")).toBe("GetSpecial");
      expect(method("/v1/shelves/other")).toBe("GetShelf");
      expect(method("/v1/books/special")).toBe("GetInShelf");
      expect(method("/v1/books/other")).toBe("GetAny");
      expect(method("/v1/a/b/c")).toBe("GetAny");
      expect(method("/v1/shelves/1:cancel")).toBe("Cancel");
      expect(method("/v1/shelves/1:other")).toBe("GetShelf");
    }
  });

  it("lists bindings most specific first", () => {
    expect(new RouteTable(bindings).all().map((b) => b.method.name)).toEqual(["Cancel", "GetSpecial", "GetShelf", "GetInShelf", "GetAny"]);
  });
});

describe("RouteTable construction", () => {
  it("refuses the same bindings given twice, naming both methods", () => {
    const bindings = httpBindingsOf(LibraryService);
    const err = constructionError([...bindings, ...bindings]);
    expect(err).toBeInstanceOf(HttpRuleError);
    expect((err as Error).message).toBe(
      "library.v1.LibraryService.CreateShelf: google.api.http binding POST /v1/shelves conflicts with " +
        "library.v1.LibraryService.CreateShelf (/v1/shelves)",
    );
  });

  it("refuses two methods whose templates differ only in variable names", () => {
    const err = constructionError(
      httpBindingsOf(
        buildTestService([
          { name: "First", rule: { pattern: { case: "get", value: "/v1/{name=things/*}" } } },
          { name: "Second", rule: { pattern: { case: "get", value: "/v1/things/{parent}" } } },
        ]),
      ),
    );
    expect(err).toBeInstanceOf(HttpRuleError);
    expect((err as Error).message).toBe(
      "test.v1.TestService.Second: google.api.http binding GET /v1/things/{parent} conflicts with " +
        "test.v1.TestService.First (/v1/{name=things/*})",
    );
  });

  it("refuses an additional binding that repeats its own method's path", () => {
    const err = constructionError(
      httpBindingsOf(
        buildTestService([
          { name: "Get", rule: { pattern: { case: "get", value: "/v1/{name}" }, additionalBindings: [{ pattern: { case: "get", value: "/v1/{parent}" } }] } },
        ]),
      ),
    );
    expect((err as Error).message).toBe(
      "test.v1.TestService.Get: google.api.http binding GET /v1/{parent} conflicts with test.v1.TestService.Get (/v1/{name})",
    );
  });

  it("accepts the same path with different methods or verbs", () => {
    const bindings = httpBindingsOf(
      buildTestService([
        { name: "Get", rule: { pattern: { case: "get", value: "/v1/{name}" } } },
        { name: "Update", rule: { pattern: { case: "patch", value: "/v1/{name}" }, body: "*" } },
        { name: "Cancel", rule: { pattern: { case: "get", value: "/v1/{name}:cancel" } } },
      ]),
    );
    expect(constructionError(bindings)).toBeUndefined();
  });
});
