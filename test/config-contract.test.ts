import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { ConfigError, OPTIONS, parseConfig, type Config } from "../src/config.js";
import { runServerCommand } from "./helpers/process.js";

// The contract: every option is a flag and an environment variable, listed the same way
// in --help, in the README and in OPTIONS, and every bad value stops the server at start
// with one line naming the option. A new option fails these tests until it has good and
// bad sample values below.

const CERT = fileURLToPath(new URL("./fixtures/tls-cert.pem", import.meta.url));
const KEY = fileURLToPath(new URL("./fixtures/tls-key.pem", import.meta.url));
const MISSING_FILE = "/nonexistent/sessions-test.pem";

interface Listed {
  readonly flag: string;
  /** The value's name, empty for a switch. */
  readonly arg: string;
  readonly env: string;
  readonly default: string | undefined;
}

const fromOptions = (): Listed[] => OPTIONS.map((o) => ({ flag: o.flag, arg: o.arg, env: o.env, default: o.default }));

/** The options of --help: `  --flag ARG  description (default: x)` and `  env VAR` below it. */
function parseHelp(text: string): Listed[] {
  const rows = [...text.matchAll(/^ {2}--([a-z0-9-]+)(?: ([A-Z]+))? {2,}(.*)\n {30}env ([A-Z0-9_]+)$/gm)];
  return rows.map(([, flag, arg, description, env]) => ({
    flag: flag!,
    arg: arg ?? "",
    env: env!,
    default: / \(default: (.*)\)$/.exec(description!)?.[1],
  }));
}

/** The README's options table: the one headed `| flag | environment | default | meaning |`. */
function parseReadmeTable(readme: string): Listed[] {
  const lines = readme.split("\n");
  const start = lines.indexOf("| flag | environment | default | meaning |");
  if (start === -1) throw new Error("README has no options table");
  const rows: Listed[] = [];
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith("|")) break;
    const cells = line.split(" | ").map((cell) => cell.replace(/^\| /, "").trim());
    const flag = /^`--([a-z0-9-]+)(?: ([A-Z]+))?`$/.exec(cells[0]!);
    const env = /^`([A-Z0-9_]+)`$/.exec(cells[1]!);
    const def = /^`(.*)`$/.exec(cells[2]!);
    if (!flag || !env || (!def && cells[2] !== "—")) throw new Error(`README options row not understood: ${line}`);
    rows.push({ flag: flag[1]!, arg: flag[2] ?? "", env: env[1]!, default: def?.[1] });
  }
  return rows;
}

/**
 * Good values of each option: two different ones, the first not the default. Repeatable
 * options take lists. tls-cert and tls-key need each other (see PARTNERS).
 */
const GOOD_VALUES: Record<string, readonly [string[], string[]]> = {
  host: [["0.0.0.0"], ["::1"]],
  port: [["9090"], ["0"]],
  db: [["/tmp/a.db"], ["b.db"]],
  "tls-cert": [[CERT], [KEY]],
  "tls-key": [[KEY], [CERT]],
  "log-level": [["debug"], ["silent"]],
  "shutdown-timeout": [["3"], ["3600"]],
  "cors-origin": [["https://a.example"], ["http://b.example:8081", "*"]],
  "reflection-auth": [["none"], ["required"]],
  "idempotency-keys-per-org": [["50"], ["1000000000"]],
  "handshake-timeout": [["3"], ["3600"]],
  "headers-timeout": [["3"], ["1"]],
  "h2-setup-timeout": [["3"], ["1"]],
  "body-timeout": [["3"], ["3600"]],
  "keep-alive-timeout": [["3"], ["1"]],
  "h2-idle-timeout": [["3"], ["3600"]],
  "max-connections": [["1000"], ["auto"]],
  "list-page-bytes": [["65536"], ["1024"]],
  "max-session-messages": [["5"], ["1000000000"]],
  "connection-write-budget": [["1048576"], ["65536"]],
  "h2-max-concurrent-streams": [["128"], ["1"]],
  "h2-reset-burst": [["50"], ["1000000"]],
  "max-streams": [["20"], ["1000000"]],
  "max-keyless-streams": [["1"], ["50"]],
  "max-streams-per-connection": [["8"], ["1000"]],
  "max-streams-per-org": [["100"], ["7"]],
  "max-watchers-per-session": [["5"], ["4000"]],
  "key-recheck-interval": [["1"], ["3600"]],
};

/** Options that are only valid together, and what completes each. */
const PARTNERS: Record<string, string[]> = { "tls-cert": ["--tls-key", KEY], "tls-key": ["--tls-cert", CERT] };

/**
 * Bad values of each option, with the one line that refuses them. Switches take no value
 * on the command line; their variables must be true, false, 1 or 0.
 */
const BAD_VALUES: Record<string, ReadonlyArray<readonly [string, string]>> = {
  host: [["", "--host must not be empty"]],
  port: [
    ["70000", 'must be a whole number from 0 to 65535, got "70000"'],
    ["-1", 'must be a whole number from 0 to 65535, got "-1"'],
    ["80a", 'must be a whole number from 0 to 65535, got "80a"'],
    ["", 'must be a whole number from 0 to 65535, got ""'],
  ],
  db: [["", "--db must not be empty"]],
  "tls-cert": [[MISSING_FILE, `--tls-cert must name a readable file, got "${MISSING_FILE}" (ENOENT)`]],
  "tls-key": [["/tmp", '--tls-key must name a readable file, got "/tmp" (not a file)']],
  "log-level": [
    ["loud", 'must be one of fatal, error, warn, info, debug, trace, silent, got "loud"'],
    ["INFO", 'got "INFO"'],
  ],
  "shutdown-timeout": [
    ["soon", 'must be a whole number from 0 to 3600, got "soon"'],
    ["3601", 'must be a whole number from 0 to 3600, got "3601"'],
    ["1.5", 'got "1.5"'],
  ],
  "cors-origin": [
    ["bad", 'must be an origin, http(s)://host[:port] with no path, or *, got "bad"'],
    ["https://a.example/", 'did you mean "https://a.example"?'],
  ],
  "reflection-auth": [["sometimes", 'got "sometimes"']],
  "idempotency-keys-per-org": [
    ["0", 'must be a whole number from 1 to 1000000000, got "0"'],
    ["lots", 'got "lots"'],
  ],
  "handshake-timeout": [["0", 'must be a whole number from 1 to 3600, got "0"']],
  "headers-timeout": [["soon", 'must be a whole number from 1 to 3600, got "soon"']],
  "h2-setup-timeout": [["3601", 'must be a whole number from 1 to 3600, got "3601"']],
  "body-timeout": [["1.5", 'must be a whole number from 1 to 3600, got "1.5"']],
  "keep-alive-timeout": [["", 'must be a whole number from 1 to 3600, got ""']],
  "h2-idle-timeout": [["-1", 'must be a whole number from 1 to 3600, got "-1"']],
  "max-connections": [
    ["0", '--max-connections must be a whole number from 1 to 10000000 or auto, got "0"'],
    ["many", 'got "many"'],
  ],
  "list-page-bytes": [
    ["1023", 'must be a whole number from 1024 to 268435456, got "1023"'],
    ["4MiB", 'got "4MiB"'],
  ],
  "max-session-messages": [
    ["0", 'must be a whole number from 1 to 1000000000, got "0"'],
    ["many", 'got "many"'],
  ],
  "connection-write-budget": [["1k", 'must be a whole number from 65536 to 1073741824, got "1k"']],
  "h2-max-concurrent-streams": [
    ["0", 'must be a whole number from 1 to 2147483647, got "0"'],
    ["many", 'got "many"'],
  ],
  "h2-reset-burst": [["0", 'must be a whole number from 1 to 1000000, got "0"']],
  "max-streams": [
    ["0", '--max-streams must be a whole number from 1 to 1000000, got "0"'],
    ["1000001", 'got "1000001"'],
  ],
  "max-keyless-streams": [["many", '--max-keyless-streams must be a whole number from 1 to 1000000, got "many"']],
  "max-streams-per-connection": [["-5", '--max-streams-per-connection must be a whole number from 1 to 1000000, got "-5"']],
  "max-streams-per-org": [["", '--max-streams-per-org must be a whole number from 1 to 1000000, got ""']],
  "max-watchers-per-session": [["2.5", '--max-watchers-per-session must be a whole number from 1 to 1000000, got "2.5"']],
  "key-recheck-interval": [
    ["0", '--key-recheck-interval must be a whole number from 1 to 3600, got "0"'],
    ["3601", 'got "3601"'],
  ],
};

const isSwitch = (flag: string) => OPTIONS.find((o) => o.flag === flag)!.arg === "";
const envOf = (flag: string) => OPTIONS.find((o) => o.flag === flag)!.env;
const isMultiple = (flag: string) => "multiple" in OPTIONS.find((o) => o.flag === flag)!;

function config(argv: string[], env: Record<string, string> = {}): Config {
  const parsed = parseConfig(argv, env);
  if (parsed.help) throw new Error("unexpected --help");
  return parsed.config;
}

function refusal(argv: string[], env: Record<string, string> = {}): string {
  try {
    parseConfig(argv, env);
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
  throw new Error(`accepted ${JSON.stringify({ argv, env })}`);
}

/** Flags setting one option to `values`, its partner included. */
const flagsFor = (flag: string, values: readonly string[]) => [
  ...(isSwitch(flag) ? [`--${flag}`] : values.flatMap((value) => [`--${flag}`, value])),
  ...(PARTNERS[flag] ?? []),
];
/** The variable setting one option to `values` (comma-separated when repeatable). */
const envFor = (flag: string, values: readonly string[]) => ({ [envOf(flag)]: isSwitch(flag) ? "true" : values.join(",") });

describe("the options contract", () => {
  let helpOutput: string;
  beforeAll(async () => {
    const { code, stdout } = await runServerCommand(["--help"]);
    expect(code).toBe(0);
    helpOutput = stdout;
  });

  it("npm start -- --help lists exactly the options, each with its flag, value name, variable and default", () => {
    expect(parseHelp(helpOutput)).toStrictEqual(fromOptions());
    expect(helpOutput).toContain("\n  --help  ");
  });

  it("the README options table lists exactly the options, each with its flag, value name, variable and default", () => {
    const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
    expect(parseReadmeTable(readme)).toStrictEqual(fromOptions());
  });

  it("flags and variables are each unique", () => {
    expect(new Set(OPTIONS.map((o) => o.flag)).size).toBe(OPTIONS.length);
    expect(new Set(OPTIONS.map((o) => o.env)).size).toBe(OPTIONS.length);
  });

  it("every option has good and bad sample values in this test", () => {
    const missing = OPTIONS.map((o) => o.flag).filter((flag) => !isSwitch(flag) && (!GOOD_VALUES[flag] || !BAD_VALUES[flag]));
    expect(missing, "add them to GOOD_VALUES and BAD_VALUES").toStrictEqual([]);
  });

  it("with nothing given, every option has its listed default", () => {
    const defaults = config([]);
    expect(defaults).toMatchObject({
      host: "127.0.0.1",
      port: 8080,
      dbPath: "./data/sessions.db",
      tlsCertPath: undefined,
      tlsKeyPath: undefined,
      logLevel: "info",
      shutdownTimeoutMs: 10_000,
      insecureOpen: false,
      corsOrigins: [],
      timeouts: { handshakeMs: 10_000, headersMs: 20_000, h2SetupMs: 10_000, bodyMs: 60_000, keepAliveMs: 5_000, h2IdleMs: 60_000 },
      maxConnections: undefined,
      streamLimits: { total: 10_000, keyless: 1000, perConnection: 100, perOrg: 5000, perSession: 1000 },
      keyRecheckIntervalMs: 5000,
    });
  });

  describe.each(OPTIONS.map((o) => o.flag))("--%s", (flag) => {
    const [first, second] = GOOD_VALUES[flag] ?? [["true"], ["true"]];

    it("its variable sets what its flag sets, which is not the default", () => {
      const byFlag = config(flagsFor(flag, first));
      const partner = PARTNERS[flag] ?? [];
      expect(config(partner, envFor(flag, first))).toStrictEqual(byFlag);
      expect(byFlag).not.toStrictEqual(config([]));
    });

    if (!isSwitch(flag)) {
      it("its flag wins over its variable", () => {
        expect(config(flagsFor(flag, first), envFor(flag, second))).toStrictEqual(config(flagsFor(flag, first)));
      });
    }

    if (isMultiple(flag)) {
      it("repeats as a flag, and as a comma-separated variable", () => {
        const values = [...first, ...second];
        expect(config(flagsFor(flag, values))).toStrictEqual(config([], envFor(flag, values)));
      });
    }

    const bad = isSwitch(flag) ? [["maybe", "its environment variable must be true or false"] as const] : BAD_VALUES[flag] ?? [];
    it.each(bad)("refuses %j with one line naming the option, as a flag and as a variable", (value, reason) => {
      const partner = PARTNERS[flag] ?? [];
      const messages = [
        // --flag=value, so that a value starting with "-" is not taken for a flag.
        ...(isSwitch(flag) ? [] : [refusal([`--${flag}=${value}`, ...partner])]),
        refusal(partner, { [envOf(flag)]: value }),
      ];
      for (const message of messages) {
        expect(message).toContain(`--${flag}`);
        expect(message).toContain(reason);
        expect(message).not.toContain("\n");
      }
    });
  });

  it("refuses a switch given a value on the command line", () => {
    for (const o of OPTIONS.filter((o) => o.arg === "")) {
      expect(refusal([`--${o.flag}=yes`])).toBe(`Option '--${o.flag}' does not take an argument`);
    }
  });

  it("refuses one of --tls-cert and --tls-key without the other", () => {
    expect(refusal(["--tls-cert", CERT])).toBe("--tls-cert and --tls-key must be given together");
    expect(refusal([], { TLS_KEY: KEY })).toBe("--tls-cert and --tls-key must be given together");
  });

  it("npm start stops at a bad variable with one line naming the option, and exit code 2", async () => {
    const { code, stdout, stderr } = await runServerCommand([], { SHUTDOWN_TIMEOUT: "soon" });
    expect(code).toBe(2);
    expect(stdout).toBe("");
    expect(stderr).toBe('error: --shutdown-timeout must be a whole number from 0 to 3600, got "soon"\n(see --help)\n');
  });
});
