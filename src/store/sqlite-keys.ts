import type Database from "better-sqlite3";
import type { ApiKeyRecord, KeyStore } from "./store.js";

interface KeyRow {
  id: string;
  org_id: string;
  name: string;
  secret_hash: Buffer;
  created_at: number;
  last_used_at: number | null;
  revoked_at: number | null;
}

const COLUMNS = "id, org_id, name, secret_hash, created_at, last_used_at, revoked_at";

/** API keys in SQLite. */
export class SqliteKeys implements KeyStore {
  private readonly insert: Database.Statement;
  private readonly selectById: Database.Statement<[string], KeyRow>;
  private readonly selectAll: Database.Statement<[], KeyRow>;
  private readonly revoke: Database.Statement<[number, string]>;
  private readonly touch: Database.Statement<[number, string]>;
  private readonly any: Database.Statement<[]>;

  constructor(db: Database.Database) {
    this.insert = db.prepare(`INSERT INTO api_keys (${COLUMNS}) VALUES (@id, @org_id, @name, @secret_hash, @created_at, @last_used_at, @revoked_at)`);
    this.selectById = db.prepare<[string], KeyRow>(`SELECT ${COLUMNS} FROM api_keys WHERE id = ?`);
    this.selectAll = db.prepare<[], KeyRow>(`SELECT ${COLUMNS} FROM api_keys ORDER BY created_at, id`);
    this.revoke = db.prepare<[number, string]>("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL");
    this.touch = db.prepare<[number, string]>("UPDATE api_keys SET last_used_at = ? WHERE id = ?");
    this.any = db.prepare<[]>("SELECT 1 FROM api_keys LIMIT 1").pluck();
  }

  async insertKey(key: ApiKeyRecord): Promise<void> {
    this.insert.run({
      id: key.id,
      org_id: key.orgId,
      name: key.name,
      secret_hash: Buffer.from(key.secretHash),
      created_at: key.createdAt,
      last_used_at: key.lastUsedAt ?? null,
      revoked_at: key.revokedAt ?? null,
    });
  }

  async findKey(id: string): Promise<ApiKeyRecord | undefined> {
    const row = this.selectById.get(id);
    return row && fromRow(row);
  }

  async listKeys(): Promise<ApiKeyRecord[]> {
    return this.selectAll.all().map(fromRow);
  }

  async revokeKey(id: string, at: number): Promise<boolean> {
    return this.revoke.run(at, id).changes === 1;
  }

  async touchKey(id: string, at: number): Promise<void> {
    this.touch.run(at, id);
  }

  async hasKeys(): Promise<boolean> {
    return this.any.get() !== undefined;
  }
}

function fromRow(row: KeyRow): ApiKeyRecord {
  return {
    id: row.id,
    orgId: row.org_id,
    name: row.name,
    secretHash: new Uint8Array(row.secret_hash),
    createdAt: row.created_at,
    lastUsedAt: row.last_used_at ?? undefined,
    revokedAt: row.revoked_at ?? undefined,
  };
}
