import { STORED_RECORD_OVERHEAD_BYTES, type StoredPage } from "./store.js";

/**
 * Reads rows one at a time from `rows` (a statement's iterator, so that rows past the
 * page are never materialised) into a StoredPage of at most `limit` records and, past the
 * first, at most `maxBytes` of stored size. One row beyond the page is read to learn that
 * more exist, and not converted. The iterator is closed on leaving (for…of does it).
 */
export function readStoredPage<Row, T>(
  rows: Iterable<Row>,
  limit: number,
  maxBytes: number,
  sizeOf: (row: Row) => number,
  toRecord: (row: Row) => T,
): StoredPage<T> {
  const records: T[] = [];
  let bytes = 0;
  for (const row of rows) {
    if (records.length >= limit) return { records, more: true, bytes };
    const size = sizeOf(row) + STORED_RECORD_OVERHEAD_BYTES;
    if (records.length > 0 && bytes + size > maxBytes) return { records, more: true, bytes };
    bytes += size;
    records.push(toRecord(row));
  }
  return { records, more: false, bytes };
}

/** UTF-8 bytes of the text values of a raw row (numbers and nulls count in the overhead). */
export function textBytes(values: readonly unknown[]): number {
  let bytes = 0;
  for (const value of values) if (typeof value === "string") bytes += Buffer.byteLength(value);
  return bytes;
}
