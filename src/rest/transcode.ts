import { create, isMessage, toJson, type DescService, type JsonObject, type JsonValue, type Message } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextValues, createHandlerContext, type ContextValues } from "@connectrpc/connect";
import { HttpRuleError, type HttpBinding } from "./http-rule.js";
import { routeTableOf } from "./route-table.js";
import { createdLocations, type LocationOf } from "./created-location.js";
import { RequestFields } from "./request-fields.js";
import { readJsonBody } from "./request-body.js";
import { errorBody, httpStatusOfError, restErrors } from "./errors.js";
import { PathDecodeError } from "./path-template.js";
import { parseQueryString } from "./query-string.js";
import type { NodeHandler, NodeRequest, NodeResponse } from "./node-types.js";
import { restCallKey, type RestCall } from "./rest-call.js";

/** A service and the object implementing its methods, as given to Connect's router. */
export interface RestService {
  readonly service: DescService;
  /** Methods keyed by their localName, each `(request, context) => response`. */
  readonly implementation: object;
}

export interface RestHandlerOptions {
  /** Largest request body accepted, in bytes; larger is 413. */
  readonly readMaxBytes: number;
  /** Told of every error that is not a ConnectError; the client only sees "internal error". */
  readonly onInternalError: (error: unknown, binding: HttpBinding | undefined) => void;
  /**
   * Runs on every matched call before its body is read, with its headers and context
   * values; false: neither body nor query is read, and the method is called with an empty
   * request (its own checks then refuse the call). Authentication goes here, so that a
   * client without a key cannot make the server wait for a body.
   */
  readonly checkHeaders?: (headers: Headers, values: ContextValues) => Promise<boolean>;
}

type UnaryMethod = (request: Message, context: ReturnType<typeof createHandlerContext>) => unknown;

interface CompiledRoute {
  readonly binding: HttpBinding;
  readonly invoke: UnaryMethod;
  readonly fields: RequestFields;
  readonly locationOf: LocationOf | undefined;
  readonly restCall: RestCall;
}

/** Proto3 JSON as REST answers it: proto field names, and every field without presence (the OpenAPI document says so too). */
export const REST_JSON_WRITE = { useProtoFieldName: true, alwaysEmitImplicit: true } as const;

/**
 * A Node request handler serving the google.api.http bindings of the given services by
 * calling the same implementations that Connect serves. It knows nothing of any
 * particular service: routes, field names and 201s all come from the descriptors. Throws
 * HttpRuleError at construction for an annotation it cannot serve.
 */
export function createRestHandler(services: readonly RestService[], options: RestHandlerOptions): NodeHandler {
  const table = routeTableOf(services.map((s) => s.service));
  const bindings = table.all();
  const locations = createdLocations(bindings);
  const routes = new Map<HttpBinding, CompiledRoute>();
  for (const binding of bindings) {
    const implementation = services.find((s) => s.service === binding.service)!.implementation as Record<string, unknown>;
    const invoke = implementation[binding.method.localName];
    if (typeof invoke !== "function") throw new HttpRuleError(binding.method, "binding has no implementation");
    const locationOf = locations.get(binding);
    routes.set(binding, {
      binding,
      invoke: invoke.bind(implementation) as UnaryMethod,
      fields: new RequestFields(binding),
      locationOf,
      restCall: {
        pathTemplate: binding.template.source,
        httpStatus: (error) =>
          error === undefined ? (locationOf ? 201 : 200) : error instanceof ConnectError ? httpStatusOfError(error) : 500,
      },
    });
  }

  return (req, res) => {
    let route: CompiledRoute | undefined;
    const serve = async () => {
      const url = req.url ?? "/";
      const queryStart = url.indexOf("?");
      const path = queryStart === -1 ? url : url.slice(0, queryStart);
      const method = req.method ?? "GET";
      let match;
      try {
        match = table.match(method, path);
      } catch (err) {
        if (err instanceof PathDecodeError) throw restErrors.invalidPath(err.message);
        throw err;
      }
      if (match.kind === "not-found") throw restErrors.notFound(path);
      if (match.kind === "method-not-allowed") {
        res.setHeader("Allow", match.allow.join(", "));
        throw restErrors.methodNotAllowed(method, path);
      }
      route = routes.get(match.binding)!;
      const { binding, fields } = route;
      const request = create(binding.method.input);
      const requestHeader = headersOf(req);
      const contextValues = createContextValues().set(restCallKey, route.restCall);
      if (await (options.checkHeaders?.(requestHeader, contextValues) ?? true)) {
        const body = binding.body.kind !== "none" ? await readJsonBody(req, options.readMaxBytes) : undefined;
        fields.mergeBody(request, body);
        if (queryStart !== -1) fields.mergeQuery(request, parseQueryString(url.slice(queryStart + 1)));
        fields.mergePath(request, match.pathValues);
        fields.fillImpliedUpdateMask(request, body);
      }

      const context = createHandlerContext({
        service: binding.service,
        method: binding.method,
        protocolName: "rest",
        requestMethod: method,
        url,
        requestHeader,
        contextValues,
      });
      const result = await route.invoke(request, context);
      const response = isMessage(result, binding.method.output) ? result : create(binding.method.output, result as never);
      const location = route.locationOf?.(response);
      context.responseHeader.forEach((value, key) => res.setHeader(key, value));
      if (location !== undefined) res.setHeader("Location", location);
      writeJson(res, location !== undefined ? 201 : 200, bodyOf(binding, response));
    };
    serve().catch((err: unknown) => {
      const error = asConnectError(err, route?.binding, options);
      try {
        if (res.headersSent) {
          res.destroy();
          return;
        }
        // Error metadata travels as headers, as Connect sends it (WWW-Authenticate on 401).
        error.metadata.forEach((value, key) => res.setHeader(key, value));
        writeJson(res, httpStatusOfError(error), errorBody(error));
      } catch (writeError) {
        options.onInternalError(writeError, route?.binding);
        res.destroy();
      }
    });
  };
}

function bodyOf(binding: HttpBinding, response: Message): JsonValue {
  const json = toJson(binding.method.output, response, REST_JSON_WRITE) as JsonObject;
  if (!binding.responseBody) return json;
  return json[binding.responseBody.name] ?? null;
}

function asConnectError(err: unknown, binding: HttpBinding | undefined, options: RestHandlerOptions): ConnectError {
  if (err instanceof ConnectError) return err;
  options.onInternalError(err, binding);
  return new ConnectError("internal error", Code.Internal);
}

function headersOf(req: NodeRequest): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (name.startsWith(":") || value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) headers.append(name, v);
    else headers.append(name, value);
  }
  return headers;
}

function writeJson(res: NodeResponse, status: number, body: JsonValue): void {
  const text = JSON.stringify(body);
  res.setHeader("Content-Type", "application/json");
  res.setHeader("Content-Length", Buffer.byteLength(text));
  res.statusCode = status;
  res.end(text);
}
