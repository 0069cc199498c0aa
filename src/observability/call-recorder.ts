import { ConnectError } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import type { Logger } from "../log.js";
import type { CallObserver } from "../service/call-observer.js";
import { restCallKey } from "../rest/rest-call.js";
import { REQUEST_ID_HEADER } from "../net/request-id.js";
import type { ServerMetrics } from "./server-metrics.js";

/**
 * Records every call: its metrics, and one info line in the log with the request id,
 * procedure, protocol, code (`ok` or a Connect code name), duration in milliseconds and,
 * for a failure, the message the client got; for REST also the HTTP method, the route's
 * path template and the status. Never the request or response bodies, never the API key.
 */
export function recordCalls(metrics: ServerMetrics, logger: Logger): CallObserver {
  return (method, context) => {
    const started = performance.now();
    const call = metrics.call(method, context.protocolName);
    const single = method.methodKind === "unary" || method.methodKind === "client_streaming";
    if (single) metrics.inFlight.inc();
    return (error) => {
      const ms = performance.now() - started;
      const failure = error === undefined ? undefined : ConnectError.from(error);
      const code = failure ? codeToString(failure.code) : "ok";
      call.count(code);
      if (single) {
        metrics.inFlight.dec();
        call.duration.observe(ms / 1000);
      }
      const rest = context.values.get(restCallKey);
      logger.info(
        {
          requestId: context.requestHeader.get(REQUEST_ID_HEADER) ?? undefined,
          procedure: call.procedure,
          protocol: call.protocol,
          code,
          durationMs: Math.round(ms * 1000) / 1000,
          ...(rest ? { httpMethod: context.requestMethod, path: rest.pathTemplate, status: rest.httpStatus(error) } : {}),
          ...(failure ? { error: failure.rawMessage } : {}),
        },
        "request",
      );
    };
  };
}
