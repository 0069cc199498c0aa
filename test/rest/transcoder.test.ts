import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { create, toJson, type DescMessage, type JsonValue, type Message } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { createRestHandler, type RestService } from "../../src/rest/transcode.js";
import type { HttpBinding } from "../../src/rest/http-rule.js";
import { BookSchema, LibraryService } from "../../gen/library/v1/library_pb.js";
import { BadRequestSchema } from "../../gen/google/rpc/error_details_pb.js";
import { buildTestService } from "./test-service.js";

const READ_MAX_BYTES = 1024;

type Library = ServiceImpl<typeof LibraryService>;

/** The last request each method received, as proto3 JSON with proto names. */
const received = new Map<string, JsonValue>();
/** Per-test replacements for the echoing methods below. */
let overrides: Partial<Library> = {};
const internalErrors: Array<{ error: unknown; binding: HttpBinding | undefined }> = [];

function record(name: string, schema: DescMessage, request: Message): void {
  received.set(name, toJson(schema, request, { useProtoFieldName: true }));
}

/**
 * Answers with what it was given, so each assertion proves where a field came from.
 * Every method records its request under its name in `received`.
 */
const library: Library = {
  createShelf: (req, ctx) =>
    overrides.createShelf?.(req, ctx) ?? { id: req.shelf?.id || "shelf-1", theme: req.shelf?.theme ?? "" },
  getShelf: (req, ctx) => overrides.getShelf?.(req, ctx) ?? { id: req.id, theme: "t" },
  createBook: (req) => {
    const book = req.book ?? create(BookSchema);
    book.name = `${req.parent}/books/${req.bookId || "generated"}`;
    return book;
  },
  getBook: (req) => ({ name: req.name }),
  updateBook: (req) => req.book ?? {},
  deleteBook: () => ({}),
  listBooks: (req) => ({ books: req.pageSize > 0 ? [{ name: `${req.parent || "any"}/books/1`, pages: BigInt(req.pageSize) }] : [] }),
  searchBooks: (req) => ({ request: req }),
  checkoutBook: (req) => ({ name: req.name, author: req.borrower }),
  getBookTitle: (req) => ({ name: req.name, title: `title of ${req.name}` }),
  getFile: (req) => ({ path: req.path }),
  // The streams have their own tests (event-stream.test.ts).
  async *watchShelf() {},
  async *followBooks() {},
  ping: () => ({}),
};

/** Wraps each method so that it records its request first. */
function recording(impl: Library): Library {
  const wrapped: Record<string, unknown> = {};
  for (const method of LibraryService.methods) {
    const fn = impl[method.localName as keyof Library] as (req: Message, ctx: HandlerContext) => unknown;
    wrapped[method.localName] = (req: Message, ctx: HandlerContext) => {
      record(method.name, method.input, req);
      return fn(req, ctx);
    };
  }
  return wrapped as Library;
}

let server: http.Server;
let base: string;

beforeAll(async () => {
  const services: RestService[] = [{ service: LibraryService, implementation: recording(library) }];
  const handler = createRestHandler(services, {
    readMaxBytes: READ_MAX_BYTES,
    onInternalError: (error, binding) => internalErrors.push({ error, binding }),
  });
  server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

beforeEach(() => {
  received.clear();
  overrides = {};
  internalErrors.length = 0;
});

interface Reply {
  status: number;
  headers: Headers;
  text: string;
  json: any;
}

/** fetch with a JSON body (an object is stringified, a string or bytes sent as they are). */
async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  const raw = body === undefined || typeof body === "string" || body instanceof Uint8Array ? body : JSON.stringify(body);
  const response = await fetch(base + path, {
    method,
    headers: raw !== undefined && !(raw instanceof Uint8Array) ? { "content-type": "application/json", ...headers } : headers,
    body: raw as RequestInit["body"],
  });
  const text = await response.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers, text, json };
}

/** A request through node:http, for what fetch will not send (a false Content-Length, chunks). */
function rawRequest(
  options: http.RequestOptions,
  send: (req: http.ClientRequest) => void,
): Promise<{ status: number; headers: http.IncomingHttpHeaders; json: any }> {
  return new Promise((resolve, reject) => {
    const url = new URL(base);
    const req = http.request({ host: url.hostname, port: url.port, agent: false, ...options }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => {
        resolve({ status: res.statusCode!, headers: res.headers, json: JSON.parse(Buffer.concat(chunks).toString()) });
        req.destroy();
      });
    });
    // The server may close while the client is still writing a refused body.
    req.on("error", (err) => (req.writableEnded ? undefined : reject(err)));
    send(req);
  });
}

const invalid = (message: string) => ({ code: 3, message, details: [] });

describe("path variables", () => {
  it("binds a simple variable", async () => {
    const reply = await call("GET", "/v1/shelves/7");
    expect(reply.status).toBe(200);
    expect(reply.json).toEqual({ id: "7", theme: "t" });
    expect(received.get("GetShelf")).toEqual({ id: "7" });
  });

  it("fully decodes a single-segment variable", async () => {
    await call("GET", "/v1/shelves/a%2Fb%20c%3F");
    expect(received.get("GetShelf")).toEqual({ id: "a/b c?" });
  });

  it("binds {name=shelves/*/books/*} to the whole resource name", async () => {
    const reply = await call("GET", "/v1/shelves/1/books/2");
    expect(reply.status).toBe(200);
    expect(received.get("GetBook")).toEqual({ name: "shelves/1/books/2" });
  });

  it("sets a nested field path from the path, beside a body field that holds its parent", async () => {
    const reply = await call("PATCH", "/v1/shelves/1/books/2?update_mask=title,published", { title: "Dune" });
    expect(reply.status).toBe(200);
    expect(received.get("UpdateBook")).toEqual({
      book: { name: "shelves/1/books/2", title: "Dune" },
      update_mask: "title,published",
    });
    expect(reply.json).toEqual({ name: "shelves/1/books/2", title: "Dune", author: "", genre: "GENRE_UNSPECIFIED", labels: [], pages: "0" });
  });

  it("accepts a body that repeats the path's value, and refuses one that contradicts it, naming the field", async () => {
    const same = await call("PATCH", "/v1/shelves/1/books/2?update_mask=title", { name: "shelves/1/books/2", title: "Dune" });
    expect(same.status).toBe(200);
    expect(received.get("UpdateBook")).toEqual({ book: { name: "shelves/1/books/2", title: "Dune" }, update_mask: "title" });
    received.clear();
    const other = await call("PATCH", "/v1/shelves/1/books/2?update_mask=title", { name: "shelves/9/books/9", title: "Dune" });
    expect(other.status).toBe(400);
    expect(other.json).toEqual(
      invalid(`invalid request body: "book.name" is "shelves/9/books/9" but the path says "shelves/1/books/2": leave it out of the body or send the same value`),
    );
    expect(received.size).toBe(0);
  });

  it("fills an empty update_mask of a PATCH from the body's keys, proto or JSON names, so a field can be cleared", async () => {
    const reply = await call("PATCH", "/v1/shelves/1/books/2", { title: "", pages: "3", genre: "GENRE_POETRY" });
    expect(reply.status).toBe(200);
    expect(received.get("UpdateBook")).toEqual({
      book: { name: "shelves/1/books/2", pages: "3", genre: "GENRE_POETRY" },
      update_mask: "title,pages,genre",
    });
  });

  it("keeps an update_mask the client gave and does not add the body's keys to it", async () => {
    await call("PATCH", "/v1/shelves/1/books/2?update_mask=author", { title: "x", author: "y" });
    expect(received.get("UpdateBook")).toEqual({
      book: { name: "shelves/1/books/2", title: "x", author: "y" },
      update_mask: "author",
    });
  });

  it("leaves the update_mask empty for a PATCH without a body", async () => {
    await call("PATCH", "/v1/shelves/1/books/2");
    expect(received.get("UpdateBook")).toEqual({ book: { name: "shelves/1/books/2" } });
  });

  it("binds {path=**} to several segments", async () => {
    await call("GET", "/v1/files/a/b/c.txt");
    expect(received.get("GetFile")).toEqual({ path: "a/b/c.txt" });
  });

  it("keeps %2F encoded in {path=**} and decodes the rest", async () => {
    const reply = await call("GET", "/v1/files/dir%2Fname/x%20y");
    expect(reply.json).toEqual({ path: "dir%2Fname/x y" });
    await call("GET", "/v1/files/a%2Fb");
    expect(received.get("GetFile")).toEqual({ path: "a%2Fb" });
  });

  it("answers 400, not 500, for bad percent-encoding", async () => {
    const reply = await call("GET", "/v1/shelves/%zz");
    expect(reply.status).toBe(400);
    expect(reply.json).toEqual(invalid(`invalid path: malformed percent-encoding in path segment "%zz"`));
    expect(received.size).toBe(0);
    const deep = await call("GET", "/v1/files/ok/%E0%A4%A");
    expect(deep.status).toBe(400);
    expect(deep.json).toEqual(invalid(`invalid path: malformed percent-encoding in path segment "%E0%A4%A"`));
    expect(internalErrors).toEqual([]);
  });
});

describe("request bodies", () => {
  it("maps body '*' onto the whole request, the path's fields from the path", async () => {
    const reply = await call("POST", "/v1/shelves/1/books/2:checkout", { borrower: "ann", period: "3600s" });
    expect(reply.status).toBe(200);
    expect(reply.headers.get("location")).toBeNull();
    expect(received.get("CheckoutBook")).toEqual({ name: "shelves/1/books/2", borrower: "ann", period: "3600s" });
    expect(reply.json).toMatchObject({ name: "shelves/1/books/2", author: "ann" });
  });

  it("refuses a body '*' whose path field contradicts the path, rather than letting either win", async () => {
    const reply = await call("POST", "/v1/shelves/1/books/2:checkout", { name: "shelves/x/books/y", borrower: "ann" });
    expect(reply.status).toBe(400);
    expect(reply.json).toEqual(
      invalid(`invalid request body: "name" is "shelves/x/books/y" but the path says "shelves/1/books/2": leave it out of the body or send the same value`),
    );
    expect(received.size).toBe(0);
  });

  it("maps body 'field' onto that field, with query parameters for the others", async () => {
    const reply = await call("POST", "/v1/shelves?request_tag=from-query", { theme: "poetry" });
    expect(reply.status).toBe(201);
    expect(received.get("CreateShelf")).toEqual({ shelf: { theme: "poetry" }, request_tag: "from-query" });
  });

  it("accepts lowerCamelCase names and application/json with a charset", async () => {
    await call("POST", "/v1/shelves/1/books?bookId=b1", { title: "T", labels: ["x"], pages: 12 }, {
      "content-type": "application/json; charset=utf-8",
    });
    expect(received.get("CreateBook")).toEqual({ parent: "shelves/1", book: { title: "T", labels: ["x"], pages: "12" }, book_id: "b1" });
  });

  it("treats an empty body as no fields, whatever its Content-Type", async () => {
    const reply = await call("POST", "/v1/shelves", "", { "content-type": "text/plain" });
    expect(reply.status).toBe(201);
    expect(received.get("CreateShelf")).toEqual({});
  });

  it("reads no body for a binding without one", async () => {
    const reply = await call("DELETE", "/v1/shelves/1/books/2");
    expect(reply.status).toBe(200);
    expect(reply.text).toBe("{}");
    expect(received.get("DeleteBook")).toEqual({ name: "shelves/1/books/2" });
  });

  it("refuses a body field of the wrong type", async () => {
    const reply = await call("POST", "/v1/shelves", { theme: 5 });
    expect(reply.status).toBe(400);
    expect(reply.json).toEqual(invalid(`invalid request body: cannot decode field library.v1.Shelf.theme from JSON: expected string, got 5`));
  });

  it("refuses an unknown body field", async () => {
    const reply = await call("POST", "/v1/shelves", { colour: "red" });
    expect(reply.status).toBe(400);
    expect(reply.json).toEqual(invalid(`invalid request body: cannot decode message library.v1.Shelf from JSON: key "colour" is unknown`));
  });

  it("says the body is the field's message when it is sent wrapped like the request, naming the query fields", async () => {
    const wrapped = await call("PATCH", "/v1/shelves/1/books/2", { book: { title: "x" }, update_mask: "title" });
    expect(wrapped.status).toBe(400);
    expect(wrapped.json).toEqual(
      invalid(`invalid request body: unknown field "book": the body is the library.v1.Book itself, not wrapped in "book"; update_mask goes in the query string`),
    );
    const created = await call("POST", "/v1/shelves/1/books", { book: { title: "x" } });
    expect(created.json).toEqual(
      invalid(`invalid request body: unknown field "book": the body is the library.v1.Book itself, not wrapped in "book"; book_id goes in the query string`),
    );
    expect(received.size).toBe(0);
  });

  it("says a query field sent in a body 'field' goes in the query string, in either spelling", async () => {
    const snake = await call("POST", "/v1/shelves", { theme: "t", request_tag: "x" });
    expect(snake.json).toEqual(
      invalid(`invalid request body: unknown field "request_tag": the body is the library.v1.Shelf; request_tag goes in the query string`),
    );
    const camel = await call("PATCH", "/v1/shelves/1/books/2", { title: "x", updateMask: "title" });
    expect(camel.json).toEqual(
      invalid(`invalid request body: unknown field "updateMask": the body is the library.v1.Book; update_mask goes in the query string`),
    );
  });

  it("leaves other unknown keys of a body 'field', a path field among them, to the JSON parser's message", async () => {
    const reply = await call("POST", "/v1/shelves/1/books", { title: "x", parent: "shelves/2" });
    expect(reply.json).toEqual(invalid(`invalid request body: cannot decode message library.v1.Book from JSON: key "parent" is unknown`));
  });
});

describe("query parameters", () => {
  const everyKind = [
    "query=hello+world",
    "labels=a",
    "labels=b%2Cc",
    "genre=GENRE_POETRY",
    "genres=1",
    "genres=GENRE_POETRY",
    "limit=10",
    "min_pages=9007199254740993",
    "min_rating=4.5",
    "available=true",
    "cursor=AQID",
    "published_after=2024-01-02T03:04:05.5Z",
    "max_age=90.5s",
    "read_mask=title,published_after",
    "min_year=1999",
    "filter.author=ann",
    "filter.year.min=3",
    "boost=1.5",
    "seed=18446744073709551615",
  ].join("&");

  const expected = {
    query: "hello world",
    labels: ["a", "b,c"],
    genre: "GENRE_POETRY",
    genres: ["GENRE_FICTION", "GENRE_POETRY"],
    limit: 10,
    min_pages: "9007199254740993",
    min_rating: 4.5,
    available: true,
    cursor: "AQID",
    published_after: "2024-01-02T03:04:05.500Z",
    max_age: "90.500s",
    read_mask: "title,publishedAfter",
    min_year: 1999,
    filter: { author: "ann", year: { min: 3, max: 0 } },
    boost: 1.5,
    seed: "18446744073709551615",
  };

  it("sets every kind of field, and the response emits every implicit field with proto names", async () => {
    const reply = await call("GET", `/v1/books:search?${everyKind}`);
    expect(reply.status).toBe(200);
    expect(reply.json).toEqual({ request: expected });
  });

  it("takes lowerCamelCase names as well as proto names", async () => {
    const camel = everyKind
      .replace("min_pages=", "minPages=")
      .replace("min_rating=", "minRating=")
      .replace("published_after=", "publishedAfter=")
      .replace("max_age=", "maxAge=")
      .replace("read_mask=", "readMask=")
      .replace("min_year=", "minYear=");
    expect(camel).not.toBe(everyKind);
    const reply = await call("GET", `/v1/books:search?${camel}`);
    expect(reply.json).toEqual({ request: expected });
  });

  it("takes an enum by number and a bool false", async () => {
    await call("GET", "/v1/books:search?genre=2&available=false");
    expect(received.get("SearchBooks")).toEqual({ genre: "GENRE_POETRY" });
  });

  it("takes bytes as standard and URL-safe base64", async () => {
    await call("GET", "/v1/books:search?cursor=%2B%2F8%3D");
    expect(received.get("SearchBooks")).toEqual({ cursor: "+/8=" });
    await call("GET", "/v1/books:search?cursor=-_8");
    expect(received.get("SearchBooks")).toEqual({ cursor: "+/8=" });
  });

  it("echoes an empty request with every implicit field present", async () => {
    const reply = await call("GET", "/v1/books:search");
    expect(reply.json).toEqual({
      request: {
        query: "",
        labels: [],
        genre: "GENRE_UNSPECIFIED",
        genres: [],
        limit: 0,
        min_pages: "0",
        min_rating: 0,
        available: false,
        cursor: "",
        boost: 0,
        seed: "0",
      },
    });
  });

  it.each([
    ["an unknown name", "/v1/books:search?nope=1", `invalid query parameter "nope": unknown field: library.v1.SearchBooksRequest has no field "nope"`],
    ["an unknown nested name", "/v1/books:search?filter.nope=1", `invalid query parameter "filter.nope": unknown field: library.v1.Filter has no field "nope"`],
    ["a name below a scalar", "/v1/books:search?query.x=1", `invalid query parameter "query.x": unknown field: "query" is not a singular message field, so it has no field "x"`],
    ["a path-bound field", "/v1/shelves/1?id=2", `invalid query parameter "id": "id" comes from the path`],
    ["a field inside a path-bound resource name", "/v1/shelves/1/books/2?name=x", `invalid query parameter "name": "name" comes from the path`],
    ["a singular field given twice", "/v1/books:search?query=a&query=b", `invalid query parameter "query": given more than once but the field is not repeated`],
    ["a Struct field", "/v1/books:search?extra=x", `invalid query parameter "extra": this field cannot be set from a query parameter`],
    ["a message field", "/v1/books:search?filter=x", `invalid query parameter "filter": this field cannot be set from a query parameter`],
    ["a bad enum name", "/v1/books:search?genre=GENRE_NOPE", `invalid query parameter "genre": cannot decode enum library.v1.Genre from JSON: "GENRE_NOPE"`],
    ["a bad bool", "/v1/books:search?available=yes", `invalid query parameter "available": expected true or false, got "yes"`],
    ["a bad integer", "/v1/books:search?limit=ten", `invalid query parameter "limit": cannot decode field library.v1.SearchBooksRequest.limit from JSON: expected number (int32), got "ten"`],
    ["a bad timestamp", "/v1/books:search?published_after=yesterday", `invalid query parameter "published_after": cannot decode message google.protobuf.Timestamp from JSON: invalid RFC 3339 string`],
  ])("refuses %s", async (_, path, message) => {
    const reply = await call("GET", path);
    expect(reply.status).toBe(400);
    expect(reply.json).toEqual(invalid(message));
    expect(received.size).toBe(0);
  });

  it("refuses a field that the body holds", async () => {
    const shelf = await call("POST", "/v1/shelves?shelf.theme=x", { theme: "y" });
    expect(shelf.status).toBe(400);
    expect(shelf.json).toEqual(invalid(`invalid query parameter "shelf.theme": "shelf" comes from the body`));
    const book = await call("POST", "/v1/shelves/1/books?book=x", {});
    expect(book.status).toBe(400);
    expect(book.json).toEqual(invalid(`invalid query parameter "book": "book" comes from the body`));
    expect(received.size).toBe(0);
  });

  it("refuses a singular field given once under each of its names", async () => {
    const reply = await call("GET", "/v1/books:search?min_pages=1&minPages=2");
    expect(reply.status).toBe(400);
    expect(reply.json).toEqual(invalid(`invalid query parameter "min_pages": given more than once but the field is not repeated`));
    const mask = await call("GET", "/v1/books:search?readMask=title&read_mask=author");
    expect(mask.json).toEqual(invalid(`invalid query parameter "readMask": given more than once but the field is not repeated`));
    expect(received.size).toBe(0);
  });

  it("sets sibling fields of one nested message from separate parameters", async () => {
    await call("GET", "/v1/books:search?filter.year.min=1&filter.year.max=2&filter.author=ann");
    expect(received.get("SearchBooks")).toEqual({ filter: { author: "ann", year: { min: 1, max: 2 } } });
  });

  it("accepts query parameters beside body '*', merged after the body", async () => {
    const reply = await call("POST", "/v1/shelves/1/books/2:checkout?borrower=bob&period=3s", { borrower: "ann" });
    expect(reply.status).toBe(200);
    expect(received.get("CheckoutBook")).toEqual({ name: "shelves/1/books/2", borrower: "bob", period: "3s" });
  });

  it("refuses a query parameter naming a path-bound field beside body '*'", async () => {
    const reply = await call("POST", "/v1/shelves/1/books/2:checkout?name=x", {});
    expect(reply.status).toBe(400);
    expect(reply.json).toEqual(invalid(`invalid query parameter "name": "name" comes from the path`));
  });

  it("refuses the body field by a nested name even when the body is empty", async () => {
    const reply = await call("PATCH", "/v1/shelves/1/books/2?book.title=x");
    expect(reply.status).toBe(400);
    expect(reply.json).toEqual(invalid(`invalid query parameter "book.title": "book" comes from the body`));
  });
});

describe("responses", () => {
  it("answers only the response_body field: a JSON string", async () => {
    const reply = await call("GET", "/v1/shelves/1/books/2:title");
    expect(reply.status).toBe(200);
    expect(reply.headers.get("content-type")).toBe("application/json");
    expect(reply.text).toBe(`"title of shelves/1/books/2"`);
  });

  it("serves both paths of additional_bindings", async () => {
    const onShelf = await call("GET", "/v1/shelves/3/books?page_size=300");
    expect(onShelf.status).toBe(200);
    expect(received.get("ListBooks")).toEqual({ parent: "shelves/3", page_size: 300 });
    expect(onShelf.json).toEqual({
      books: [{ name: "shelves/3/books/1", title: "", author: "", genre: "GENRE_UNSPECIFIED", labels: [], pages: "300" }],
    });
    const everywhere = await call("GET", "/v1/books?pageSize=1");
    expect(everywhere.status).toBe(200);
    expect(received.get("ListBooks")).toEqual({ page_size: 1 });
    expect(everywhere.json.books[0].name).toBe("any/books/1");
  });

  it("emits an empty list as []", async () => {
    expect((await call("GET", "/v1/books")).json).toEqual({ books: [] });
  });

  it("answers DELETE returning Empty with {}", async () => {
    const reply = await call("DELETE", "/v1/shelves/1/books/2");
    expect(reply.json).toEqual({});
  });

  it("answers 201 with Location for a POST on a collection with a sibling GET", async () => {
    const reply = await call("POST", "/v1/shelves", { theme: "poetry" });
    expect(reply.status).toBe(201);
    expect(reply.headers.get("location")).toBe("/v1/shelves/shelf-1");
    expect(reply.json).toEqual({ id: "shelf-1", theme: "poetry" });
  });

  it("builds a multi-segment Location from the resource name", async () => {
    const reply = await call("POST", "/v1/shelves/1/books?book_id=xyz", { title: "T" });
    expect(reply.status).toBe(201);
    expect(reply.headers.get("location")).toBe("/v1/shelves/1/books/xyz");
    expect(reply.json).toEqual({ name: "shelves/1/books/xyz", title: "T", author: "", genre: "GENRE_UNSPECIFIED", labels: [], pages: "0" });
  });

  it("percent-encodes the Location", async () => {
    const reply = await call("POST", "/v1/shelves", { id: "a b/c" });
    expect(reply.status).toBe(201);
    expect(reply.headers.get("location")).toBe("/v1/shelves/a%20b%2Fc");
  });

  it("answers 200 without Location when the created resource has nothing to point at", async () => {
    overrides.createShelf = () => ({ id: "", theme: "x" });
    const reply = await call("POST", "/v1/shelves", { theme: "x" });
    expect(reply.status).toBe(200);
    expect(reply.headers.get("location")).toBeNull();
  });

  it("answers 200 to a custom verb POST", async () => {
    const reply = await call("POST", "/v1/shelves/1/books/2:checkout", {});
    expect(reply.status).toBe(200);
    expect(reply.headers.get("location")).toBeNull();
  });

  it("passes request headers to the implementation and its response headers back", async () => {
    overrides.getShelf = (req, ctx) => {
      ctx.responseHeader.set("x-shelf", req.id);
      return { id: req.id, theme: ctx.requestHeader.get("authorization") ?? "none" };
    };
    const reply = await call("GET", "/v1/shelves/4", undefined, { authorization: "Bearer abc" });
    expect(reply.json).toEqual({ id: "4", theme: "Bearer abc" });
    expect(reply.headers.get("x-shelf")).toBe("4");
  });
});

describe("errors from the HTTP edge", () => {
  it("answers malformed JSON with 400", async () => {
    const reply = await call("POST", "/v1/shelves", `{"theme": `);
    expect(reply.status).toBe(400);
    expect(reply.json).toEqual(invalid("malformed JSON body: Unexpected end of JSON input"));
  });

  it("answers a body over the limit with 413", async () => {
    const reply = await call("POST", "/v1/shelves", { theme: "x".repeat(READ_MAX_BYTES) });
    expect(reply.status).toBe(413);
    expect(reply.json).toEqual({ code: 8, message: `request body is larger than ${READ_MAX_BYTES} bytes`, details: [] });
  });

  it("accepts a body of exactly the limit", async () => {
    const body = JSON.stringify({ theme: "" }).replace(`""`, `"${"x".repeat(READ_MAX_BYTES - 12)}"`);
    expect(Buffer.byteLength(body)).toBe(READ_MAX_BYTES);
    expect((await call("POST", "/v1/shelves", body)).status).toBe(201);
  });

  it("answers a declared Content-Length over the limit with 413 before any body arrives, and closes", async () => {
    const reply = await rawRequest(
      { method: "POST", path: "/v1/shelves", headers: { "content-type": "application/json", "content-length": String(READ_MAX_BYTES + 1) } },
      (req) => req.flushHeaders(),
    );
    expect(reply.status).toBe(413);
    expect(reply.headers.connection).toBe("close");
    expect(reply.json).toEqual({ code: 8, message: `request body is larger than ${READ_MAX_BYTES} bytes`, details: [] });
    expect(received.size).toBe(0);
  });

  it("answers a chunked body that grows over the limit with 413", async () => {
    const reply = await rawRequest({ method: "POST", path: "/v1/shelves", headers: { "content-type": "application/json" } }, (req) => {
      req.write(`{"theme": "${"x".repeat(600)}`);
      req.end(`${"x".repeat(600)}"}`);
    });
    expect(reply.status).toBe(413);
    expect(reply.json).toEqual({ code: 8, message: `request body is larger than ${READ_MAX_BYTES} bytes`, details: [] });
  });

  it("answers a non-JSON Content-Type with a body with 415", async () => {
    const reply = await call("POST", "/v1/shelves", `{"theme":"x"}`, { "content-type": "text/plain" });
    expect(reply.status).toBe(415);
    expect(reply.json).toEqual(invalid(`unsupported Content-Type "text/plain": send application/json`));
    const none = await call("POST", "/v1/shelves", new TextEncoder().encode(`{"theme":"x"}`));
    expect(none.status).toBe(415);
    expect(none.json).toEqual(invalid(`unsupported Content-Type "": send application/json`));
  });

  it("answers an unknown path with 404", async () => {
    const reply = await call("GET", "/v2/nothing?x=1");
    expect(reply.status).toBe(404);
    expect(reply.json).toEqual({ code: 5, message: "no route for /v2/nothing", details: [] });
  });

  it("answers a known path with the wrong method with 405 and a sorted Allow", async () => {
    const reply = await call("PUT", "/v1/shelves/1/books/2", {});
    expect(reply.status).toBe(405);
    expect(reply.headers.get("allow")).toBe("DELETE, GET, PATCH");
    expect(reply.json).toEqual({ code: 12, message: "method PUT is not allowed for /v1/shelves/1/books/2", details: [] });
    const collection = await call("GET", "/v1/shelves");
    expect(collection.status).toBe(405);
    expect(collection.headers.get("allow")).toBe("POST");
  });

  it("answers invalid UTF-8 with 400", async () => {
    const reply = await call("POST", "/v1/shelves", new Uint8Array([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]), {
      "content-type": "application/json",
    });
    expect(reply.status).toBe(400);
    expect(reply.json).toEqual(invalid("malformed JSON body: body is not valid UTF-8"));
  });

  it("answers nesting deeper than 100 levels with 400, and lets 100 through to the field check", async () => {
    const nested = (levels: number) => "[".repeat(levels) + "]".repeat(levels);
    const tooDeep = await call("POST", "/v1/shelves", nested(101));
    expect(tooDeep.status).toBe(400);
    expect(tooDeep.json).toEqual(invalid("malformed JSON body: nesting is deeper than 100 levels"));
    const deepest = await call("POST", "/v1/shelves", nested(100));
    expect(deepest.status).toBe(400);
    expect(deepest.json).toEqual(invalid("invalid request body: cannot decode message library.v1.Shelf from JSON: Array(1)"));
  });
});

describe("errors from the implementation", () => {
  it.each([
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
  ])("answers ConnectError code %i with HTTP %i", async (code, status) => {
    overrides.getShelf = () => {
      throw new ConnectError(`shelf failed with ${code}`, code);
    };
    const reply = await call("GET", "/v1/shelves/1");
    expect(reply.status).toBe(status);
    expect(reply.json).toEqual({ code, message: `shelf failed with ${code}`, details: [] });
    expect(internalErrors).toEqual([]);
  });

  it("renders error details", async () => {
    overrides.createShelf = () => {
      throw new ConnectError("invalid shelf", Code.InvalidArgument, undefined, [
        { desc: BadRequestSchema, value: { fieldViolations: [{ field: "shelf.theme", description: "must not be empty" }] } },
      ]);
    };
    const reply = await call("POST", "/v1/shelves", {});
    expect(reply.status).toBe(400);
    expect(reply.json).toEqual({
      code: 3,
      message: "invalid shelf",
      details: [
        { "@type": "type.googleapis.com/google.rpc.BadRequest", field_violations: [{ field: "shelf.theme", description: "must not be empty" }] },
      ],
    });
  });

  it("hides any other error behind 500 internal error and reports it", async () => {
    const secret = new Error("SELECT * FROM secret /etc/passwd");
    overrides.getShelf = async () => {
      throw secret;
    };
    const reply = await call("GET", "/v1/shelves/1");
    expect(reply.status).toBe(500);
    expect(reply.text).toBe(`{"code":13,"message":"internal error","details":[]}`);
    expect(internalErrors).toHaveLength(1);
    expect(internalErrors[0]!.error).toBe(secret);
    expect(internalErrors[0]!.binding?.method.name).toBe("GetShelf");
  });
});

describe("createRestHandler construction", () => {
  const options = { readMaxBytes: READ_MAX_BYTES, onInternalError: () => undefined };

  it("refuses a binding whose method has no implementation", () => {
    const { getShelf: _, ...partial } = library;
    expect(() => createRestHandler([{ service: LibraryService, implementation: partial }], options)).toThrowError(
      "library.v1.LibraryService.GetShelf: google.api.http binding has no implementation",
    );
  });

  it("refuses a bad annotation at construction", () => {
    const service = buildTestService([{ name: "Get", rule: { pattern: { case: "get", value: "/v1/{name}" }, body: "*" } }]);
    expect(() => createRestHandler([{ service, implementation: { get: () => ({}) } }], options)).toThrowError(
      "test.v1.TestService.Get: google.api.http GET cannot have a body",
    );
  });
});

describe("a path variable of a non-string type", () => {
  let other: http.Server;
  let url: string;
  const counts: number[] = [];

  beforeAll(async () => {
    const service = buildTestService([{ name: "GetCount", rule: { pattern: { case: "get", value: "/v1/counts/{count}" } } }]);
    const implementation = {
      getCount: (req: { count: number }) => {
        counts.push(req.count);
        return { title: String(req.count) };
      },
    };
    other = http.createServer(createRestHandler([{ service, implementation }], { readMaxBytes: READ_MAX_BYTES, onInternalError: () => undefined }));
    await new Promise<void>((resolve) => other.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    other.closeAllConnections();
    await new Promise<void>((resolve) => other.close(() => resolve()));
  });

  it("converts the text to the field's type", async () => {
    const response = await fetch(`${url}/v1/counts/42`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ title: "42" });
    expect(counts).toEqual([42]);
  });

  it("answers 400 naming the variable for text of the wrong type", async () => {
    const response = await fetch(`${url}/v1/counts/many`);
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual(invalid(`invalid path: count: cannot decode field test.v1.Req.count from JSON: expected number (int32), got "many"`));
  });
});
