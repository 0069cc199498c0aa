import type Database from "better-sqlite3";
import type { IdempotencyKey, KeyedInsert } from "./store.js";

/**
 * The most keys an organisation keeps by default. A row with its indexes is about 420 bytes
 * (no response is stored, only the resource id), so this is ~42 MB per organisation at most;
 * it shortens the 24-hour window only for an organisation making more than ~1.2 keyed creates
 * a second, sustained.
 */
export const IDEMPOTENCY_KEYS_PER_ORG = 100_000;

interface KeyRow {
  readonly request_hash: Buffer;
  readonly resource_id: string;
  readonly created_at: number;
}

/**
 * The idempotency_keys table. `insertOnce` runs inside the transaction of the record's
 * insert, which the caller opens (IMMEDIATE, so that two processes on one file cannot
 * both read "unknown" and then both insert).
 *
 * Expired keys are deleted by `sweep`, which a timer calls (see IdempotencySweeper), not by
 * the inserts. Each organisation keeps at most `maxPerOrg` keys: an insert past the bound
 * deletes that organisation's oldest, so a flood of keyed creates shortens only its own
 * organisation's retry window, and the table's size has a bound whatever the rate.
 */
export class SqliteIdempotencyKeys {
  private readonly select: Database.Statement<[string, string, string], KeyRow>;
  private readonly upsert: Database.Statement<[string, string, string, Buffer, string, number]>;
  private readonly sweepExpired: Database.Statement<[number, number]>;
  private readonly countOf: Database.Statement<[string], number>;
  private readonly dropOldest: Database.Statement<[string, number]>;

  constructor(
    db: Database.Database,
    private readonly maxPerOrg: number = IDEMPOTENCY_KEYS_PER_ORG,
  ) {
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
    this.sweepExpired = db.prepare(
      `DELETE FROM idempotency_keys WHERE rowid IN
         (SELECT rowid FROM idempotency_keys WHERE created_at < ? ORDER BY created_at LIMIT ?)`,
    );
    // Kept by triggers (see the migration that adds idempotency_key_counts).
    this.countOf = db.prepare<[string], number>("SELECT keys FROM idempotency_key_counts WHERE org_id = ?").pluck();
    this.dropOldest = db.prepare(
      `DELETE FROM idempotency_keys WHERE rowid IN
         (SELECT rowid FROM idempotency_keys WHERE org_id = ? ORDER BY created_at, rowid LIMIT ?)`,
    );
  }

  /** Deletes up to `limit` keys created before `expiredBefore`, oldest first; returns how many. */
  sweep(expiredBefore: number, limit: number): number {
    return this.sweepExpired.run(expiredBefore, limit).changes;
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
    const keys = this.countOf.get(orgId) ?? 0;
    if (keys > this.maxPerOrg) this.dropOldest.run(orgId, keys - this.maxPerOrg);
    return { outcome: "inserted" };
  }
}
