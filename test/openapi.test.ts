import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Validator } from "@seriousme/openapi-schema-validator";
import { Ajv2020 } from "ajv/dist/2020.js";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createServices } from "../src/routes.js";
import { httpBindingsOf } from "../src/rest/http-rule.js";
import { RouteTable, routeTableOf, shapeOf } from "../src/rest/route-table.js";
import { createdResourceReaders } from "../src/rest/created-location.js";
import { API_DOCS_CONTENT_SECURITY_POLICY } from "../src/net/api-docs.js";
import { openApiDocument, OpenApiError } from "../src/openapi/document.js";
import { ProtoComments } from "../src/openapi/proto-comments.js";
import { LibraryService } from "../gen/library/v1/library_pb.js";
import { useBrowser } from "./helpers/browser.js";
import { insertTestKey } from "./helpers/keys.js";
import { AGENT_ID, DEFAULT_ORG_ID, requestJson, startTestServer, type TestServer } from "./helpers/server.js";

// The OpenAPI document the server serves at /openapi.json, checked against the committed
// copy, the OpenAPI 3.1 schema, the route table the REST transcoder serves, and real REST
// answers; and the API reference at /docs, over HTTP and in Chromium.

const COMMITTED = fileURLToPath(new URL("../openapi/openapi.json", import.meta.url));

type Json = any;

let server: TestServer;
let served: string;
let doc: Json;
/** The routes the server's REST transcoder serves: built from the same services, by the same function. */
let table: RouteTable;

beforeAll(async () => {
  server = await startTestServer();
  table = routeTableOf(createServices(server.store, pino({ level: "silent" })).map((s) => s.service));
  served = await (await fetch(`${server.url}/openapi.json`)).text();
  doc = JSON.parse(served);
});

afterAll(async () => {
  await server.close();
});

/** `METHOD /path` with variables as `*`, the way the route table compares templates. */
function operationsOf(document: Json): string[] {
  const operations: string[] = [];
  for (const [path, item] of Object.entries<Json>(document.paths)) {
    for (const method of Object.keys(item)) operations.push(`${method.toUpperCase()} ${path.replace(/\{[^}]+\}/g, "*")}`);
  }
  return operations.sort();
}

/** A validator of REST JSON against the document's components (formats as proto3 JSON writes them). */
function validatorFor(document: Json, ref: string) {
  const ajv = new Ajv2020({
    strict: true,
    formats: {
      "date-time": /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/,
      int32: true,
      int64: /^-?[0-9]+$/,
      uint32: true,
      uint64: /^[0-9]+$/,
      byte: true,
      float: true,
      double: true,
    },
  });
  ajv.addKeyword("components");
  ajv.addSchema({ $id: "https://sessions.invalid/openapi.json", components: document.components });
  const validate = ajv.getSchema(`https://sessions.invalid/openapi.json${ref}`);
  if (!validate) throw new Error(`no schema at ${ref}`);
  return validate;
}

describe("GET /openapi.json", () => {
  it("answers 200 application/json with exactly the committed openapi/openapi.json", async () => {
    const res = await fetch(`${server.url}/openapi.json`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(await res.text()).toBe(readFileSync(COMMITTED, "utf8"));
  });

  it("is a valid OpenAPI 3.1 document", async () => {
    const validator = new Validator();
    const result = await validator.validate(structuredClone(doc));
    expect(result.errors).toBeUndefined();
    expect(result.valid).toBe(true);
    expect(validator.version).toBe("3.1");
    expect(doc.openapi).toBe("3.1.0");
  });

  it("describes every route of the transcoder's route table with its method and path, and nothing else", () => {
    const routes = table.all().map((b) => `${b.httpMethod} ${shapeOf(b.template)}`).sort();
    expect(routes).toHaveLength(21);
    expect(operationsOf(doc)).toEqual(routes);
    // Each operation is its RPC: operationId and tag name the service and method.
    for (const binding of table.all()) {
      const path = Object.keys(doc.paths).find((p) => p.replace(/\{[^}]+\}/g, "*") === shapeOf(binding.template))!;
      const operation = doc.paths[path][binding.httpMethod.toLowerCase()];
      expect(operation.operationId).toBe(`${binding.service.name}_${binding.method.name}`);
      expect(operation.tags).toEqual([binding.service.name]);
    }
  });

  it("gives templates of one shape one path: /v1/sessions/{id} holds GET, PATCH ({session.id}) and DELETE", () => {
    expect(Object.keys(doc.paths)).toEqual([
      "/v1/agents",
      "/v1/agents/{id}",
      "/v1/sessions",
      "/v1/sessions/{id}",
      "/v1/sessions/{id}:start",
      "/v1/sessions/{id}:complete",
      "/v1/sessions/{id}:fail",
      "/v1/sessions/{id}:cancel",
      "/v1/sessions/{id}:recordUsage",
      "/v1/sessions/{id}/runtime",
      "/v1/sessions/{session_id}/messages",
      "/v1/sessions/{session_id}/messages/{id}",
      "/v1/sessions/{session_id}/events",
      "/v1/sessions/{session_id}/events:stream",
    ]);
    const item = doc.paths["/v1/sessions/{id}"];
    expect(Object.keys(item)).toEqual(["get", "patch", "delete"]);
    expect(item.patch.parameters).toEqual([
      {
        name: "id",
        in: "path",
        required: true,
        description: '"session_" followed by 32 lowercase hex digits; time-ordered.\n\nSets `session.id`.',
        schema: { type: "string" },
      },
      expect.objectContaining({ name: "update_mask", in: "query" }),
    ]);
    expect(item.get.parameters.map((p: Json) => `${p.in}:${p.name}`)).toEqual(["path:id"]);
    expect(item.delete.parameters.map((p: Json) => `${p.in}:${p.name}`)).toEqual(["path:id", "query:etag"]);
  });

  it("documents 201 with a Location header exactly for the creates the transcoder answers so", () => {
    const creates = [...createdResourceReaders(table.all()).keys()].map((b) => `${b.httpMethod} ${b.template.source}`).sort();
    expect(creates).toEqual(["POST /v1/agents", "POST /v1/sessions", "POST /v1/sessions/{session_id}/messages"]);
    const documented: string[] = [];
    for (const [path, item] of Object.entries<Json>(doc.paths)) {
      for (const [method, operation] of Object.entries<Json>(item)) {
        if ("201" in operation.responses) {
          documented.push(`${method.toUpperCase()} ${path}`);
          expect(operation.responses["200"]).toBeUndefined();
        } else {
          expect(operation.responses["200"]).toBeDefined();
        }
      }
    }
    expect(documented.sort()).toEqual(creates);
    expect(doc.paths["/v1/sessions"].post.responses["201"]).toEqual({
      description: "Created: Location names the new resource.",
      headers: {
        Location: {
          description: "The path of the new resource, which `GET /v1/sessions/{id}` reads.",
          required: true,
          schema: { type: "string" },
        },
      },
      content: { "application/json": { schema: { $ref: "#/components/schemas/sessions.v1.Session" } } },
    });
  });

  it("documents the error statuses with the google.rpc.Status body src/rest/errors.ts writes", () => {
    const create = doc.paths["/v1/sessions"].post.responses;
    expect(Object.keys(create)).toEqual(["201", "400", "401", "403", "404", "409", "413", "415", "429", "500", "501", "503", "504"]);
    // No body is read, so no 413 or 415.
    expect(Object.keys(doc.paths["/v1/sessions/{id}"].get.responses)).toEqual(
      ["200", "400", "401", "403", "404", "409", "429", "500", "501", "503", "504"],
    );
    expect(create["409"]).toEqual({ $ref: "#/components/responses/Error409" });
    expect(doc.components.responses.Error409.description).toBe("Conflict: `already_exists` (6), `aborted` (10).");
    expect(doc.components.responses.Error413.description).toBe("Payload Too Large: `resource_exhausted` (8).");
    const status = doc.components.schemas["google.rpc.Status"];
    expect(status.required).toEqual(["code", "message", "details"]);
    expect(Object.keys(status.properties)).toEqual(["code", "message", "details"]);
    expect(status.properties.details.items.required).toEqual(["@type"]);
  });

  it("writes answers in REST's JSON: proto field names, enums as names, int64 as strings, every field without presence", () => {
    const schemas = doc.components.schemas;
    const session = schemas["sessions.v1.Session"];
    expect(Object.keys(session.properties)).toEqual([
      "id", "org_id", "agent_id", "model_id", "capabilities", "title", "tags", "status", "usage", "prompt_preview",
      "response_preview", "created_at", "updated_at", "started_at", "finished_at", "error", "etag",
    ]);
    expect(session.description).toBe("One run of an agentic loop.");
    // Every answer carries the fields without presence; message fields only when set.
    expect(session.required).toEqual([
      "id", "org_id", "agent_id", "model_id", "capabilities", "title", "tags", "status", "prompt_preview",
      "response_preview", "error", "etag",
    ]);
    expect(session.properties.title).toEqual({ type: "string", description: "Free-form title, at most 256 characters." });
    expect(session.properties.created_at).toEqual({
      type: "string",
      format: "date-time",
      description: "When the session was created.",
      readOnly: true,
    });
    expect(session.properties.status).toEqual({
      $ref: "#/components/schemas/sessions.v1.SessionStatus",
      description: "Lifecycle status.",
      readOnly: true,
    });
    expect(schemas["sessions.v1.SessionStatus"].type).toBe("string");
    expect(schemas["sessions.v1.SessionStatus"].enum).toEqual([
      "SESSION_STATUS_UNSPECIFIED", "SESSION_STATUS_PENDING", "SESSION_STATUS_RUNNING",
      "SESSION_STATUS_COMPLETED", "SESSION_STATUS_FAILED", "SESSION_STATUS_CANCELLED",
    ]);
    expect(schemas["sessions.v1.Usage"].properties.input_tokens).toEqual({
      type: "string",
      format: "int64",
      pattern: "^-?[0-9]+$",
      examples: ["0"],
      description: "Tokens sent to the model.",
    });
    expect(schemas["sessions.v1.CapabilityConfig"].properties.config).toMatchObject({ type: "object", additionalProperties: true });
    expect(schemas["sessions.v1.CapabilityConfig"].required).toEqual(["capability_id"]);
    // PATCH takes the Session itself as its body (body: "session"); update_mask is a query parameter.
    const update = doc.paths["/v1/sessions/{id}"].patch;
    expect(update.parameters.find((p: Json) => p.name === "update_mask")).toMatchObject({ in: "query", schema: { type: "string" } });
    const bodyRef: string = update.requestBody.content["application/json"].schema.$ref;
    expect(bodyRef).toMatch(/^#\/components\/schemas\/sessions\.v1\.Session\b/);
    const bodySchema = schemas[bodyRef.slice("#/components/schemas/".length)];
    expect(Object.keys(bodySchema.properties)).toEqual(expect.arrayContaining(["id", "title", "tags", "etag"]));
    expect(Object.keys(bodySchema.properties)).not.toContain("update_mask");
    // The resource of a PATCH sends only what changes: nothing is `required` in its Patch form.
    expect(schemas["sessions.v1.Agent"].required).toEqual(["id", "org_id", "name", "default_model_id", "capabilities", "etag"]);
    expect(schemas["sessions.v1.Agent-Patch"].required).toBeUndefined();
    expect(schemas["sessions.v1.Agent-Patch"].anyOf).toBeUndefined();
    expect(doc.paths["/v1/sessions"].post.summary).toBe("Creates a session in status PENDING with zero usage.");
    expect(doc.paths["/v1/sessions"].post.description).toBe(
      "Creates a session in status PENDING with zero usage. The agent must exist in the\ncaller's organisation.",
    );
    expect(doc.tags).toEqual([
      { name: "AgentService", description: "Manages the agents that sessions run." },
      { name: "SessionService", description: "Records and serves the sessions of agents." },
    ]);
  });

  it("lists the query parameters the transcoder accepts, dotted and typed, and none beside a body: \"*\"", () => {
    const list = doc.paths["/v1/sessions"].get.parameters;
    expect(list.map((p: Json) => p.name)).toEqual([
      "page_size", "page_token", "agent_id", "status", "tag", "created_after", "created_before",
    ]);
    expect(list.every((p: Json) => p.in === "query" && p.required === undefined)).toBe(true);
    expect(list.find((p: Json) => p.name === "page_size").schema).toEqual({ type: ["integer", "string"], format: "int32", pattern: "^-?[0-9]+$" });
    expect(list.find((p: Json) => p.name === "status").schema).toEqual({
      type: "array",
      items: { $ref: "#/components/schemas/sessions.v1.SessionStatus-Input" },
    });
    expect(list.find((p: Json) => p.name === "created_after").schema).toEqual({
      type: "string",
      format: "date-time",
      pattern: "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$",
    });
    expect(doc.paths["/v1/sessions/{id}:recordUsage"].post.parameters.map((p: Json) => p.name)).toEqual(["id"]);
    // The body of a custom method leaves out what the path sets; where that is every field, it is optional and may be {}.
    const recordUsage = doc.paths["/v1/sessions/{id}:recordUsage"].post.requestBody.content["application/json"].schema;
    expect(Object.keys(recordUsage.properties)).toEqual([
      "input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens", "prompt_preview", "response_preview",
    ]);
    expect(doc.paths["/v1/sessions/{id}:start"].post.requestBody).toEqual({
      description: "Every field is in the path: the body may be left out, or be `{}`.",
      content: { "application/json": { schema: { type: "object", description: "Starts a session.", properties: {} } } },
    });
    expect(doc.paths["/v1/sessions/{id}:fail"].post.requestBody.required).toBe(true);
  });

  it("reads requests in every form proto3 JSON allows: numbers or strings, names or numbers, either field name, null", () => {
    const schemas = doc.components.schemas;
    const bodyOf = (path: string, method: string) => doc.paths[path][method].requestBody.content["application/json"].schema;
    const recordUsage = bodyOf("/v1/sessions/{id}:recordUsage", "post");
    expect(recordUsage.properties.input_tokens).toEqual({
      type: ["integer", "string", "null"],
      format: "int64",
      pattern: "^-?[0-9]+$",
      examples: ["0"],
      description: "Tokens to add, each at least 0.",
    });
    // The answer's Usage stays strings; the one a request may hold is its -Input form.
    expect(schemas["sessions.v1.Usage-Input"].properties.input_tokens.type).toEqual(["integer", "string", "null"]);
    expect(schemas["sessions.v1.SessionStatus-Input"].anyOf).toEqual([
      { type: "string", enum: schemas["sessions.v1.SessionStatus"].enum },
      { type: "integer", enum: [0, 1, 2, 3, 4, 5] },
    ]);
    // A REQUIRED field with a lowerCamelCase name is required under one name or the other.
    expect(bodyOf("/v1/sessions", "post")).toEqual({ $ref: "#/components/schemas/sessions.v1.CreateSessionRequest-Input" });
    const create = schemas["sessions.v1.CreateSessionRequest-Input"];
    expect(create.required).toBeUndefined();
    expect(create.anyOf).toEqual([{ required: ["agent_id"] }, { required: ["agentId"] }]);
    expect(create.properties.agent_id.description).toMatch(/Required, as `agent_id` or `agentId`\.$/);
    expect(create.properties.capabilities).toMatchObject({
      type: ["array", "null"],
      items: { $ref: "#/components/schemas/sessions.v1.CapabilityConfig-Input" },
    });
    const createAgent = schemas["sessions.v1.CreateAgentRequest-Input"];
    expect(createAgent.required).toEqual(["name"]);
    expect(createAgent.anyOf).toEqual([{ required: ["default_model_id"] }, { required: ["defaultModelId"] }]);
    // A PATCH body is the resource with nothing required; OUTPUT_ONLY fields are readOnly (sent, and ignored or refused).
    expect(bodyOf("/v1/sessions/{id}", "patch")).toEqual({ $ref: "#/components/schemas/sessions.v1.Session-Patch" });
    const patch = schemas["sessions.v1.Session-Patch"];
    expect(Object.keys(patch.properties)).toEqual(Object.keys(schemas["sessions.v1.Session"].properties));
    expect(patch.required).toBeUndefined();
    expect(patch.properties.id).toMatchObject({ type: ["string", "null"], readOnly: true });
    expect(patch.properties.status).toMatchObject({
      anyOf: [{ $ref: "#/components/schemas/sessions.v1.SessionStatus-Input" }, { type: "null" }],
      readOnly: true,
    });
    expect(patch.properties.created_at.pattern).toBe(
      "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$",
    );
    // Request forms are used only in requests, answer forms only in answers, nested ones included.
    const operations = Object.values<Json>(doc.paths).flatMap((item) => Object.values<Json>(item));
    const refsFrom = (roots: unknown[]) => {
      const refs = new Set<string>();
      const visit = (value: unknown): void => {
        if (Array.isArray(value)) value.forEach(visit);
        else if (value !== null && typeof value === "object") {
          for (const [key, child] of Object.entries(value)) {
            if (key === "$ref" && typeof child === "string" && child.startsWith("#/components/schemas/")) {
              const name = child.slice("#/components/schemas/".length);
              if (!refs.has(name)) {
                refs.add(name);
                visit(schemas[name]);
              }
            } else visit(child);
          }
        }
      };
      roots.forEach(visit);
      return [...refs].sort();
    };
    const inRequests = refsFrom(operations.flatMap((op) => [op.requestBody, op.parameters]));
    const inResponses = refsFrom([...operations.map((op) => op.responses), doc.components.responses]);
    expect(inRequests.filter((name) => !/-(Input|Patch)$/.test(name))).toEqual([]);
    expect(inResponses.filter((name) => /-(Input|Patch)$/.test(name))).toEqual([]);
    expect([...inRequests, ...inResponses].sort()).toEqual(Object.keys(schemas).sort());
  });

  it("matches real REST answers: a created session validates as documented (201), an invalid create as the error", async () => {
    const created = await requestJson(`${server.url}/v1/sessions`, {
      body: { agent_id: AGENT_ID, title: "documented", tags: ["a"], capabilities: [{ capability_id: "web.search", config: { n: 1 } }] },
    });
    expect(created.status).toBe(201);
    expect(created.headers.get("location")).toBe(`/v1/sessions/${created.body.id}`);
    const schemaRef = doc.paths["/v1/sessions"].post.responses["201"].content["application/json"].schema.$ref;
    const validateSession = validatorFor(doc, schemaRef);
    expect(validateSession(created.body), JSON.stringify(validateSession.errors)).toBe(true);
    // Every field the server wrote is documented, under the same name.
    const properties = doc.components.schemas["sessions.v1.Session"].properties;
    expect(Object.keys(created.body).filter((key) => !(key in properties))).toEqual([]);
    // And the check has teeth: a number where REST writes an int64 string fails it.
    expect(validateSession({ ...created.body, usage: { ...created.body.usage, input_tokens: 0 } })).toBe(false);

    const refused = await requestJson(`${server.url}/v1/sessions`, { body: { agent_id: "agent_42" } });
    expect(refused.status).toBe(400);
    const validateError = validatorFor(doc, "#/components/schemas/google.rpc.Status");
    expect(validateError(refused.body), JSON.stringify(validateError.errors)).toBe(true);
  });
});

describe("the generator over the transcoder's test API (library.proto)", () => {
  const options = { info: { title: "Library", version: "test" } };
  const servable = httpBindingsOf(LibraryService).filter((b) => b.method.name !== "GetFile");
  const library: Json = openApiDocument(new RouteTable(servable), ProtoComments.none, options);

  it("refuses a {var=**} path, naming the method: OpenAPI path parameters are single segments", () => {
    expect(() => openApiDocument(new RouteTable(httpBindingsOf(LibraryService)), ProtoComments.none, options)).toThrow(
      new OpenApiError(
        httpBindingsOf(LibraryService).find((b) => b.method.name === "GetFile")!,
        "cannot be described in OpenAPI: a path parameter cannot span several segments (**)",
      ),
    );
    expect(() => openApiDocument(new RouteTable(httpBindingsOf(LibraryService)), ProtoComments.none, options)).toThrow(
      "library.v1.LibraryService.GetFile: GET /v1/files/{path=**} cannot be described in OpenAPI",
    );
  });

  it("describes the rest as valid OpenAPI 3.1: resource names by segment, additional bindings, custom verbs", async () => {
    expect((await new Validator().validate(structuredClone(library))).valid).toBe(true);
    expect(operationsOf(library)).toEqual(servable.map((b) => `${b.httpMethod} ${shapeOf(b.template)}`).sort());
    const operations = Object.entries<Json>(library.paths).flatMap(([path, item]) =>
      Object.entries<Json>(item).map(([method, op]) => `${method.toUpperCase()} ${path} ${op.operationId}`),
    );
    expect(operations).toEqual([
      "POST /v1/shelves LibraryService_CreateShelf",
      "GET /v1/shelves/{id} LibraryService_GetShelf",
      "POST /v1/shelves/{shelves}/books LibraryService_CreateBook",
      "GET /v1/shelves/{shelves}/books LibraryService_ListBooks",
      "GET /v1/shelves/{shelves}/books/{books} LibraryService_GetBook",
      "PATCH /v1/shelves/{shelves}/books/{books} LibraryService_UpdateBook",
      "DELETE /v1/shelves/{shelves}/books/{books} LibraryService_DeleteBook",
      "GET /v1/books LibraryService_ListBooks_2",
      "GET /v1/books:search LibraryService_SearchBooks",
      "POST /v1/shelves/{shelves}/books/{books}:checkout LibraryService_CheckoutBook",
      "GET /v1/shelves/{shelves}/books/{books}:title LibraryService_GetBookTitle",
      "GET /v1/shelves/{shelf_id}/events:watch LibraryService_WatchShelf",
      "POST /v1/books:follow LibraryService_FollowBooks",
    ]);
    expect(library.paths["/v1/shelves/{shelves}/books/{books}"].patch.parameters[1]).toEqual({
      name: "books",
      in: "path",
      required: true,
      description: "One segment of `book.name`, which the path sets to `shelves/*/books/*`.",
      schema: { type: "string" },
    });
    expect(Object.keys(library.paths["/v1/shelves/{shelves}/books"].post.responses)[0]).toBe("201");
  });

  it("documents every kind of query parameter, dotted into nested messages, and none the transcoder refuses", () => {
    const search = library.paths["/v1/books:search"].get.parameters;
    expect(search.map((p: Json) => p.name)).toEqual([
      "query", "labels", "genre", "genres", "limit", "min_pages", "min_rating", "available", "cursor", "published_after",
      "max_age", "read_mask", "min_year", "filter.author", "filter.year.min", "filter.year.max", "boost", "seed",
    ]);
    const schemaOf = (name: string) => search.find((p: Json) => p.name === name).schema;
    // Parameters take the request forms (without null): what the URL text may say.
    expect(schemaOf("genres")).toEqual({ type: "array", items: { $ref: "#/components/schemas/library.v1.Genre-Input" } });
    expect(schemaOf("min_pages")).toMatchObject({ type: ["integer", "string"], format: "int64", pattern: "^-?[0-9]+$" });
    expect(schemaOf("seed")).toMatchObject({ type: ["integer", "string"], format: "uint64", minimum: 0, pattern: "^[0-9]+$" });
    expect(schemaOf("min_year")).toEqual({ type: ["integer", "string"], format: "int32", pattern: "^-?[0-9]+$" });
    expect(schemaOf("cursor")).toEqual({ type: "string", contentEncoding: "base64", pattern: "^[A-Za-z0-9+/_-]*={0,2}$" });
    expect(schemaOf("filter.year.max")).toEqual({ type: ["integer", "string"], format: "int32", pattern: "^-?[0-9]+$" });
    expect(schemaOf("min_rating")).toMatchObject({ type: ["number", "string"], format: "double" });
    // A query parameter's FieldMask may use proto names; one in a body may not.
    expect(schemaOf("read_mask").pattern).toBeUndefined();
    const searchRequest = library.components.schemas["library.v1.SearchBooksRequest"];
    expect(searchRequest.properties.read_mask).toMatchObject({ type: "string" });
    expect(searchRequest.properties.min_rating).toMatchObject({ type: ["number", "string"], pattern: "^(NaN|-?Infinity)$" });
    expect(library.components.schemas["library.v1.SearchBooksRequest-Input"]).toBeUndefined();
    // Beside `body: "shelf"` the other fields are query parameters; the body is the field, in its request form.
    const createShelf = library.paths["/v1/shelves"].post;
    expect(createShelf.parameters.map((p: Json) => p.name)).toEqual(["request_tag"]);
    expect(createShelf.requestBody.content["application/json"].schema).toEqual({ $ref: "#/components/schemas/library.v1.Shelf-Input" });
    // The PATCH of {book.name} with body: "book" takes the Book in its Patch form; the answer is the Book.
    const updateBook = library.paths["/v1/shelves/{shelves}/books/{books}"].patch;
    expect(updateBook.requestBody.content["application/json"].schema).toEqual({ $ref: "#/components/schemas/library.v1.Book-Patch" });
    expect(updateBook.responses["200"].content["application/json"].schema).toEqual({ $ref: "#/components/schemas/library.v1.Book" });
    expect(library.components.schemas["library.v1.Book-Patch"].properties.pages.type).toEqual(["integer", "string", "null"]);
    expect(library.components.schemas["library.v1.Book"].properties.pages.type).toBe("string");
    // response_body: the HTTP body is one field of the response.
    expect(library.paths["/v1/shelves/{shelves}/books/{books}:title"].get.responses["200"].content["application/json"].schema).toEqual({
      type: "string",
    });
  });
});

describe("GET /docs", () => {
  it("serves a page whose every src and href is on this origin, each answering 200", async () => {
    const res = await fetch(`${server.url}/docs`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(res.headers.get("content-security-policy")).toBe(API_DOCS_CONTENT_SECURITY_POLICY);
    const html = await res.text();
    const urls = [...html.matchAll(/\s(?:src|href)="([^"]*)"/g)].map((m) => new URL(m[1]!, `${server.url}/docs`));
    expect(urls.map((u) => u.pathname)).toEqual([
      "/docs/swagger-ui.css",
      "/docs/index.css",
      "/docs/favicon-32x32.png",
      "/docs/favicon-16x16.png",
      "/docs/swagger-ui-bundle.js",
      "/docs/init.js",
    ]);
    for (const url of urls) {
      expect(url.origin).toBe(server.url);
      const asset = await fetch(url);
      expect(asset.status, url.pathname).toBe(200);
      expect((await asset.arrayBuffer()).byteLength, url.pathname).toBeGreaterThan(0);
    }
    // The script that starts Swagger UI loads the document from this origin too, and validates nowhere else.
    const init = await (await fetch(`${server.url}/docs/init.js`)).text();
    expect(init).toContain('url: "openapi.json"');
    expect(init).toContain("validatorUrl: null");
    expect(new URL("openapi.json", `${server.url}/docs`).href).toBe(`${server.url}/openapi.json`);
  });

  it("revalidates by ETag (304), redirects /docs/ to /docs, and leaves other methods to REST", async () => {
    const first = await fetch(`${server.url}/docs/swagger-ui-bundle.js`);
    await first.arrayBuffer();
    expect(first.headers.get("cache-control")).toBe("no-cache");
    const etag = first.headers.get("etag")!;
    const again = await fetch(`${server.url}/docs/swagger-ui-bundle.js`, { headers: { "if-none-match": etag } });
    expect(again.status).toBe(304);
    const slash = await fetch(`${server.url}/docs/`, { redirect: "manual" });
    expect(slash.status).toBe(301);
    expect(slash.headers.get("location")).toBe("../docs");
    const post = await requestJson(`${server.url}/openapi.json`, { method: "POST", body: {} });
    expect(post.status).toBe(404);
    expect(post.body).toEqual({ code: 5, message: "no route for /openapi.json", details: [] });
  });
});

describe("with API keys", () => {
  it("serves the document and the reference without a key, while the API refuses the call", async () => {
    const locked = await startTestServer();
    try {
      await insertTestKey(locked.store, DEFAULT_ORG_ID);
      for (const path of ["/openapi.json", "/docs", "/docs/swagger-ui-bundle.js", "/docs/init.js"]) {
        const res = await fetch(`${locked.url}${path}`);
        await res.arrayBuffer();
        expect(res.status, path).toBe(200);
      }
      expect((await requestJson(`${locked.url}/v1/sessions`)).status).toBe(401);
    } finally {
      await locked.close();
    }
  });
});

describe("/docs in Chromium", () => {
  const browser = useBrowser();

  it("renders every operation of the document with no error, blocked request or CSP violation", async () => {
    const { page, diagnostics } = browser.current();
    await page.goto(`${server.url}/docs`);
    await page.locator(".opblock").first().waitFor();
    const operations = await page.locator(".opblock").evaluateAll((blocks) =>
      blocks.map((block) => {
        const method = block.querySelector(".opblock-summary-method")?.textContent ?? "";
        const path = block.querySelector(".opblock-summary-path")?.getAttribute("data-path") ?? "";
        return `${method} ${path.replace(/\{[^}]+\}/g, "*")}`;
      }),
    );
    expect(operations.sort()).toEqual(operationsOf(doc));
    expect(await page.locator(".opblock-tag").allTextContents()).toEqual([
      expect.stringContaining("AgentService"),
      expect.stringContaining("SessionService"),
    ]);
    expect(diagnostics()).toBe("console errors: none\npage errors: none\nfailed requests: none\n");
  });
});
