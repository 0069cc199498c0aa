import { Code, ConnectError, createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { AgentService } from "../../gen/sessions/v1/agent_service_pb.js";
import { SessionService } from "../../gen/sessions/v1/session_service_pb.js";
import { BadRequestSchema } from "../../gen/google/rpc/error_details_pb.js";
import { storedApiKey } from "./api-key-store.js";

export type TransportName = "connect" | "grpc-web";

/** How the console reaches the API, read from the page's query string. */
export interface ApiSettings {
  readonly transport: TransportName;
  /** Where RPCs go: the page's own origin unless `?api=` names another base URL. */
  readonly baseUrl: string;
  /** Sessions per page of the table: `?page_size=`, default 20. */
  readonly pageSize: number;
  /** Query parameters that were ignored, and why; shown on the page. */
  readonly warnings: readonly string[];
}

const DEFAULT_PAGE_SIZE = 20;
const MAX_PAGE_SIZE = 1000;

/** `?transport=connect|grpc-web`, `?api=<base url>`, `?page_size=<n>`; anything else falls back to the default, with a warning. */
export function readSettings(location: Location): ApiSettings {
  const query = new URLSearchParams(location.search);
  const warnings: string[] = [];

  let transport: TransportName = "connect";
  const askedTransport = query.get("transport");
  if (askedTransport === "grpc-web" || askedTransport === "connect") transport = askedTransport;
  else if (askedTransport !== null) warnings.push(`unknown transport "${askedTransport}": using connect (or grpc-web)`);

  let baseUrl = location.origin;
  const askedApi = query.get("api");
  if (askedApi !== null && askedApi !== "") {
    const url = URL.canParse(askedApi, location.href) ? new URL(askedApi, location.href) : undefined;
    if (url && (url.protocol === "http:" || url.protocol === "https:")) baseUrl = url.href.replace(/\/+$/, "");
    else warnings.push(`api "${askedApi}" is not an http(s) URL: using ${location.origin}`);
  }

  let pageSize = DEFAULT_PAGE_SIZE;
  const askedPageSize = query.get("page_size");
  if (askedPageSize !== null) {
    const n = Number(askedPageSize);
    if (Number.isInteger(n) && n >= 1 && n <= MAX_PAGE_SIZE) pageSize = n;
    else warnings.push(`page_size must be a whole number from 1 to ${MAX_PAGE_SIZE}: using ${DEFAULT_PAGE_SIZE}`);
  }
  return { transport, baseUrl, pageSize, warnings };
}

/** Sends the stored API key, read at each call so that a key entered or forgotten applies at once. */
const bearerKey: Interceptor = (next) => (request) => {
  const key = storedApiKey();
  if (key !== undefined) request.header.set("Authorization", `Bearer ${key}`);
  return next(request);
};

export interface Api {
  readonly sessions: Client<typeof SessionService>;
  readonly agents: Client<typeof AgentService>;
}

export function createApi(settings: ApiSettings): Api {
  const options = { baseUrl: settings.baseUrl, interceptors: [bearerKey] };
  // Both speak protobuf binary on the wire for gRPC-Web (its only format) and JSON for
  // Connect (connect-web's default, readable in the browser's network panel).
  const transport: Transport =
    settings.transport === "grpc-web" ? createGrpcWebTransport(options) : createConnectTransport(options);
  return { sessions: createClient(SessionService, transport), agents: createClient(AgentService, transport) };
}

export function isUnauthenticated(err: unknown): boolean {
  return ConnectError.from(err).code === Code.Unauthenticated;
}

/** An RPC failure as one line for people: the server's message without Connect's "[code]" prefix. */
export function errorText(err: unknown): string {
  const error = ConnectError.from(err);
  return error.rawMessage || Code[error.code] || "request failed";
}

/** The field violations of an invalid_argument error (google.rpc.BadRequest), or none. */
export function fieldViolations(err: unknown): { field: string; description: string }[] {
  const error = ConnectError.from(err);
  return error.findDetails(BadRequestSchema).flatMap((detail) => detail.fieldViolations);
}
