import { existsSync } from "node:fs";
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
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (command === undefined) {
    process.stderr.write(USAGE);
    return 2;
  }
  // Every argument is checked before the database is opened, so a mistake creates nothing.
  const dbPath = values.db ?? process.env.SESSIONS_DB ?? "./data/sessions.db";
  switch (command) {
    case "create": {
      if (rest.length > 0) return fail(`create takes no arguments, got "${rest.join(" ")}"`);
      const org = values.org ?? "";
      if (!ID_PATTERN.org.test(org)) return fail(`--org must be "org_" followed by 32 lowercase hex digits, got "${org}"`);
      const name = values.name ?? "";
      if ([...name].length > 128 || /[\u0000-\u001f\u007f]/.test(name)) {
        return fail("--name must be at most 128 characters without control characters");
      }
      // A new database is fine for the first key of a fresh install, but say so: a
      // mistyped --db would otherwise put the key where no server reads it.
      if (!existsSync(dbPath)) process.stderr.write(`note: ${dbPath} did not exist; created a new database there\n`);
      return withStore(dbPath, async (store) => {
        const { record, key } = generateApiKey(org, name, Date.now());
        await store.insertKey(record);
        process.stderr.write(`created ${record.id} for ${org}${name ? ` (${name})` : ""}; the key is shown this once:\n`);
        process.stdout.write(`${key}\n`);
        return 0;
      });
    }
    case "list": {
      if (rest.length > 0) return fail(`list takes no arguments, got "${rest.join(" ")}"`);
      if (!existsSync(dbPath)) return fail(`no database at ${dbPath}`);
      return withStore(dbPath, async (store) => {
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
      });
    }
    case "revoke": {
      if (rest.length !== 1) return fail("revoke takes one key id");
      if (!existsSync(dbPath)) return fail(`no database at ${dbPath}`);
      return withStore(dbPath, async (store) => {
        if (!(await store.revokeKey(rest[0]!, Date.now()))) return fail(`no active key ${rest[0]}`);
        process.stderr.write(`revoked ${rest[0]}\n`);
        return 0;
      });
    }
    default:
      return fail(`unknown command "${command}"; see --help`);
  }
}

async function withStore(path: string, use: (store: SqliteStore) => Promise<number>): Promise<number> {
  const store = new SqliteStore(path);
  try {
    return await use(store);
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
