import type Database from "better-sqlite3";
import type { IdempotencyKey, KeyedInsert } from "./store.js";

/**
 * Expired keys deleted by each keyed insert. Every keyed insert adds one row and removes
 * up to this many expired ones, so the table holds the keys of the last 24 hours plus a
 * backlog of expired rows that shrinks whenever keyed creates go on; a row is about 200
 * bytes (no response is stored, only the resource id).
 */
export const SWEEP_BATCH = 16;

interface KeyRow {
  readonly request_hash: Buffer;
  readonly resource_id: string;
  readonly created_at: number;
}

/**
 * The idempotency_keys table. `insertOnce` runs inside the transaction of the record's
 * insert, which the caller opens (IMMEDIATE, so that two processes on one file cannot
 * both read "unknown" and then both insert).
 */
export class SqliteIdempotencyKeys {
  private readonly select: Database.Statement<[string, string, string], KeyRow>;
  private readonly upsert: Database.Statement<[string, string, string, Buffer, string, number]>;
  private readonly sweep: Database.Statement<[number, number]>;

  constructor(db: Database.Database) {
    this.select = db.prepare<[string, string, string], KeyRow>(
      "SELECT request_hash, resource_id, created_at FROM idempotency_keys WHERE org_id = ? AND method = ? AND request_id = ?",
    );
    // An expired use of the same key is replaced in place.
    this.upsert = db.prepare(
      `INSERT INTO idempotency_keys (org_id, method, request_id, request_hash, resource_id, created_at)
       VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (org_id, method, request_id) DO UPDATE SET
         request_hash = excluded.request_hash, resource_id = excluded.resource_id, created_at = excluded.created_at`,
    );
    this.sweep = db.prepare(
      `DELETE FROM idempotency_keys WHERE rowid IN
         (SELECT rowid FROM idempotency_keys WHERE created_at < ? ORDER BY created_at LIMIT ?)`,
    );
  }

  /**
   * Inserts a record under a key unless the key has a live use (created at or after
   * `key.expiredBefore`): then a retry of the same request replays the record the key
   * names, read with `find` (its current state), and any other request is a conflict.
   * `insert` stores the record and returns false to store nothing (no key either).
   * Must run inside a transaction.
   */
  insertOnce<T>(
    orgId: string,
    key: IdempotencyKey,
    record: { readonly id: string; readonly createdAt: number },
    find: (id: string) => T | undefined,
    insert: () => boolean,
  ): KeyedInsert<T> | false {
    const prior = this.select.get(orgId, key.method, key.requestId);
    if (prior !== undefined && prior.created_at >= key.expiredBefore) {
      if (!Buffer.from(key.requestHash).equals(prior.request_hash)) return { outcome: "conflict" };
      const current = find(prior.resource_id);
      return current === undefined ? { outcome: "deleted", id: prior.resource_id } : { outcome: "replayed", record: current };
    }
    if (!insert()) return false;
    this.upsert.run(orgId, key.method, key.requestId, Buffer.from(key.requestHash), record.id, record.createdAt);
    this.sweep.run(key.expiredBefore, SWEEP_BATCH);
    return { outcome: "inserted" };
  }
}
