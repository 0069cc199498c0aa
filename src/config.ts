import { accessSync, constants, statSync } from "node:fs";
import { parseArgs } from "node:util";
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

function integer(flag: string, text: string, min: number, max: number): number {
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) {
    throw new ConfigError(`--${flag} must be a whole number from ${min} to ${max}, got "${text}"`);
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
