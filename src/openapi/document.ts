import { STATUS_CODES } from "node:http";
import type { DescMessage, DescService } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import type { HttpBinding } from "../rest/http-rule.js";
import type { TemplateVariable } from "../rest/path-template.js";
import { shapeOf, type RouteTable } from "../rest/route-table.js";
import { queryParameterChain } from "../rest/request-fields.js";
import { createdResourceReaders } from "../rest/created-location.js";
import { updatedResource } from "../rest/implied-update-mask.js";
import { httpStatusOf, httpStatusOfError, restErrors } from "../rest/errors.js";
import { REST_JSON_WRITE } from "../rest/transcode.js";
import { NDJSON_MEDIA_TYPE, SSE_MEDIA_TYPE } from "../rest/event-stream.js";
import { MessageSchemas, type JsonSchema } from "./schema.js";
import type { ProtoComments } from "./proto-comments.js";

/** An OpenAPI document as plain JSON. */
export type OpenApiDocument = { readonly openapi: string; readonly [key: string]: unknown };

export interface DocumentOptions {
  readonly info: { readonly title: string; readonly version: string; readonly description?: string };
  /** `components.securitySchemes`, by name. */
  readonly securitySchemes?: Readonly<Record<string, JsonSchema>>;
  /** The requirement of every operation: alternatives, `{}` meaning none needed. */
  readonly security?: readonly Readonly<Record<string, readonly string[]>>[];
}

/** A binding that OpenAPI cannot describe; names the method. */
export class OpenApiError extends Error {
  constructor(binding: HttpBinding, problem: string) {
    super(`${binding.method.parent.typeName}.${binding.method.name}: ${binding.httpMethod} ${binding.template.source} ${problem}`);
    this.name = "OpenApiError";
  }
}

/** The component describing every REST error body; src/rest/errors.ts writes it. */
const ERROR_SCHEMA = "google.rpc.Status";
const JSON_TYPE = "application/json";
const PATH_ITEM_METHODS = new Set(["get", "put", "post", "delete", "options", "head", "patch", "trace"]);
const CODES = Object.values(Code).filter((v): v is Code => typeof v === "number");

/**
 * Describes the routes of a route table — the one the REST transcoder serves — as an
 * OpenAPI 3.1 document: a path item per path (template variables become `{name}`, see
 * PathNames), an operation per binding with its path and query parameters, request body,
 * response (201 with Location for the creates that answer so) and error responses, and
 * the messages in REST's JSON (see MessageSchemas): requests in the forms the server reads,
 * responses in the one it writes. Descriptions are the proto comments.
 * Operations are in proto declaration order, services by full name, components by name,
 * so the same descriptors always give the same document. Throws OpenApiError for a
 * binding that OpenAPI cannot express.
 */
export function openApiDocument(table: RouteTable, comments: ProtoComments, options: DocumentOptions): OpenApiDocument {
  const bindings = inDeclarationOrder(table.all());
  const schemas = new MessageSchemas(comments, REST_JSON_WRITE);
  const names = new PathNames(bindings);
  // In the table's order, as the transcoder looks them up: the first matching GET wins.
  const creates = createdResourceReaders(table.all());
  const services = [...new Set(bindings.map((b) => b.service))];
  const tagOf = tagNames(services);
  const operationIds = new Map<string, number>();
  const errorResponses = new Map<number, Set<Code>>();

  const paths: Record<string, Record<string, unknown>> = {};
  for (const binding of bindings) {
    const method = binding.httpMethod.toLowerCase();
    if (!PATH_ITEM_METHODS.has(method)) throw new OpenApiError(binding, "uses a method OpenAPI has no operation for");
    const path = names.pathOf(binding);
    const operation: Record<string, unknown> = { tags: [tagOf.get(binding.service)!] };
    const comment = comments.of(binding.method);
    if (comment !== undefined) {
      const summary = summaryOf(comment);
      operation.summary = summary;
      if (comment.replace(/\s+/g, " ") !== summary) operation.description = comment;
    }
    operation.operationId = operationIdOf(binding, operationIds);
    const parameters = [...pathParameters(binding, names, schemas), ...queryParameters(binding, schemas), ...headerParameters(binding, schemas)];
    if (parameters.length > 0) operation.parameters = parameters;
    const body = requestBody(binding, schemas);
    if (body) operation.requestBody = body;
    const responses: Record<string, unknown> = successResponse(binding, creates.get(binding), names, schemas);
    for (const [status, codes] of errorStatuses(binding)) {
      responses[String(status)] = { $ref: `#/components/responses/Error${status}` };
      const all = errorResponses.get(status) ?? new Set();
      for (const code of codes) all.add(code);
      errorResponses.set(status, all);
    }
    operation.responses = responses;
    if (binding.method.deprecated) operation.deprecated = true;
    (paths[path] ??= {})[method] = operation;
  }

  const messageSchemas = schemas.components();
  if (ERROR_SCHEMA in messageSchemas) throw new Error(`a message named ${ERROR_SCHEMA} clashes with the error schema`);
  const components: Record<string, unknown> = {
    schemas: sortedByKey({ ...messageSchemas, [ERROR_SCHEMA]: errorSchema(schemas) }),
    responses: Object.fromEntries(
      [...errorResponses].sort(([a], [b]) => a - b).map(([status, codes]) => [`Error${status}`, errorResponse(status, codes)]),
    ),
  };
  if (options.securitySchemes) components.securitySchemes = options.securitySchemes;

  const document: Record<string, unknown> = { openapi: "3.1.0", info: options.info };
  if (options.security) document.security = options.security;
  document.tags = services.map((service) => {
    const tag: Record<string, unknown> = { name: tagOf.get(service)! };
    const description = comments.of(service);
    if (description !== undefined) tag.description = description;
    return tag;
  });
  document.paths = paths;
  document.components = components;
  return document as OpenApiDocument;
}

/** A `*` of a template as an OpenAPI path parameter: the segment it stands for and the variable it belongs to. */
interface PathSlot {
  readonly segment: number;
  readonly variable: TemplateVariable;
  /** Whether the variable is this one segment (`{id}`), rather than a part of a longer one (`{name=shelves/*}`). */
  readonly whole: boolean;
}

/**
 * OpenAPI path names. OpenAPI path parameters are single segments, so each `*` of a
 * variable is one: a one-segment variable is named by the last part of its field path
 * (`session.id` → `id`), a `*` of a longer one by the literal before it (`{name=shelves/*}`
 * → `shelves/{shelves}`). A name that would repeat in a template is prefixed with the field
 * path joined by `_`. Paths differing only in parameter names are one path in OpenAPI, so
 * the templates of one shape (`/v1/sessions/{id}` and `/v1/sessions/{session.id}`) take
 * the names of the first of them. `**`, and `*` outside a variable, have no counterpart:
 * OpenApiError.
 */
class PathNames {
  private readonly byShape = new Map<string, readonly string[]>();

  constructor(bindings: readonly HttpBinding[]) {
    for (const binding of bindings) {
      const slots = slotsOf(binding);
      const shape = shapeOf(binding.template);
      if (this.byShape.has(shape)) continue;
      const candidates = slots.map((slot) => candidateName(binding, slot));
      const names = slots.map((slot, i) => {
        if (candidates.filter((c) => c === candidates[i]).length === 1) return candidates[i]!;
        const field = slot.variable.fieldPath.join("_");
        return slot.whole ? field : `${field}_${candidates[i]}`;
      });
      if (new Set(names).size !== names.length) throw new OpenApiError(binding, "has path parameters that cannot be told apart by name");
      this.byShape.set(shape, names);
    }
  }

  /** The binding's path parameters, in path order, with their names. */
  parameters(binding: HttpBinding): { slot: PathSlot; name: string }[] {
    const names = this.byShape.get(shapeOf(binding.template))!;
    return slotsOf(binding).map((slot, i) => ({ slot, name: names[i]! }));
  }

  /** The OpenAPI path of a binding: `/v1/sessions/{id}:start`. */
  pathOf(binding: HttpBinding): string {
    const { segments, verb } = binding.template;
    const parts: string[] = segments.map((s) => (s.kind === "literal" ? s.value : ""));
    for (const { slot, name } of this.parameters(binding)) parts[slot.segment] = `{${name}}`;
    return "/" + parts.join("/") + (verb !== undefined ? ":" + verb : "");
  }
}

function slotsOf(binding: HttpBinding): PathSlot[] {
  const { segments, variables } = binding.template;
  const slots: PathSlot[] = [];
  segments.forEach((segment, i) => {
    if (segment.kind === "literal") return;
    const variable = variables.find((v) => i >= v.start && (v.end === undefined || i < v.end));
    if (segment.kind === "deep-wildcard") {
      throw new OpenApiError(binding, "cannot be described in OpenAPI: a path parameter cannot span several segments (**)");
    }
    if (!variable) throw new OpenApiError(binding, "cannot be described in OpenAPI: a wildcard outside a variable");
    slots.push({ segment: i, variable, whole: variable.end === variable.start + 1 });
  });
  return slots;
}

function candidateName(binding: HttpBinding, slot: PathSlot): string {
  const { fieldPath, start } = slot.variable;
  const last = fieldPath[fieldPath.length - 1]!;
  if (slot.whole) return last;
  const before = binding.template.segments[slot.segment - 1];
  if (slot.segment > start && before?.kind === "literal") return before.value;
  return `${last}_${slot.segment - start + 1}`;
}

/** Services by full name, then each service's methods as declared, then each method's bindings as the table has them. */
function inDeclarationOrder(bindings: readonly HttpBinding[]): HttpBinding[] {
  const position = new Map(bindings.map((b, i) => [b, i]));
  return [...bindings].sort(
    (a, b) =>
      compareText(a.service.typeName, b.service.typeName) ||
      a.service.methods.indexOf(a.method) - b.service.methods.indexOf(b.method) ||
      position.get(a)! - position.get(b)!,
  );
}

/** A tag per service: its simple name, or its full name where two services share the simple one. */
function tagNames(services: readonly DescService[]): Map<DescService, string> {
  return new Map(
    services.map((s) => [s, services.filter((other) => other.name === s.name).length > 1 ? s.typeName : s.name]),
  );
}

/** `SessionService_CreateSession`; further bindings of a method add `_2`, `_3`, … */
function operationIdOf(binding: HttpBinding, used: Map<string, number>): string {
  const base = `${binding.service.name}_${binding.method.name}`;
  const count = (used.get(base) ?? 0) + 1;
  used.set(base, count);
  return count === 1 ? base : `${base}_${count}`;
}

/** The comment's first sentence, on one line. */
function summaryOf(comment: string): string {
  const paragraph = comment.split(/\n\s*\n/)[0]!.replace(/\s+/g, " ").trim();
  return /^.*?[.!?](?=\s|$)/.exec(paragraph)?.[0] ?? paragraph;
}

function pathParameters(binding: HttpBinding, names: PathNames, schemas: MessageSchemas): JsonSchema[] {
  return names.parameters(binding).map(({ slot, name }) => {
    const fieldPath = slot.variable.fieldPath.join(".");
    const chain = binding.pathFields.get(fieldPath)!;
    const leaf = chain[chain.length - 1]!;
    const parameter: JsonSchema = { name, in: "path", required: true };
    let sets: string | undefined;
    if (!slot.whole) {
      const pattern = binding.template.segments
        .slice(slot.variable.start, slot.variable.end)
        .map((segment) => (segment.kind === "literal" ? segment.value : "*"))
        .join("/");
      sets = `One segment of \`${fieldPath}\`, which the path sets to \`${pattern}\`.`;
    } else if (name !== fieldPath) {
      sets = `Sets \`${fieldPath}\`.`;
    }
    const description = [schemas.describeField(leaf, "parameter"), sets].filter((text) => text !== undefined).join("\n\n");
    if (description !== "") parameter.description = description;
    parameter.schema = slot.whole ? schemas.value(leaf, "parameter") : { type: "string" };
    return parameter;
  });
}

/**
 * Every name the transcoder accepts as a query parameter (queryParameterChain decides),
 * in proto names, nested fields dotted (`a.b`); a repeated field repeats the parameter.
 * None with `body: "*"`: http.proto leaves every field not in the path to the body.
 */
function queryParameters(binding: HttpBinding, schemas: MessageSchemas): JsonSchema[] {
  if (binding.body.kind === "whole") return [];
  const parameters: JsonSchema[] = [];
  const visit = (message: DescMessage, prefix: readonly string[], enclosing: readonly DescMessage[]) => {
    for (const field of message.fields) {
      const path = [...prefix, field.name];
      const chain = queryParameterChain(binding, path.join("."));
      if (typeof chain !== "string") {
        const leaf = chain[chain.length - 1]!;
        const parameter: JsonSchema = { name: path.join("."), in: "query" };
        const description = schemas.describeField(leaf, "parameter");
        if (description !== undefined) parameter.description = description;
        parameter.schema = schemas.value(leaf, "parameter");
        if (leaf.deprecated) parameter.deprecated = true;
        parameters.push(parameter);
      } else if (field.fieldKind === "message" && !enclosing.includes(field.message)) {
        visit(field.message, path, [...enclosing, field.message]);
      }
    }
  };
  visit(binding.method.input, [], [binding.method.input]);
  return parameters;
}

/**
 * The body as the binding maps it, in the request form; the resource of a PATCH in its
 * Patch form. With `body: "*"` the fields bound to the path are left out (the path's value
 * would win); when that is every field, the body is optional and may be `{}`.
 */
function requestBody(binding: HttpBinding, schemas: MessageSchemas): JsonSchema | undefined {
  const { body } = binding;
  if (body.kind === "none") return undefined;
  const resource = updatedResource(binding);
  if (body.kind === "field") {
    const requestBody: JsonSchema = {};
    const description = schemas.describeField(body.field, "request");
    if (description !== undefined) requestBody.description = description;
    const schema = body.field === resource ? schemas.partialMessage(resource.message) : schemas.value(body.field, "request");
    requestBody.content = { [JSON_TYPE]: { schema } };
    if (schemas.isRequired(body.field)) requestBody.required = true;
    return requestBody;
  }
  const input = binding.method.input;
  const fields = input.fields.filter((f) => !binding.pathFields.has(f.name));
  const schema =
    fields.length === input.fields.length && !resource
      ? schemas.message(input, "request")
      : schemas.object(input, fields, "request", { partialField: resource });
  const requestBody: JsonSchema = {};
  if (fields.length === 0) requestBody.description = "Every field is in the path: the body may be left out, or be `{}`.";
  requestBody.content = { [JSON_TYPE]: { schema } };
  if (fields.some((f) => schemas.isRequired(f))) requestBody.required = true;
  return requestBody;
}

/** Last-Event-ID, for a server stream whose event_stream option names a resume field. */
function headerParameters(binding: HttpBinding, schemas: MessageSchemas): JsonSchema[] {
  const resume = binding.eventStream?.resume;
  if (!resume) return [];
  return [
    {
      name: "Last-Event-ID",
      in: "header",
      description:
        `Resume the stream after this event: the \`id:\` of the last Server-Sent Event received (EventSource sends it when it ` +
        `reconnects). Sets \`${resume.name}\`, winning over the query parameter; a value \`${resume.name}\` cannot take is a 400.`,
      schema: schemas.value(resume, "parameter"),
    },
  ];
}

/** The 200 of a server stream: its messages as Server-Sent Events or as newline-delimited JSON, as Accept asks. */
function streamResponse(binding: HttpBinding, messageSchema: JsonSchema): Record<string, unknown> {
  const { eventStream } = binding;
  const lines = [
    eventStream?.id && `\`id:\` the message's \`${eventStream.id.name}\``,
    eventStream?.type && `\`event:\` its \`${eventStream.type.name}\`${eventStream.type.fieldKind === "enum" ? " (by name)" : ""}`,
    "`data:` the message as JSON on one line",
  ].filter((line): line is string => typeof line === "string");
  return {
    "200": {
      description:
        `${STATUS_CODES[200]}: a stream of messages, each written as it comes. With \`Accept: ${SSE_MEDIA_TYPE}\`, one Server-Sent ` +
        `Event per message (${lines.join(", ")}); an error after the first message is a last \`event: error\` whose data is the ` +
        `google.rpc.Status JSON. Otherwise newline-delimited JSON, one message per line; an error after the first message is a last ` +
        `line \`{"error": <google.rpc.Status>}\`. A \`:\` comment (SSE) or an empty line (NDJSON) is sent every 15 s (by ` +
        `default) to keep the connection alive. An error before the first message is an ordinary error answer.`,
      headers: {
        "Cache-Control": { description: "Always `no-cache`.", schema: { type: "string", const: "no-cache" } },
      },
      content: {
        // OpenAPI 3.1 has no schema for the items of a sequence (3.2's itemSchema): the body is
        // text, and each line's schema is named in words (Prism checks an NDJSON body as a string).
        [SSE_MEDIA_TYPE]: { schema: { type: "string", description: `Server-Sent Events; each \`data:\` is ${itemOf(messageSchema)}.` } },
        [NDJSON_MEDIA_TYPE]: { schema: { type: "string", description: `Newline-delimited JSON; each line is ${itemOf(messageSchema)}.` } },
      },
    },
  };
}

/** The schema of one streamed message, in words: its component's name, or its type. */
function itemOf(schema: JsonSchema): string {
  const ref = (schema as { $ref?: unknown }).$ref;
  if (typeof ref === "string") return `a \`${ref.slice(ref.lastIndexOf("/") + 1)}\` (${ref})`;
  return `JSON of type ${JSON.stringify((schema as { type?: unknown }).type ?? "any")}`;
}

function successResponse(
  binding: HttpBinding,
  readBack: HttpBinding | undefined,
  names: PathNames,
  schemas: MessageSchemas,
): Record<string, unknown> {
  const schema = binding.responseBody ? schemas.value(binding.responseBody, "response") : schemas.message(binding.method.output, "response");
  if (binding.streaming) return streamResponse(binding, schema);
  const content = { [JSON_TYPE]: { schema } };
  if (!readBack) return { "200": { description: STATUS_CODES[200], content } };
  return {
    "201": {
      description: `${STATUS_CODES[201]}: Location names the new resource.`,
      headers: {
        Location: {
          description: `The path of the new resource, which \`${readBack.httpMethod} ${names.pathOf(readBack)}\` reads.`,
          required: true,
          schema: { type: "string" },
        },
      },
      content,
    },
  };
}

/**
 * The HTTP statuses a binding can answer errors with, and their codes: every code's
 * (httpStatusOf), and where a body is read, the HTTP edge's own 413 and 415. Not 499
 * (`canceled`): only a client that has gone away causes it, and it reads no answer.
 */
function errorStatuses(binding: HttpBinding): Map<number, Code[]> {
  const byStatus = new Map<number, Code[]>();
  const add = (status: number, code: Code) => {
    const codes = byStatus.get(status) ?? [];
    if (!codes.includes(code)) codes.push(code);
    byStatus.set(status, codes);
  };
  for (const code of CODES) if (code !== Code.Canceled) add(httpStatusOf(code), code);
  if (binding.body.kind !== "none") {
    for (const error of [restErrors.payloadTooLarge(0), restErrors.unsupportedMediaType("")]) add(httpStatusOfError(error), error.code);
  }
  if (binding.streaming) {
    const error = restErrors.notAcceptable("");
    add(httpStatusOfError(error), error.code);
  }
  return new Map([...byStatus].sort(([a], [b]) => a - b));
}

function errorResponse(status: number, codes: ReadonlySet<Code>): JsonSchema {
  const names = [...codes].sort((a, b) => a - b).map((code) => `\`${codeToString(code)}\` (${code})`);
  return {
    description: `${STATUS_CODES[status]}: ${names.join(", ")}.`,
    content: { [JSON_TYPE]: { schema: { $ref: `#/components/schemas/${ERROR_SCHEMA}` } } },
  };
}

function errorSchema(schemas: MessageSchemas): JsonSchema {
  return {
    type: "object",
    description:
      "The body of every REST error: the JSON form of `google.rpc.Status`, in proto field names, with the same code and " +
      "message every protocol carries. Validation errors list each field in a `google.rpc.BadRequest` detail " +
      "(`field_violations`, each with `field` and `description`).",
    required: ["code", "message", "details"],
    properties: {
      code: {
        type: "integer",
        format: "int32",
        enum: CODES,
        description: "The google.rpc.Code: " + CODES.map((code) => `${code} \`${codeToString(code)}\``).join(", ") + ".",
      },
      message: { type: "string", description: "What went wrong, for people to read." },
      details: {
        type: "array",
        items: schemas.message(AnySchema, "response"),
        description: "Messages with more detail, each naming its type in `@type` (`type.googleapis.com/google.rpc.BadRequest`).",
      },
    },
  };
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function sortedByKey<T>(record: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => compareText(a, b)));
}
