import { accessSync, constants, statSync } from "node:fs";
import { parseArgs } from "node:util";
import type { EdgeTimeouts } from "./net/edge-deadlines.js";
import type { StreamLimits } from "./service/stream-caps.js";

/** Everything the server can be told at start-up. */
export interface Config {
  readonly host: string;
  readonly port: number;
  readonly dbPath: string;
  readonly tlsCertPath: string | undefined;
  readonly tlsKeyPath: string | undefined;
  readonly logLevel: LogLevel;
  readonly shutdownTimeoutMs: number;
  /** Serve with no API keys on a non-loopback address. */
  readonly insecureOpen: boolean;
  /** Origins whose browser pages may call the API (exact origins, or `*` for any); empty: none. */
  readonly corsOrigins: readonly string[];
  /** Whether gRPC server reflection needs an API key like the API ("required") or never ("none"). */
  readonly reflectionAuth: ReflectionAuth;
  /** The most idempotency keys (request_id) an organisation keeps; past it, its oldest are dropped. */
  readonly idempotencyKeysPerOrg: number;
  /** Deadlines of connections and request bodies. */
  readonly timeouts: EdgeTimeouts;
  /** Connections open at once; undefined: derived from the open-file limit when the server starts. */
  readonly maxConnections: number | undefined;
  /** The byte budget of a list page: past it the page ends early with a next_page_token. */
  readonly listPageBytes: number;
  /** The most messages one session holds; AddMessage past it is resource_exhausted. */
  readonly maxSessionMessages: number;
  /** Unsent answer bytes one connection may hold before its stream or connection is ended. */
  readonly connectionWriteBudget: number;
  /** HTTP/2 streams one connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS). */
  readonly h2MaxConcurrentStreams: number;
  /** Streams a client may reset on one HTTP/2 connection in a burst, refilled over 10 s. */
  readonly h2ResetBurst: number;
  /** Caps on long-lived streams (WatchSession, health Watch, reflection). */
  readonly streamLimits: StreamLimits;
  /** How often the keys of open streams are looked up again; a revoked key's streams end within it. */
  readonly keyRecheckIntervalMs: number;
}

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

const REFLECTION_AUTH_MODES = ["required", "none"] as const;
export type ReflectionAuth = (typeof REFLECTION_AUTH_MODES)[number];

interface OptionSpec {
  readonly flag: string;
  readonly env: string;
  /** The value's name in --help; empty for a switch, which takes none (env: true/false). */
  readonly arg: string;
  readonly description: string;
  readonly default: string | undefined;
  /**
   * The flag may be given more than once; its environment variable then holds a
   * comma-separated list, since a variable cannot repeat.
   */
  readonly multiple?: true;
}

/** Every option, with its flag, environment variable and default: --help and the README list these. */
export const OPTIONS = [
  { flag: "host", env: "HOST", arg: "HOST", default: "127.0.0.1", description: "address to listen on" },
  { flag: "port", env: "PORT", arg: "PORT", default: "8080", description: "port to listen on; 0 picks a free one" },
  { flag: "db", env: "SESSIONS_DB", arg: "PATH", default: "./data/sessions.db", description: "SQLite database file, created with its folder if missing" },
  { flag: "tls-cert", env: "TLS_CERT", arg: "PATH", default: undefined, description: "PEM certificate; with --tls-key, serve TLS with h2 and http/1.1 by ALPN" },
  { flag: "tls-key", env: "TLS_KEY", arg: "PATH", default: undefined, description: "PEM private key for --tls-cert" },
  { flag: "log-level", env: "LOG_LEVEL", arg: "LEVEL", default: "info", description: `one of ${LOG_LEVELS.join(", ")}` },
  { flag: "shutdown-timeout", env: "SHUTDOWN_TIMEOUT", arg: "SECONDS", default: "10", description: "on SIGTERM/SIGINT, how long in-flight requests may take to finish" },
  { flag: "insecure-open", env: "INSECURE_OPEN", arg: "", default: "false", description: "with no API keys, serve every caller as the default organisation even on a non-loopback address" },
  { flag: "cors-origin", env: "CORS_ORIGIN", arg: "ORIGIN", default: undefined, multiple: true, description: "let browser pages from this origin (scheme://host[:port], or * for any) call the API; repeatable, env comma-separated" },
  { flag: "reflection-auth", env: "REFLECTION_AUTH", arg: "MODE", default: "required", description: "required: gRPC server reflection needs an API key as the API does (none in open mode); none: it never needs one" },
  { flag: "idempotency-keys-per-org", env: "IDEMPOTENCY_KEYS_PER_ORG", arg: "COUNT", default: "100000", description: "most request_id keys an organisation keeps for 24 h; past it its oldest are dropped, shortening its retry window" },
  { flag: "handshake-timeout", env: "HANDSHAKE_TIMEOUT", arg: "SECONDS", default: "10", description: "a new connection must show its protocol (cleartext) or finish its TLS handshake within this, or it is closed" },
  { flag: "headers-timeout", env: "HEADERS_TIMEOUT", arg: "SECONDS", default: "20", description: "HTTP/1.1: a request's headers must be complete this long after the connection (or its previous answer), or 408 and close" },
  { flag: "h2-setup-timeout", env: "H2_SETUP_TIMEOUT", arg: "SECONDS", default: "10", description: "HTTP/2: the client's first SETTINGS must follow the preface within this, or the connection is closed" },
  { flag: "body-timeout", env: "BODY_TIMEOUT", arg: "SECONDS", default: "60", description: "a request's whole body must arrive this long after its headers, or 408 and close (HTTP/2: the stream is reset)" },
  { flag: "keep-alive-timeout", env: "KEEP_ALIVE_TIMEOUT", arg: "SECONDS", default: "5", description: "HTTP/1.1: an idle keep-alive connection is closed after this" },
  { flag: "h2-idle-timeout", env: "H2_IDLE_TIMEOUT", arg: "SECONDS", default: "60", description: "HTTP/2: a connection with no open stream is closed (GOAWAY) after this" },
  { flag: "max-connections", env: "MAX_CONNECTIONS", arg: "N", default: "auto", description: "connections open at once, beyond which new ones are closed on arrival; auto: the soft open-file limit (ulimit -n) less max(100, 10 %)" },
  { flag: "list-page-bytes", env: "LIST_PAGE_BYTES", arg: "BYTES", default: "4194304", description: "a list page (ListSessions, ListAgents) ends early, with a next_page_token, once its sessions or agents reach this stored size; it always holds at least one" },
  { flag: "max-session-messages", env: "MAX_SESSION_MESSAGES", arg: "N", default: "10000", description: "messages one session's conversation may hold; AddMessage past it fails with resource_exhausted (HTTP 429)" },
  { flag: "connection-write-budget", env: "CONNECTION_WRITE_BUDGET", arg: "BYTES", default: "8388608", description: "unsent answer bytes one connection may hold beyond its socket buffer; past it its stream (HTTP/2) or connection (HTTP/1.1) is ended, and HTTP/1.1 answers no further pipelined request until its client reads" },
  { flag: "h2-max-concurrent-streams", env: "H2_MAX_CONCURRENT_STREAMS", arg: "N", default: "100", description: "HTTP/2 streams one connection may have open at once (announced in SETTINGS); a client that opens more loses the connection" },
  { flag: "h2-reset-burst", env: "H2_RESET_BURST", arg: "N", default: "100", description: "HTTP/2 streams a client may reset on one connection in a burst, refilled over 10 s; past it, GOAWAY and the connection closes (rapid reset)" },
  { flag: "max-streams", env: "MAX_STREAMS", arg: "N", default: "10000", description: "long-lived streams (WatchSession, health Watch, reflection) open at once on the server; past it resource_exhausted" },
  { flag: "max-keyless-streams", env: "MAX_KEYLESS_STREAMS", arg: "N", default: "1000", description: "of those, streams opened without an API key (health Watch; reflection with --reflection-auth none)" },
  { flag: "max-streams-per-connection", env: "MAX_STREAMS_PER_CONNECTION", arg: "N", default: "100", description: "long-lived streams open at once on one connection" },
  { flag: "max-streams-per-org", env: "MAX_STREAMS_PER_ORG", arg: "N", default: "5000", description: "long-lived streams open at once with the keys of one organisation" },
  { flag: "max-watchers-per-session", env: "MAX_WATCHERS_PER_SESSION", arg: "N", default: "1000", description: "WatchSession streams open at once on one session" },
  { flag: "key-recheck-interval", env: "KEY_RECHECK_INTERVAL", arg: "SECONDS", default: "5", description: "how often the keys of open streams are looked up again: a revoked key's streams end with unauthenticated within this" },
] as const satisfies readonly OptionSpec[];

type Flag = (typeof OPTIONS)[number]["flag"];
type SingleFlag = Exclude<(typeof OPTIONS)[number], { multiple: true }>["flag"];
type MultipleFlag = Extract<(typeof OPTIONS)[number], { multiple: true }>["flag"];

/** A bad option: the message is the one line the server prints before exiting. */
export class ConfigError extends Error {}

export type ParsedArgs = { help: true } | { help: false; config: Config };

/**
 * Reads flags, then environment variables, then defaults, in that order of precedence.
 * Throws ConfigError naming the option for any bad value.
 */
export function parseConfig(argv: readonly string[], env: NodeJS.ProcessEnv): ParsedArgs {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: {
        help: { type: "boolean", short: "h" },
        ...Object.fromEntries(
          OPTIONS.map((o: OptionSpec) => [
            o.flag,
            { type: o.arg === "" ? ("boolean" as const) : ("string" as const), multiple: o.multiple ?? false },
          ]),
        ),
      },
      strict: true,
      allowPositionals: false,
    });
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  if (parsed.values.help) return { help: true };
  const spec = (flag: Flag): OptionSpec => OPTIONS.find((o) => o.flag === flag)!;
  const given = parsed.values as Record<string, string | boolean | string[] | undefined>;
  const value = (flag: SingleFlag): string | undefined => {
    const flagValue = given[flag] as string | boolean | undefined;
    return (typeof flagValue === "boolean" ? String(flagValue) : flagValue) ?? env[spec(flag).env] ?? spec(flag).default;
  };
  /** Every value of a repeatable flag; without the flag, its variable's comma-separated items (trimmed). */
  const values = (flag: MultipleFlag): string[] => {
    const flagValues = given[flag] as string[] | undefined;
    if (flagValues !== undefined) return flagValues;
    const text = env[spec(flag).env] ?? spec(flag).default;
    return text === undefined ? [] : text.split(",").map((item) => item.trim());
  };

  const port = integer("port", value("port")!, 0, 65535);
  const tlsCertPath = value("tls-cert");
  const tlsKeyPath = value("tls-key");
  if ((tlsCertPath === undefined) !== (tlsKeyPath === undefined)) {
    throw new ConfigError("--tls-cert and --tls-key must be given together");
  }
  if (tlsCertPath !== undefined) readableFile("tls-cert", tlsCertPath);
  if (tlsKeyPath !== undefined) readableFile("tls-key", tlsKeyPath);
  const logLevel = value("log-level")!;
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new ConfigError(`--log-level must be one of ${LOG_LEVELS.join(", ")}, got "${logLevel}"`);
  }
  const host = value("host")!;
  if (host === "") throw new ConfigError("--host must not be empty");
  const dbPath = value("db")!;
  if (dbPath === "") throw new ConfigError("--db must not be empty");
  const reflectionAuth = value("reflection-auth")!;
  if (!(REFLECTION_AUTH_MODES as readonly string[]).includes(reflectionAuth)) {
    throw new ConfigError(`--reflection-auth must be one of ${REFLECTION_AUTH_MODES.join(", ")}, got "${reflectionAuth}"`);
  }
  const seconds = (flag: SingleFlag) => integer(flag, value(flag)!, 1, 3600) * 1000;
  const timeouts: EdgeTimeouts = {
    handshakeMs: seconds("handshake-timeout"),
    headersMs: seconds("headers-timeout"),
    h2SetupMs: seconds("h2-setup-timeout"),
    bodyMs: seconds("body-timeout"),
    keepAliveMs: seconds("keep-alive-timeout"),
    h2IdleMs: seconds("h2-idle-timeout"),
  };
  const maxConnectionsText = value("max-connections")!;
  const maxConnections = maxConnectionsText === "auto" ? undefined : integer("max-connections", maxConnectionsText, 1, 10_000_000, "or auto");
  return {
    help: false,
    config: {
      host,
      port,
      dbPath,
      tlsCertPath,
      tlsKeyPath,
      logLevel: logLevel as LogLevel,
      shutdownTimeoutMs: integer("shutdown-timeout", value("shutdown-timeout")!, 0, 3600) * 1000,
      insecureOpen: boolean("insecure-open", value("insecure-open")!),
      corsOrigins: values("cors-origin").map((text) => corsOrigin("cors-origin", text)),
      reflectionAuth: reflectionAuth as ReflectionAuth,
      idempotencyKeysPerOrg: integer("idempotency-keys-per-org", value("idempotency-keys-per-org")!, 1, 1_000_000_000),
      timeouts,
      maxConnections,
      listPageBytes: integer("list-page-bytes", value("list-page-bytes")!, 1024, 256 * 1024 * 1024),
      maxSessionMessages: integer("max-session-messages", value("max-session-messages")!, 1, 1_000_000_000),
      connectionWriteBudget: integer("connection-write-budget", value("connection-write-budget")!, 65536, 1024 * 1024 * 1024),
      h2MaxConcurrentStreams: integer("h2-max-concurrent-streams", value("h2-max-concurrent-streams")!, 1, 2 ** 31 - 1),
      h2ResetBurst: integer("h2-reset-burst", value("h2-reset-burst")!, 1, 1_000_000),
      streamLimits: {
        total: integer("max-streams", value("max-streams")!, 1, 1_000_000),
        keyless: integer("max-keyless-streams", value("max-keyless-streams")!, 1, 1_000_000),
        perConnection: integer("max-streams-per-connection", value("max-streams-per-connection")!, 1, 1_000_000),
        perOrg: integer("max-streams-per-org", value("max-streams-per-org")!, 1, 1_000_000),
        perSession: integer("max-watchers-per-session", value("max-watchers-per-session")!, 1, 1_000_000),
      },
      keyRecheckIntervalMs: integer("key-recheck-interval", value("key-recheck-interval")!, 1, 3600) * 1000,
    },
  };
}

function boolean(flag: string, text: string): boolean {
  if (text === "true" || text === "1") return true;
  if (text === "false" || text === "0") return false;
  throw new ConfigError(`--${flag} takes no value; its environment variable must be true or false, got "${text}"`);
}

/**
 * Checked here so that a mistyped path stops the server with a line naming the option,
 * not with the bare ENOENT of the read that would fail later.
 */
function readableFile(flag: string, path: string): void {
  let problem: string | undefined;
  try {
    accessSync(path, constants.R_OK);
    if (!statSync(path).isFile()) problem = "not a file";
  } catch (err) {
    problem = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
  }
  if (problem !== undefined) throw new ConfigError(`--${flag} must name a readable file, got "${path}" (${problem})`);
}

function integer(flag: string, text: string, min: number, max: number, otherwise = ""): number {
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) {
    throw new ConfigError(`--${flag} must be a whole number from ${min} to ${max}${otherwise ? " " + otherwise : ""}, got "${text}"`);
  }
  return Number(text);
}

/**
 * An origin exactly as a browser sends it in `Origin` (lowercase, no default port, no
 * path), since requests are matched by string equality; or `*` for any origin.
 */
function corsOrigin(flag: string, text: string): string {
  if (text === "*") return text;
  const url = URL.canParse(text) ? new URL(text) : undefined;
  const web = url !== undefined && (url.protocol === "http:" || url.protocol === "https:") && url.username === "" && url.password === "";
  if (web && url.origin === text && HOSTNAME.test(url.hostname)) return text;
  // A trailing slash, a path, capitals or a default port: name the origin that was meant.
  const meant = web && HOSTNAME.test(url.hostname) ? `; did you mean "${url.origin}"?` : "";
  throw new ConfigError(`--${flag} must be an origin, http(s)://host[:port] with no path, or *, got "${text}"${meant}`);
}

/** A DNS name or an IPv4 or bracketed IPv6 address, as URL normalises them (WHATWG hosts also allow commas and the like). */
const HOSTNAME = /^(?:[a-z0-9_-]+\.)*[a-z0-9_-]+$|^\[[0-9a-f:.]+\]$/;

/** The text of --help. */
export function helpText(): string {
  const rows = OPTIONS.map((o) => {
    // At least two spaces before the description, also for a flag too long for the column.
    const left = `  --${o.flag}${o.arg === "" ? "" : " " + o.arg}  `.padEnd(30);
    const def = o.default !== undefined ? ` (default: ${o.default})` : "";
    return `${left}${o.description}${def}\n${" ".repeat(30)}env ${o.env}`;
  });
  return [
    "Usage: npm start -- [options]",
    "",
    "Serves the Sessions API over gRPC, gRPC-Web, Connect and REST JSON on one port.",
    "Flags take precedence over environment variables.",
    "",
    ...rows,
    `  --help`.padEnd(30) + "print this help and exit",
    "",
  ].join("\n");
}
