import { parseArgs } from "node:util";

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
}

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

interface OptionSpec {
  readonly flag: string;
  readonly env: string;
  /** The value's name in --help; empty for a switch, which takes none (env: true/false). */
  readonly arg: string;
  readonly description: string;
  readonly default: string | undefined;
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
] as const satisfies readonly OptionSpec[];

type Flag = (typeof OPTIONS)[number]["flag"];

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
        ...Object.fromEntries(OPTIONS.map((o) => [o.flag, { type: o.arg === "" ? ("boolean" as const) : ("string" as const) }])),
      },
      strict: true,
      allowPositionals: false,
    });
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  if (parsed.values.help) return { help: true };
  const value = (flag: Flag): string | undefined => {
    const spec = OPTIONS.find((o) => o.flag === flag)!;
    const given = (parsed.values as Record<string, string | boolean | undefined>)[flag];
    return (typeof given === "boolean" ? String(given) : given) ?? env[spec.env] ?? spec.default;
  };

  const port = integer("port", value("port")!, 0, 65535);
  const tlsCertPath = value("tls-cert");
  const tlsKeyPath = value("tls-key");
  if ((tlsCertPath === undefined) !== (tlsKeyPath === undefined)) {
    throw new ConfigError("--tls-cert and --tls-key must be given together");
  }
  const logLevel = value("log-level")!;
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new ConfigError(`--log-level must be one of ${LOG_LEVELS.join(", ")}, got "${logLevel}"`);
  }
  const host = value("host")!;
  if (host === "") throw new ConfigError("--host must not be empty");
  const dbPath = value("db")!;
  if (dbPath === "") throw new ConfigError("--db must not be empty");
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
    },
  };
}

function boolean(flag: string, text: string): boolean {
  if (text === "true" || text === "1") return true;
  if (text === "false" || text === "0") return false;
  throw new ConfigError(`--${flag} takes no value; its environment variable must be true or false, got "${text}"`);
}

function integer(flag: string, text: string, min: number, max: number): number {
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) {
    throw new ConfigError(`--${flag} must be a whole number from ${min} to ${max}, got "${text}"`);
  }
  return Number(text);
}

/** The text of --help. */
export function helpText(): string {
  const rows = OPTIONS.map((o) => {
    const left = `  --${o.flag}${o.arg === "" ? "" : " " + o.arg}`.padEnd(30);
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
