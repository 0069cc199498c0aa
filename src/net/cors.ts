import { Code, ConnectError, cors } from "@connectrpc/connect";
import type { NodeHandler, NodeResponse } from "../rest/node-types.js";
import { errorBody } from "../rest/errors.js";

/** Connect's methods (POST, GET) and the other verbs REST routes use. */
export const CORS_ALLOWED_METHODS = withoutRepeats([...cors.allowedMethods, "PATCH", "DELETE"]);

/** Connect's and gRPC-Web's request headers, the API key, and a caller's request id. */
export const CORS_ALLOWED_HEADERS = withoutRepeats([...cors.allowedHeaders, "Authorization", "X-Request-Id"]);

/**
 * Response headers a page may read beyond the CORS-safelisted ones: Connect's and
 * gRPC-Web's (grpc-status, grpc-message, grpc-status-details-bin, encodings), a REST
 * create's Location, a 401's WWW-Authenticate, and the request id.
 */
export const CORS_EXPOSED_HEADERS = withoutRepeats([
  ...cors.exposedHeaders,
  "Location",
  "WWW-Authenticate",
  "X-Request-Id",
]);

/** Seconds a browser may reuse a preflight: Chromium's ceiling (Firefox allows a day). */
export const CORS_MAX_AGE_SECONDS = 7200;

/**
 * Serves CORS for every protocol on the port, in front of routing, so that error answers
 * (400, 401, 404, 405, 413, 415…) carry the headers too: without them a page cannot read
 * why its call failed.
 *
 * - A request whose `Origin` is allowed gets `Access-Control-Allow-Origin` with that
 *   origin (echoed, never `*`, even when any origin is allowed) and the exposed headers.
 * - A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) never reaches
 *   routing: 204 with the allowed methods and headers for an allowed origin, else 403
 *   with the REST JSON error and no `Access-Control-*` header (also when no origin is
 *   configured, so that the message names the flag to set).
 * - Any other request from an origin not allowed is served as usual, without CORS
 *   headers: the browser then withholds the answer from the page, and same-origin pages
 *   and non-browser clients (which send no `Origin`, or one nobody checks) are unaffected.
 *
 * With at least one origin configured every answer carries `Vary: Origin`, also those to
 * requests without `Origin` (as the Fetch standard advises): the answer depends on it, and
 * a cache must not hand a copy made for one origin, or for none, to another.
 */
export function withCors(allowedOrigins: readonly string[], inner: NodeHandler): NodeHandler {
  const configured = allowedOrigins.length > 0;
  const anyOrigin = allowedOrigins.includes("*");
  const origins = new Set(allowedOrigins);
  // Node joins repeated Origin headers with ", ": such a value is no origin to echo.
  const isAllowed = (origin: string) => (anyOrigin ? !origin.includes(",") : origins.has(origin));
  const exposed = CORS_EXPOSED_HEADERS.join(", ");
  const methods = CORS_ALLOWED_METHODS.join(", ");
  const headers = CORS_ALLOWED_HEADERS.join(", ");

  return (req, res) => {
    const origin = req.headers.origin;
    if (origin === undefined) {
      if (configured) res.setHeader("Vary", "Origin");
      inner(req, res);
      return;
    }
    const allowed = configured && isAllowed(origin);
    if (req.method === "OPTIONS" && req.headers["access-control-request-method"] !== undefined) {
      answerPreflight(res, origin, allowed);
      return;
    }
    if (configured) res.setHeader("Vary", "Origin");
    if (allowed) {
      res.setHeader("Access-Control-Allow-Origin", origin);
      res.setHeader("Access-Control-Expose-Headers", exposed);
    }
    inner(req, res);
  };

  function answerPreflight(res: NodeResponse, origin: string, allowed: boolean): void {
    const vary = configured ? { Vary: "Origin, Access-Control-Request-Method, Access-Control-Request-Headers" } : {};
    if (allowed) {
      res.writeHead(204, {
        ...vary,
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": methods,
        "Access-Control-Allow-Headers": headers,
        "Access-Control-Max-Age": String(CORS_MAX_AGE_SECONDS),
      });
      res.end();
    } else {
      const error = new ConnectError(`origin ${origin} is not allowed: see --cors-origin`, Code.PermissionDenied);
      const text = JSON.stringify(errorBody(error));
      res.writeHead(403, { ...vary, "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text) });
      res.end(text);
    }
  }
}

/** The names once each, compared case-insensitively, in first-seen spelling. */
function withoutRepeats(names: readonly string[]): readonly string[] {
  const seen = new Set<string>();
  return names.filter((name) => !seen.has(name.toLowerCase()) && seen.add(name.toLowerCase()));
}
