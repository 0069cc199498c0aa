import type { ListCursor } from "../store/store.js";
import type { Violations } from "../validate.js";
import { encodePageToken } from "./page-token.js";

/** AIP-158 page sizes: 0 (unset) lists `default`; more than `max` is clamped, not refused. */
export const PAGE_SIZE = { default: 50, max: 1000 } as const;

/** The effective page size; a negative one is added to the violations. */
export function checkPageSize(violations: Violations, requested: number): number {
  if (requested < 0) violations.add("page_size", `page_size must be at least 0, got ${requested}`);
  if (requested <= 0) return PAGE_SIZE.default;
  return Math.min(requested, PAGE_SIZE.max);
}

/**
 * One page out of `pageSize + 1` records fetched: the extra record's presence is what
 * says another page exists, so the last page has no token and a client never fetches an
 * empty page after it.
 */
export function pageOf<T extends ListCursor>(
  records: readonly T[],
  pageSize: number,
  filterKey: string,
): { items: T[]; nextPageToken: string } {
  const items = records.slice(0, pageSize);
  const last = items[items.length - 1];
  const more = records.length > pageSize && last !== undefined;
  return { items, nextPageToken: more ? encodePageToken({ createdAt: last.createdAt, id: last.id }, filterKey) : "" };
}
