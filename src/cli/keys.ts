import { parseArgs } from "node:util";
import { SqliteStore } from "../store/sqlite.js";
import { generateApiKey } from "../auth/api-key.js";
import { ID_PATTERN } from "../ids.js";

const USAGE = `Usage:
  npm run keys -- create --org org_<32 hex> [--name NAME] [--db PATH]
  npm run keys -- list [--db PATH]
  npm run keys -- revoke <key id> [--db PATH]

Manages API keys in the server's database (--db, env SESSIONS_DB, default ./data/sessions.db).
"create" prints the new key on standard output, once; only a hash of it is stored.
A running server sees new and revoked keys from its next request on.
`;

/** `keys create|list|revoke`: key management against the same database the server uses. */
async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: { org: { type: "string" }, name: { type: "string" }, db: { type: "string" }, help: { type: "boolean", short: "h" } },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    return fail((err as Error).message);
  }
  const { values, positionals } = parsed;
  const [command, ...rest] = positionals;
  if (values.help || command === undefined) {
    process.stdout.write(USAGE);
    return values.help ? 0 : 2;
  }
  const store = new SqliteStore(values.db ?? process.env.SESSIONS_DB ?? "./data/sessions.db");
  try {
    switch (command) {
      case "create": {
        if (rest.length > 0) return fail(`create takes no arguments, got "${rest.join(" ")}"`);
        const org = values.org ?? "";
        if (!ID_PATTERN.org.test(org)) return fail(`--org must be "org_" followed by 32 lowercase hex digits, got "${org}"`);
        const name = values.name ?? "";
        if ([...name].length > 128 || /[\u0000-\u001f\u007f]/.test(name)) {
          return fail("--name must be at most 128 characters without control characters");
        }
        const { record, key } = generateApiKey(org, name, Date.now());
        await store.insertKey(record);
        process.stderr.write(`created ${record.id} for ${org}${name ? ` (${name})` : ""}; the key is shown this once:\n`);
        process.stdout.write(`${key}\n`);
        return 0;
      }
      case "list": {
        const rows = (await store.listKeys()).map((k) => [
          k.id,
          k.orgId,
          k.name || "-",
          new Date(k.createdAt).toISOString(),
          k.lastUsedAt === undefined ? "never" : new Date(k.lastUsedAt).toISOString(),
          k.revokedAt === undefined ? "active" : `revoked ${new Date(k.revokedAt).toISOString()}`,
        ]);
        const table = [["ID", "ORG", "NAME", "CREATED", "LAST USED", "STATUS"], ...rows];
        const widths = table[0]!.map((_, i) => Math.max(...table.map((r) => r[i]!.length)));
        for (const row of table) process.stdout.write(row.map((cell, i) => cell.padEnd(widths[i]!)).join("  ").trimEnd() + "\n");
        return 0;
      }
      case "revoke": {
        if (rest.length !== 1) return fail("revoke takes one key id");
        if (!(await store.revokeKey(rest[0]!, Date.now()))) return fail(`no active key ${rest[0]}`);
        process.stderr.write(`revoked ${rest[0]}\n`);
        return 0;
      }
      default:
        return fail(`unknown command "${command}"; see --help`);
    }
  } finally {
    await store.close();
  }
}

function fail(message: string): number {
  process.stderr.write(`error: ${message}\n`);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
