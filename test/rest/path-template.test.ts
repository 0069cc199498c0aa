import { describe, expect, it } from "vitest";
import {
  expandPathTemplate,
  matchPathTemplate,
  parsePathTemplate,
  PathDecodeError,
  PathTemplateSyntaxError,
} from "../../src/rest/path-template.js";

/** Splits a request path as the route table does: drop the leading "/", split on "/". */
const partsOf = (path: string) => path.slice(1).split("/");
const match = (template: string, path: string) => matchPathTemplate(parsePathTemplate(template), partsOf(path));

describe("parsePathTemplate", () => {
  it("parses literal segments", () => {
    expect(parsePathTemplate("/v1/shelves")).toEqual({
      source: "/v1/shelves",
      segments: [
        { kind: "literal", value: "v1" },
        { kind: "literal", value: "shelves" },
      ],
      variables: [],
      verb: undefined,
    });
  });

  it("parses literals with unreserved, sub-delim and percent-encoded characters", () => {
    expect(parsePathTemplate("/a-b_c.d~e/f%20g/h!$&'()+,;@").segments).toEqual([
      { kind: "literal", value: "a-b_c.d~e" },
      { kind: "literal", value: "f%20g" },
      { kind: "literal", value: "h!$&'()+,;@" },
    ]);
  });

  it("parses '*' and '**' outside variables", () => {
    expect(parsePathTemplate("/v1/*/x/**").segments).toEqual([
      { kind: "literal", value: "v1" },
      { kind: "wildcard" },
      { kind: "literal", value: "x" },
      { kind: "deep-wildcard" },
    ]);
  });

  it("parses {var} as a variable over one '*' segment", () => {
    const template = parsePathTemplate("/v1/shelves/{id}");
    expect(template.segments).toEqual([
      { kind: "literal", value: "v1" },
      { kind: "literal", value: "shelves" },
      { kind: "wildcard" },
    ]);
    expect(template.variables).toEqual([{ fieldPath: ["id"], start: 2, end: 3 }]);
  });

  it("parses a dotted field path {a.b.c}", () => {
    expect(parsePathTemplate("/v1/{a.b.c}").variables).toEqual([{ fieldPath: ["a", "b", "c"], start: 1, end: 2 }]);
  });

  it("parses {name=shelves/*/books/*} as a variable over four segments", () => {
    const template = parsePathTemplate("/v1/{name=shelves/*/books/*}");
    expect(template.segments).toEqual([
      { kind: "literal", value: "v1" },
      { kind: "literal", value: "shelves" },
      { kind: "wildcard" },
      { kind: "literal", value: "books" },
      { kind: "wildcard" },
    ]);
    expect(template.variables).toEqual([{ fieldPath: ["name"], start: 1, end: 5 }]);
  });

  it("parses {path=**} as an open-ended variable", () => {
    const template = parsePathTemplate("/v1/files/{path=**}");
    expect(template.segments).toEqual([
      { kind: "literal", value: "v1" },
      { kind: "literal", value: "files" },
      { kind: "deep-wildcard" },
    ]);
    expect(template.variables).toEqual([{ fieldPath: ["path"], start: 2, end: undefined }]);
  });

  it("parses several variables in order", () => {
    expect(parsePathTemplate("/v1/{parent=shelves/*}/books/{book_id}").variables).toEqual([
      { fieldPath: ["parent"], start: 1, end: 3 },
      { fieldPath: ["book_id"], start: 4, end: 5 },
    ]);
  });

  it("parses a custom verb after the last segment", () => {
    const template = parsePathTemplate("/v1/{name=shelves/*/books/*}:cancel");
    expect(template.verb).toBe("cancel");
    expect(template.segments).toHaveLength(5);
    expect(parsePathTemplate("/v1/books:search")).toMatchObject({
      segments: [
        { kind: "literal", value: "v1" },
        { kind: "literal", value: "books" },
      ],
      verb: "search",
    });
  });

  it("accepts a verb after a trailing '**'", () => {
    expect(parsePathTemplate("/v1/{path=**}:stat")).toMatchObject({ verb: "stat", variables: [{ fieldPath: ["path"], end: undefined }] });
  });

  const syntaxErrors: Array<[string, string]> = [
    ["", `syntax error in path template "" at column 1: expected '/'`],
    ["v1/shelves", `syntax error in path template "v1/shelves" at column 1: expected '/'`],
    ["/", `syntax error in path template "/" at column 2: expected a literal, '*', '**' or '{'`],
    ["/v1/", `syntax error in path template "/v1/" at column 5: expected a literal, '*', '**' or '{'`],
    ["/v1//shelves", `syntax error in path template "/v1//shelves" at column 5: expected a literal, '*', '**' or '{'`],
    ["/v1/{", `syntax error in path template "/v1/{" at column 6: expected a field name`],
    ["/v1/{id", `syntax error in path template "/v1/{id" at column 8: expected '}'`],
    ["/v1/{name=shelves/*", `syntax error in path template "/v1/{name=shelves/*" at column 20: expected '}'`],
    ["/v1/{name=}", `syntax error in path template "/v1/{name=}" at column 11: expected a literal, '*', '**' or '{'`],
    ["/v1/{}", `syntax error in path template "/v1/{}" at column 6: expected a field name`],
    ["/v1/{1id}", `syntax error in path template "/v1/{1id}" at column 6: expected a field name`],
    ["/v1/{a.}", `syntax error in path template "/v1/{a.}" at column 8: expected a field name`],
    ["/v1/{a={b}}", `syntax error in path template "/v1/{a={b}}" at column 8: variables cannot be nested`],
    ["/v1/**/x", `syntax error in path template "/v1/**/x" at column 5: '**' must be the last segment`],
    ["/v1/{path=**}/x", `syntax error in path template "/v1/{path=**}/x" at column 11: '**' must be the last segment`],
    ["/v1/{a}/{a}", `syntax error in path template "/v1/{a}/{a}" at column 9: variable "a" appears twice`],
    ["/va/{a}/{ab}/{a}", `syntax error in path template "/va/{a}/{ab}/{a}" at column 14: variable "a" appears twice`],
    ["/v1/{a.b}/x/{a.b=*}", `syntax error in path template "/v1/{a.b}/x/{a.b=*}" at column 13: variable "a.b" appears twice`],
    ["/v1/x:", `syntax error in path template "/v1/x:" at column 7: expected a verb after ':'`],
    ["/v1/x:a:b", `syntax error in path template "/v1/x:a:b" at column 8: expected '/', ':' or the end of the template`],
    ["/v1/{id}x", `syntax error in path template "/v1/{id}x" at column 9: expected '/', ':' or the end of the template`],
    ["/v1/***", `syntax error in path template "/v1/***" at column 7: expected '/', ':' or the end of the template`],
    ["/v1/x?y=1", `syntax error in path template "/v1/x?y=1" at column 6: expected '/', ':' or the end of the template`],
  ];

  it.each(syntaxErrors)("rejects %j with an exact message", (source, message) => {
    let thrown: unknown;
    try {
      parsePathTemplate(source);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(PathTemplateSyntaxError);
    expect((thrown as Error).message).toBe(message);
  });
});

describe("matchPathTemplate", () => {
  it("matches literal paths exactly and nothing else", () => {
    expect(match("/v1/shelves", "/v1/shelves")).toEqual(new Map());
    expect(match("/v1/shelves", "/v1/shelve")).toBeUndefined();
    expect(match("/v1/shelves", "/v1/shelves/1")).toBeUndefined();
    expect(match("/v1/shelves", "/v1")).toBeUndefined();
    expect(match("/v1/shelves", "/v1/shelves/")).toBeUndefined();
    expect(match("/v1/shelves", "/V1/shelves")).toBeUndefined();
  });

  it("binds a single-segment variable", () => {
    expect(match("/v1/shelves/{id}", "/v1/shelves/42")).toEqual(new Map([["id", "42"]]));
    expect(match("/v1/shelves/{id}", "/v1/shelves/42/books")).toBeUndefined();
  });

  it("binds a dotted variable under its dotted path", () => {
    expect(match("/v1/{book.name=shelves/*/books/*}", "/v1/shelves/1/books/2")).toEqual(
      new Map([["book.name", "shelves/1/books/2"]]),
    );
  });

  it("binds a multi-segment variable only when its literals match", () => {
    expect(match("/v1/{name=shelves/*/books/*}", "/v1/shelves/1/books/2")).toEqual(new Map([["name", "shelves/1/books/2"]]));
    expect(match("/v1/{name=shelves/*/books/*}", "/v1/shelves/1/authors/2")).toBeUndefined();
    expect(match("/v1/{name=shelves/*/books/*}", "/v1/shelves/1/books")).toBeUndefined();
  });

  it("never lets '*' or {var} match an empty segment", () => {
    expect(match("/v1/shelves/{id}", "/v1/shelves/")).toBeUndefined();
    expect(match("/v1/*/books", "/v1//books")).toBeUndefined();
    expect(match("/v1/{name=shelves/*/books/*}", "/v1/shelves//books/2")).toBeUndefined();
  });

  it("lets '**' take any number of segments, including none", () => {
    expect(match("/v1/files/{path=**}", "/v1/files/a")).toEqual(new Map([["path", "a"]]));
    expect(match("/v1/files/{path=**}", "/v1/files/a/b/c")).toEqual(new Map([["path", "a/b/c"]]));
    expect(match("/v1/files/{path=**}", "/v1/files")).toEqual(new Map([["path", ""]]));
    expect(match("/v1/files/{path=**}", "/v1")).toBeUndefined();
    expect(match("/v1/files/{path=**}", "/v1/other/a")).toBeUndefined();
  });

  it("fully decodes a single-segment variable, %2F included", () => {
    expect(match("/v1/shelves/{id}", "/v1/shelves/a%20b%2Fc%3A%25")).toEqual(new Map([["id", "a b/c:%"]]));
    expect(match("/v1/shelves/{id=*}", "/v1/shelves/caf%C3%A9")).toEqual(new Map([["id", "café"]]));
  });

  it("decodes a multi-segment variable but keeps %2F and %2f encoded", () => {
    expect(match("/v1/{name=shelves/*/books/*}", "/v1/shelves/a%2Fb/books/c%20d%2fe")).toEqual(
      new Map([["name", "shelves/a%2Fb/books/c d%2Fe"]]),
    );
  });

  it("keeps %2F encoded in a '**' variable even when it captures one segment", () => {
    expect(match("/v1/files/{path=**}", "/v1/files/a%2Fb")).toEqual(new Map([["path", "a%2Fb"]]));
    expect(match("/v1/files/{path=**}", "/v1/files/a%2Fb/c%20d")).toEqual(new Map([["path", "a%2Fb/c d"]]));
  });

  it("compares literals without decoding them", () => {
    expect(match("/v1/shelves", "/v1/shelve%73")).toBeUndefined();
  });

  it.each([
    ["/v1/shelves/{id}", "/v1/shelves/%zz", "%zz"],
    ["/v1/shelves/{id}", "/v1/shelves/abc%", "abc%"],
    ["/v1/shelves/{id}", "/v1/shelves/%C3", "%C3"],
    ["/v1/files/{path=**}", "/v1/files/ok/%E0%A4%A", "%E0%A4%A"],
  ])("raises PathDecodeError for %s on %s", (template, path, segment) => {
    let thrown: unknown;
    try {
      match(template, path);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(PathDecodeError);
    expect((thrown as PathDecodeError).segment).toBe(segment);
    expect((thrown as PathDecodeError).message).toBe(`malformed percent-encoding in path segment "${segment}"`);
  });

  it("does not decode a path that does not match, so a bad escape elsewhere is not an error", () => {
    expect(match("/v1/shelves/{id}", "/v1/other/%zz")).toBeUndefined();
  });
});

describe("expandPathTemplate", () => {
  const expand = (source: string, values: Record<string, string>) =>
    expandPathTemplate(parsePathTemplate(source), (fieldPath) => values[fieldPath.join(".")]);

  it("fills variables between literals and appends the verb", () => {
    expect(expand("/v1/shelves/{id}", { id: "42" })).toBe("/v1/shelves/42");
    expect(expand("/v1/{parent=shelves/*}/books/{book_id}:publish", { parent: "shelves/1", book_id: "b" })).toBe(
      "/v1/shelves/1/books/b:publish",
    );
    expect(expand("/v1/{book.name=shelves/*/books/*}", { "book.name": "shelves/1/books/2" })).toBe("/v1/shelves/1/books/2");
  });

  it("encodes everything but [-_.~0-9a-zA-Z] in a single-segment variable, '/' included", () => {
    expect(expand("/v1/shelves/{id}", { id: "a b/c?d#e%f" })).toBe("/v1/shelves/a%20b%2Fc%3Fd%23e%25f");
    expect(expand("/v1/shelves/{id}", { id: "it's (a)*!" })).toBe("/v1/shelves/it%27s%20%28a%29%2A%21");
    expect(expand("/v1/shelves/{id}", { id: "-_.~Az09" })).toBe("/v1/shelves/-_.~Az09");
    expect(expand("/v1/shelves/{id}", { id: "café" })).toBe("/v1/shelves/caf%C3%A9");
  });

  it("keeps '/' in a multi-segment variable and encodes each segment", () => {
    expect(expand("/v1/{name=shelves/*/books/*}", { name: "shelves/a b/books/c:d" })).toBe("/v1/shelves/a%20b/books/c%3Ad");
    expect(expand("/v1/files/{path=**}", { path: "a/b c/d" })).toBe("/v1/files/a/b%20c/d");
  });

  it("round-trips through matchPathTemplate", () => {
    const template = parsePathTemplate("/v1/shelves/{id}");
    const path = expandPathTemplate(template, () => "x/y z")!;
    expect(matchPathTemplate(template, partsOf(path))).toEqual(new Map([["id", "x/y z"]]));
  });

  it("gives undefined when a variable is missing or empty", () => {
    expect(expand("/v1/shelves/{id}", {})).toBeUndefined();
    expect(expand("/v1/shelves/{id}", { id: "" })).toBeUndefined();
  });

  it("refuses a template with a wildcard outside any variable", () => {
    expect(() => expand("/v1/*/{id}", { id: "1" })).toThrowError("a wildcard outside a variable cannot be expanded");
  });
});
