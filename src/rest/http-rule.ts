import { getOption, hasOption, type DescField, type DescMethod, type DescService } from "@bufbuild/protobuf";
import { http } from "../../gen/google/api/annotations_pb.js";
import type { HttpRule } from "../../gen/google/api/http_pb.js";
import { parsePathTemplate, PathTemplateSyntaxError, type PathTemplate } from "./path-template.js";
import { FieldPathError, resolveFieldPath, textSettable, type FieldChain } from "./field-path.js";
import { eventStreamFieldsOf, type EventStreamFields } from "./event-stream-rule.js";

/** How the HTTP request body maps onto the request message. */
export type BodyMapping =
  | { readonly kind: "none" }
  | { readonly kind: "whole" }
  | { readonly kind: "field"; readonly field: DescField };

/** One google.api.http binding of a method, checked against the method's messages. */
export interface HttpBinding {
  readonly service: DescService;
  readonly method: DescMethod;
  /** GET, POST, PUT, PATCH, DELETE, or a custom pattern's kind in upper case. */
  readonly httpMethod: string;
  readonly template: PathTemplate;
  /** Each template variable's field chain, keyed by its dotted path. */
  readonly pathFields: ReadonlyMap<string, FieldChain>;
  readonly body: BodyMapping;
  /** The response field that is the whole HTTP response body, or undefined for the message. */
  readonly responseBody: DescField | undefined;
  /** Whether the method is server-streaming: answered as SSE or NDJSON (see event-stream.ts). */
  readonly streaming: boolean;
  /** The method's (sessions.http.v1.event_stream) option, for SSE framing; undefined without it. */
  readonly eventStream: EventStreamFields | undefined;
}

/** A google.api.http option that cannot be served; names the method. */
export class HttpRuleError extends Error {
  constructor(method: DescMethod, problem: string, option = "google.api.http") {
    super(`${method.parent.typeName}.${method.name}: ${option} ${problem}`);
    this.name = "HttpRuleError";
  }
}

/**
 * Reads the google.api.http bindings of every method of a service, additional_bindings
 * included. Methods without the option have no binding. Throws HttpRuleError at the first
 * rule that cannot be served, so a bad annotation stops the server at start-up.
 */
export function httpBindingsOf(service: DescService): HttpBinding[] {
  const bindings: HttpBinding[] = [];
  for (const method of service.methods) {
    // hasOption, not an empty pattern: a rule set without a pattern (say, only
    // additional_bindings) is a mistake to report, not a method to leave off REST.
    if (!hasOption(method, http)) continue;
    const rule = getOption(method, http);
    if (method.methodKind !== "unary" && method.methodKind !== "server_streaming") {
      throw new HttpRuleError(method, "is only supported on unary and server-streaming methods");
    }
    bindings.push(bindingOf(service, method, rule));
    for (const extra of rule.additionalBindings) {
      if (extra.additionalBindings.length > 0) {
        throw new HttpRuleError(method, "additional_bindings cannot nest additional_bindings");
      }
      bindings.push(bindingOf(service, method, extra));
    }
  }
  return bindings;
}

function bindingOf(service: DescService, method: DescMethod, rule: HttpRule): HttpBinding {
  const { httpMethod, path } = patternOf(method, rule);
  let template: PathTemplate;
  try {
    template = parsePathTemplate(path);
  } catch (err) {
    if (err instanceof PathTemplateSyntaxError) throw new HttpRuleError(method, err.message);
    throw err;
  }
  const pathFields = new Map<string, FieldChain>();
  for (const variable of template.variables) {
    const chain = resolveChain(method, variable.fieldPath, "path variable");
    if (!textSettable(chain, false)) {
      throw new HttpRuleError(method, `path variable "${variable.fieldPath.join(".")}" must name a singular scalar or enum field`);
    }
    pathFields.set(variable.fieldPath.join("."), chain);
  }
  const body = bodyOf(method, rule.body);
  if (body.kind !== "none" && (httpMethod === "GET" || httpMethod === "DELETE")) {
    throw new HttpRuleError(method, `${httpMethod} cannot have a body`);
  }
  let responseBody: DescField | undefined;
  if (rule.responseBody !== "") {
    responseBody = method.output.fields.find((f) => f.name === rule.responseBody);
    if (!responseBody) {
      throw new HttpRuleError(method, `response_body "${rule.responseBody}" is not a field of ${method.output.typeName}`);
    }
  }
  const streaming = method.methodKind === "server_streaming";
  const eventStream = eventStreamFieldsOf(method, (problem) => new HttpRuleError(method, problem, "(sessions.http.v1.event_stream)"));
  return { service, method, httpMethod, template, pathFields, body, responseBody, streaming, eventStream };
}

function patternOf(method: DescMethod, rule: HttpRule): { httpMethod: string; path: string } {
  switch (rule.pattern.case) {
    case "get":
    case "put":
    case "post":
    case "delete":
    case "patch":
      return { httpMethod: rule.pattern.case.toUpperCase(), path: rule.pattern.value };
    case "custom":
      if (!/^[A-Za-z]+$/.test(rule.pattern.value.kind)) {
        throw new HttpRuleError(method, `custom kind "${rule.pattern.value.kind}" is not an HTTP method name`);
      }
      return { httpMethod: rule.pattern.value.kind.toUpperCase(), path: rule.pattern.value.path };
    default:
      throw new HttpRuleError(method, "binding has no pattern");
  }
}

function bodyOf(method: DescMethod, body: string): BodyMapping {
  if (body === "") return { kind: "none" };
  if (body === "*") return { kind: "whole" };
  const field = method.input.fields.find((f) => f.name === body);
  if (!field) throw new HttpRuleError(method, `body "${body}" is not a field of ${method.input.typeName}`);
  return { kind: "field", field };
}

function resolveChain(method: DescMethod, path: readonly string[], what: string): FieldChain {
  try {
    return resolveFieldPath(method.input, path, false);
  } catch (err) {
    if (err instanceof FieldPathError) throw new HttpRuleError(method, `${what} "${path.join(".")}": ${err.message}`);
    throw err;
  }
}
