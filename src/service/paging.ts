import type { ListCursor, StoredPage } from "../store/store.js";
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
 * What a list page may hold besides page_size: the stored size of its records (AIP-158
 * lets a page hold fewer results than page_size). 4 MiB by default; a page always holds
 * at least one record, whatever its size.
 */
export const DEFAULT_PAGE_BYTES = 4 * 1024 * 1024;

/**
 * The page the store read, with the token of the next one when more records follow: the
 * store reads one record past the page to know, so the last page has no token and a
 * client never fetches an empty page after it.
 */
export function pageOf<T extends ListCursor>(page: StoredPage<T>, filterKey: string): { items: T[]; nextPageToken: string } {
  const items = page.records;
  const last = items[items.length - 1];
  const more = page.more && last !== undefined;
  return { items, nextPageToken: more ? encodePageToken({ createdAt: last.createdAt, id: last.id }, filterKey) : "" };
}
