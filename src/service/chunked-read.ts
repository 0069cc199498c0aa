import type { ListCursor } from "../store/store.js";
import { nextTurn, throwIfClientGone } from "./client-gone.js";

/** Rows read per store call when a long page is read in parts. */
export const READ_CHUNK_ROWS = 100;

/**
 * Up to `limit` rows from `cursor` on, read `READ_CHUNK_ROWS` at a time along the same
 * keyset order, with a turn of the event loop between parts: a page of 1,000 large rows
 * never holds the loop for one long read, and a client that left meanwhile stops the
 * rest (throws clientGone's `canceled`). A row committed between two parts shows up only
 * if it sorts after the cursor, as on the next page.
 */
export async function readInChunks<T extends ListCursor>(
  read: (cursor: ListCursor | undefined, limit: number) => Promise<T[]>,
  cursor: ListCursor | undefined,
  limit: number,
  signal: AbortSignal,
): Promise<T[]> {
  let rows: T[] = [];
  let from = cursor;
  for (;;) {
    const wanted = Math.min(READ_CHUNK_ROWS, limit - rows.length);
    const part = await read(from, wanted);
    rows = rows.length === 0 ? part : rows.concat(part);
    if (part.length < wanted || rows.length >= limit) return rows;
    const last = part[part.length - 1]!;
    from = { createdAt: last.createdAt, id: last.id };
    await nextTurn();
    throwIfClientGone(signal);
  }
}
