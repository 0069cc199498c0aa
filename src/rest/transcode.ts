import { create, isMessage, toJson, type DescMethod, type DescService, type JsonObject, type JsonValue, type Message } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextValues, createHandlerContext, type ContextValues, type HandlerContext } from "@connectrpc/connect";
import { clientGone } from "../service/client-gone.js";
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
import { DEFAULT_STREAM_HEARTBEAT_MS, EventStreamWriter, streamFormatOf, type StreamFormat } from "./event-stream.js";

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
  /**
   * Told of a call whose client went away before its method was reached (an upload cut
   * short), with the `canceled` error it ends with, as the implementations' observer is
   * told of the calls that do reach them.
   */
  readonly onClientGone?: (method: DescMethod, context: HandlerContext, error: ConnectError) => void;
  /**
   * The context values a call starts with, as connect-node's `contextValues` option gives
   * them (the connection a request came on, for per-connection stream caps).
   */
  readonly contextValues?: (req: NodeRequest) => ContextValues;
  /** Aborted when the server begins to stop: open server streams end with its reason at once (unary calls run on). */
  readonly shutdownSignal?: AbortSignal;
  /** Longest a server stream goes without writing; DEFAULT_STREAM_HEARTBEAT_MS by default (tests shorten it). */
  readonly streamHeartbeatMs?: number;
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
    let context: ReturnType<typeof createHandlerContext> | undefined;
    // Aborted when the client leaves before its answer is written (a reset stream, a
    // closed connection), so that the method stops, as Connect's handlers do.
    const abandoned = new AbortController();
    // (writableEnded, not writableFinished: a reset HTTP/2 stream reads as finished.)
    res.once("close", () => {
      if (!res.writableEnded) abandoned.abort(closeReason(req));
    });
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
      // A server stream's framing is settled before anything else of the call is read.
      let format: StreamFormat | undefined;
      if (binding.streaming) {
        format = streamFormatOf(headerOf(req, "accept"));
        if (format === undefined) throw restErrors.notAcceptable(headerOf(req, "accept") ?? "");
      }
      const requestHeader = headersOf(req);
      // A stream answers 200 once it has started, whatever ends it.
      let streamStarted = false;
      const restCall: RestCall = binding.streaming
        ? { pathTemplate: route.restCall.pathTemplate, httpStatus: (error) => (streamStarted ? 200 : route!.restCall.httpStatus(error)) }
        : route.restCall;
      const contextValues = (options.contextValues?.(req) ?? createContextValues()).set(restCallKey, restCall);
      context = createHandlerContext({
        service: binding.service,
        method: binding.method,
        protocolName: "rest",
        requestMethod: method,
        url,
        requestHeader,
        requestSignal: abandoned.signal,
        // Only streams end when a stop begins; unary calls in flight are let finish (the drain).
        shutdownSignal: binding.streaming ? options.shutdownSignal : undefined,
        contextValues,
      });
      const request = create(binding.method.input);
      if (await (options.checkHeaders?.(requestHeader, contextValues) ?? true)) {
        let body: JsonValue | undefined;
        try {
          body = binding.body.kind !== "none" ? await readJsonBody(req, options.readMaxBytes) : undefined;
        } catch (err) {
          const gone = clientGone(context.signal);
          if (!gone) throw err;
          options.onClientGone?.(binding.method, context, gone);
          throw gone;
        }
        fields.mergeBody(request, body);
        if (queryStart !== -1) fields.mergeQuery(request, parseQueryString(url.slice(queryStart + 1)));
        fields.mergeLastEventId(request, headerOf(req, "last-event-id"));
        fields.mergePath(request, match.pathValues);
        fields.fillImpliedUpdateMask(request, body);
      }

      if (format !== undefined) {
        const writer = new EventStreamWriter(res, {
          format,
          fields: binding.eventStream,
          heartbeatMs: options.streamHeartbeatMs ?? DEFAULT_STREAM_HEARTBEAT_MS,
          beforeStart: () => {
            streamStarted = true;
            context!.responseHeader.forEach((value, key) => res.setHeader(key, value));
          },
        });
        try {
          await pipeStream(binding, route.invoke(request, context) as AsyncIterable<unknown>, writer, context.signal);
        } catch (err) {
          // Before the first write the error is an ordinary answer; after, the stream's last event.
          if (!writer.started || clientGone(context.signal)) throw err;
          writer.fail(errorBody(asConnectError(err, binding, options)));
        } finally {
          writer.stop();
        }
        return;
      }
      const result = await route.invoke(request, context);
      const response = isMessage(result, binding.method.output) ? result : create(binding.method.output, result as never);
      const location = route.locationOf?.(response);
      context.responseHeader.forEach((value, key) => res.setHeader(key, value));
      if (location !== undefined) res.setHeader("Location", location);
      writeJson(res, location !== undefined ? 201 : 200, bodyOf(binding, response));
    };
    serve().catch((err: unknown) => {
      // No one to answer: the call was observed (or told to onClientGone) as `canceled`.
      if (context && clientGone(context.signal)) {
        res.destroy();
        return;
      }
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
  return bodyOfJson(binding, toJson(binding.method.output, response, REST_JSON_WRITE) as JsonObject);
}

function bodyOfJson(binding: HttpBinding, json: JsonObject): JsonValue {
  if (!binding.responseBody) return json;
  return json[binding.responseBody.name] ?? null;
}

/**
 * Sends each message of a server stream as it comes, pulling the next only once the
 * writer can take it (back-pressure), and ends the stream when the method does. Stops
 * waiting on the method as soon as `signal` aborts, and then asks it to return: quietly
 * when the client left, else throwing the abort's reason (the server stopping).
 */
async function pipeStream(binding: HttpBinding, messages: AsyncIterable<unknown>, writer: EventStreamWriter, signal: AbortSignal): Promise<void> {
  const iterator = messages[Symbol.asyncIterator]();
  let finished = false;
  try {
    for (;;) {
      const next = await untilAborted(iterator.next(), signal);
      if (next === undefined) {
        // The client left: nobody to tell. The server ended the call (stopping, a revoked
        // key, a deadline): its reason is the stream's last event.
        if (clientGone(signal)) return;
        throw signal.reason instanceof ConnectError ? signal.reason : new ConnectError("the stream was ended", Code.Aborted);
      }
      if (next.done) {
        finished = true;
        writer.end();
        return;
      }
      const message = isMessage(next.value, binding.method.output) ? next.value : create(binding.method.output, next.value as never);
      const json = toJson(binding.method.output, message, REST_JSON_WRITE) as JsonObject;
      if (!(await writer.send(json, bodyOfJson(binding, json)))) return;
    }
  } catch (err) {
    finished = true;
    throw err;
  } finally {
    // A method left suspended (the client went, or stopped reading for good) is told to finish.
    if (!finished) void iterator.return?.().catch(() => undefined);
  }
}

/** `promise`'s result, or undefined as soon as `signal` aborts. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T | undefined> {
  if (signal.aborted) {
    promise.catch(() => undefined);
    return Promise.resolve(undefined);
  }
  return new Promise<T | undefined>((resolve, reject) => {
    const onAbort = () => {
      promise.catch(() => undefined);
      resolve(undefined);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => (signal.removeEventListener("abort", onAbort), resolve(value)),
      (error: unknown) => (signal.removeEventListener("abort", onAbort), reject(error)),
    );
  });
}

function asConnectError(err: unknown, binding: HttpBinding | undefined, options: RestHandlerOptions): ConnectError {
  if (err instanceof ConnectError) return err;
  options.onInternalError(err, binding);
  return new ConnectError("internal error", Code.Internal);
}

/** Why a request's answer could not be written: an HTTP/2 stream reset by the client names its code. */
function closeReason(req: NodeRequest): ConnectError {
  const rstCode = (req as { stream?: { rstCode?: number } }).stream?.rstCode;
  if (rstCode === undefined) return new ConnectError("it closed the connection", Code.Canceled);
  return new ConnectError(`it reset the HTTP/2 stream (${H2_ERROR_NAMES[rstCode] ?? `code ${rstCode}`})`, Code.Canceled);
}

const H2_ERROR_NAMES: Record<number, string> = {
  0x0: "NO_ERROR", 0x1: "PROTOCOL_ERROR", 0x2: "INTERNAL_ERROR", 0x3: "FLOW_CONTROL_ERROR", 0x5: "STREAM_CLOSED",
  0x7: "REFUSED_STREAM", 0x8: "CANCEL", 0xb: "ENHANCE_YOUR_CALM",
};

function headerOf(req: NodeRequest, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(", ") : value;
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
