import type { ListCursor, StoredPage } from "../store/store.js";
import { nextTurn, throwIfClientGone } from "./client-gone.js";

/** Rows read per store call when a long page is read in parts. */
export const READ_CHUNK_ROWS = 100;

/**
 * A page of up to `limit` records and `maxBytes` of stored size from `cursor` on, read
 * `READ_CHUNK_ROWS` at a time along the same keyset order, with a turn of the event loop
 * between parts: a page of 1,000 rows never holds the loop for one long read, and a
 * client that left meanwhile stops the rest (throws clientGone's `canceled`). A row
 * committed between two parts shows up only if it sorts after the cursor, as on the next
 * page. As in one read, only the page's first record may be larger than the budget.
 */
export function readInChunks<T extends ListCursor>(
  read: (cursor: ListCursor | undefined, limit: number, maxBytes: number) => Promise<StoredPage<T>>,
  cursor: ListCursor | undefined,
  limit: number,
  maxBytes: number,
  signal: AbortSignal,
): Promise<StoredPage<T>> {
  return readInChunksAlong(read, cursor, limit, maxBytes, signal, (last) => ({ createdAt: last.createdAt, id: last.id }));
}

/** As readInChunks, along any keyset order: `cursorOf` gives the position after a record. */
export async function readInChunksAlong<T, C>(
  read: (cursor: C | undefined, limit: number, maxBytes: number) => Promise<StoredPage<T>>,
  cursor: C | undefined,
  limit: number,
  maxBytes: number,
  signal: AbortSignal,
  cursorOf: (last: T) => C,
): Promise<StoredPage<T>> {
  let records: T[] = [];
  let bytes = 0;
  let from = cursor;
  for (;;) {
    const wanted = Math.min(READ_CHUNK_ROWS, limit - records.length);
    const room = maxBytes - bytes;
    if (records.length > 0 && room <= 0) return { records, more: true, bytes };
    const part = await read(from, wanted, records.length === 0 ? maxBytes : room);
    // A store keeps the first record of any read, whatever its size; past the page's first
    // record, one that alone exceeds what is left ends the page before it.
    if (records.length > 0 && part.records.length === 1 && part.bytes > room) return { records, more: true, bytes };
    records = records.length === 0 ? part.records : records.concat(part.records);
    bytes += part.bytes;
    if (!part.more || records.length >= limit || part.records.length < wanted) {
      return { records, more: part.more, bytes };
    }
    const last = part.records[part.records.length - 1]!;
    from = cursorOf(last);
    await nextTurn();
    throwIfClientGone(signal);
  }
}
