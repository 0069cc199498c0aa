import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SqliteStore } from "../src/store/sqlite.js";
import { insertTestKey, runKeysCommand } from "./helpers/keys.js";

/**
 * `npm run keys -- create|list|revoke` against a database file. That a revoked key fails
 * from a running server's next request on is proved in auth.test.ts; here: what the
 * commands print, what they store, and their exit codes.
 */

const ORG_ID = "org_" + "c".repeat(32);
const OTHER_ORG_ID = "org_" + "d".repeat(32);
const KEY_FORM = /^sk_([0-9a-f]{32})_([A-Za-z0-9_-]{43})$/;
const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

interface KeyRow {
  id: string;
  org_id: string;
  name: string;
  secret_hash: Buffer;
  created_at: number;
  last_used_at: number | null;
  revoked_at: number | null;
}

describe("keys CLI", () => {
  let dir: string;
  let db: string;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "sessions-keys-"));
    db = join(dir, "sessions.db");
    // The server's database, as `npm start` leaves it.
    await new SqliteStore(db).close();
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  /** The api_keys table as SQLite holds it, read without any of our code. */
  function storedKeys(): KeyRow[] {
    const sqlite = new Database(db, { readonly: true });
    try {
      return sqlite.prepare("SELECT * FROM api_keys ORDER BY created_at, id").all() as KeyRow[];
    } finally {
      sqlite.close();
    }
  }

  async function createKey(org: string, name?: string): Promise<{ key: string; id: string; secret: string }> {
    const result = await runKeysCommand(["create", "--org", org, ...(name === undefined ? [] : ["--name", name]), "--db", db]);
    expect(result.code).toBe(0);
    const match = KEY_FORM.exec(result.stdout.trimEnd());
    expect(match).not.toBeNull();
    return { key: match![0], id: `key_${match![1]}`, secret: match![2]! };
  }

  it("create prints exactly one line on stdout, the key, and a notice naming the key's id on stderr", async () => {
    const result = await runKeysCommand(["create", "--org", ORG_ID, "--name", "ci", "--db", db]);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^sk_[0-9a-f]{32}_[A-Za-z0-9_-]{43}\n$/);
    const idHex = result.stdout.slice(3, 35);
    expect(result.stderr).toBe(`created key_${idHex} for ${ORG_ID} (ci); the key is shown this once:\n`);
  });

  it("create without --name names no key in its notice", async () => {
    const result = await runKeysCommand(["create", "--org", ORG_ID, "--db", db]);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe(`created key_${result.stdout.slice(3, 35)} for ${ORG_ID}; the key is shown this once:\n`);
  });

  it("creates a different key each time", async () => {
    const first = await createKey(ORG_ID);
    const second = await createKey(ORG_ID);
    expect(second.id).not.toBe(first.id);
    expect(second.secret).not.toBe(first.secret);
  });

  it("stores only a SHA-256 of the secret: no column, and no byte of the database files, holds the key or its secret", async () => {
    const { key, id, secret } = await createKey(ORG_ID, "ci");
    const rows = storedKeys();
    expect(rows).toHaveLength(1);
    const row = rows[0]!;
    expect(row).toEqual({
      id,
      org_id: ORG_ID,
      name: "ci",
      secret_hash: createHash("sha256").update(secret).digest(),
      created_at: expect.any(Number),
      last_used_at: null,
      revoked_at: null,
    });
    for (const [column, value] of Object.entries(row)) {
      const forms = Buffer.isBuffer(value)
        ? [value.toString("latin1"), value.toString("hex"), value.toString("base64"), value.toString("base64url")]
        : [String(value)];
      for (const form of forms) {
        expect(form.includes(secret), `${column} holds the secret`).toBe(false);
        expect(form.includes(key), `${column} holds the key`).toBe(false);
      }
    }
    for (const file of readdirSync(dir)) {
      expect(readFileSync(join(dir, file)).includes(secret), `${file} holds the secret`).toBe(false);
    }
  });

  it("list shows id, org, name, created, last used and status of every key, and never a key or secret", async () => {
    const ci = await createKey(ORG_ID, "ci");
    const unnamed = await createKey(OTHER_ORG_ID);
    const lastUsed = Date.UTC(2030, 0, 2, 3, 4, 5, 678);
    const store = new SqliteStore(db);
    await store.touchKey(ci.id, lastUsed);
    await store.close();
    expect(await runKeysCommand(["revoke", unnamed.id, "--db", db])).toMatchObject({ code: 0 });
    const [ciRow, unnamedRow] = storedKeys();

    const result = await runKeysCommand(["list", "--db", db]);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe("");
    const lines = result.stdout.split("\n");
    expect(lines.pop()).toBe("");
    expect(lines.map((line) => line.split(/ {2,}/))).toEqual([
      ["ID", "ORG", "NAME", "CREATED", "LAST USED", "STATUS"],
      [ci.id, ORG_ID, "ci", new Date(ciRow!.created_at).toISOString(), "2030-01-02T03:04:05.678Z", "active"],
      [unnamed.id, OTHER_ORG_ID, "-", new Date(unnamedRow!.created_at).toISOString(), "never", `revoked ${new Date(unnamedRow!.revoked_at!).toISOString()}`],
    ]);
    expect(new Date(unnamedRow!.revoked_at!).toISOString()).toMatch(ISO_MS);
    // Columns line up: each cell starts where its heading does.
    const starts = (line: string) => [...line.matchAll(/(?:^| {2,})(\S)/g)].map((m) => m.index! + m[0].length - 1);
    for (const line of lines.slice(1)) expect(starts(line)).toEqual(starts(lines[0]!));
    for (const { key, secret } of [ci, unnamed]) {
      expect(result.stdout.includes(key)).toBe(false);
      expect(result.stdout.includes(secret)).toBe(false);
    }
  });

  it("create on a database that does not exist yet makes it and says so on stderr", async () => {
    const fresh = join(dir, "fresh.db");
    const result = await runKeysCommand(["create", "--org", ORG_ID, "--db", fresh]);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe(
      `note: ${fresh} did not exist; created a new database there\n` +
        `created key_${result.stdout.slice(3, 35)} for ${ORG_ID}; the key is shown this once:\n`,
    );
  });

  it.each([["list"], ["revoke", "key_0123456789abcdef0123456789abcdef"]])(
    "%s on a database that does not exist creates nothing and exits 2",
    async (...args) => {
      const missing = join(dir, "missing.db");
      const result = await runKeysCommand([...args, "--db", missing]);
      expect(result).toEqual({ code: 2, stdout: "", stderr: `error: no database at ${missing}\n` });
      expect(existsSync(missing)).toBe(false);
    },
  );

  it("list on a database without keys prints only the headings", async () => {
    const result = await runKeysCommand(["list", "--db", db]);
    expect(result).toEqual({ code: 0, stdout: "ID  ORG  NAME  CREATED  LAST USED  STATUS\n", stderr: "" });
  });

  it("revoke marks the key revoked, prints nothing on stdout and confirms on stderr; a second revoke is exit 2", async () => {
    const { id } = await createKey(ORG_ID);
    const before = Date.now();
    expect(await runKeysCommand(["revoke", id, "--db", db])).toEqual({ code: 0, stdout: "", stderr: `revoked ${id}\n` });
    const revokedAt = storedKeys()[0]!.revoked_at;
    expect(revokedAt).toBeGreaterThanOrEqual(before);
    expect(revokedAt).toBeLessThanOrEqual(Date.now());

    expect(await runKeysCommand(["revoke", id, "--db", db])).toEqual({ code: 2, stdout: "", stderr: `error: no active key ${id}\n` });
    expect(storedKeys()[0]!.revoked_at).toBe(revokedAt);
  });

  it("revoke touches only the key named", async () => {
    const kept = await createKey(ORG_ID, "kept");
    const revoked = await createKey(ORG_ID, "revoked");
    expect((await runKeysCommand(["revoke", revoked.id, "--db", db])).code).toBe(0);
    expect(storedKeys().map((row) => [row.id, row.revoked_at === null])).toEqual([
      [kept.id, true],
      [revoked.id, false],
    ]);
  });

  const usageErrors: ReadonlyArray<[string, string[], string]> = [
    ["create with a malformed --org", ["create", "--org", "org_123"], 'error: --org must be "org_" followed by 32 lowercase hex digits, got "org_123"'],
    ["create with upper-case hex in --org", ["create", "--org", "org_" + "C".repeat(32)], `error: --org must be "org_" followed by 32 lowercase hex digits, got "org_${"C".repeat(32)}"`],
    ["create without --org", ["create"], 'error: --org must be "org_" followed by 32 lowercase hex digits, got ""'],
    ["create with an argument", ["create", "--org", ORG_ID, "extra"], 'error: create takes no arguments, got "extra"'],
    ["create with a name over 128 characters", ["create", "--org", ORG_ID, "--name", "n".repeat(129)], "error: --name must be at most 128 characters without control characters"],
    ["create with a control character in the name", ["create", "--org", ORG_ID, "--name", "a\tb"], "error: --name must be at most 128 characters without control characters"],
    ["an unknown command", ["frobnicate"], 'error: unknown command "frobnicate"; see --help'],
    ["revoke of an unknown id", ["revoke", "key_" + "e".repeat(32)], `error: no active key key_${"e".repeat(32)}`],
    ["revoke without an id", ["revoke"], "error: revoke takes one key id"],
    ["revoke with two ids", ["revoke", "key_1", "key_2"], "error: revoke takes one key id"],
    [
      "an unknown option",
      ["list", "--bogus"],
      `error: Unknown option '--bogus'. To specify a positional argument starting with a '-', place it at the end of the command after '--', as in '-- "--bogus"`,
    ],
  ];
  it.each(usageErrors)("%s: exit 2, one line on stderr, nothing on stdout, no key stored", async (_, args, message) => {
    const store = new SqliteStore(db);
    const existing = await insertTestKey(store, ORG_ID, "existing");
    await store.close();
    const result = await runKeysCommand([...args, "--db", db]);
    expect(result).toEqual({ code: 2, stdout: "", stderr: `${message}\n` });
    expect(storedKeys().map((row) => [row.id, row.revoked_at])).toEqual([[existing.id, null]]);
  });
});
