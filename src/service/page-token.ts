import { createHash } from "node:crypto";
import type { ConnectError } from "@connectrpc/connect";
import type { ListCursor } from "../store/store.js";
import { invalidArgument } from "../validate.js";

/**
 * Page tokens of keyset pagination (AIP-158): the position after which the next page
 * starts, plus a digest of the filters it was issued for. Opaque to clients: base64url of
 * a small JSON object. Not signed: a forged cursor only moves the start of a listing the
 * caller may read anyway.
 */

interface TokenJson {
  /** ListCursor.createdAt */
  c: number;
  /** ListCursor.id */
  i: string;
  /** Digest of the filter key. */
  f: string;
}

const BASE64URL = /^[A-Za-z0-9_-]+$/;
/** Every id this service hands out: "<kind>_" and 32 hex digits. */
const CURSOR_ID = /^[a-z]+_[0-9a-f]{32}$/;
/** Far longer than any token encodePageToken makes; longer ones are not decoded at all. */
const MAX_TOKEN_LENGTH = 256;

/**
 * The token for the page after `cursor` (the last item of the page just served).
 * `filterKey` is any string that is equal exactly when two requests list the same thing:
 * include the listing's name (e.g. "agents") and every filter in a canonical order, so
 * that a token of one listing or filter set is refused by another. Page size is not a
 * filter and must not be part of it (AIP-158 lets it change between pages).
 */
export function encodePageToken(cursor: ListCursor, filterKey: string): string {
  const json: TokenJson = { c: cursor.createdAt, i: cursor.id, f: digest(filterKey) };
  return Buffer.from(JSON.stringify(json)).toString("base64url");
}

/**
 * The cursor a token carries; undefined for the empty token (the first page). Throws
 * invalid_argument "page_token is malformed" for anything encodePageToken did not make,
 * and "page_token was issued for different filters" when `filterKey` differs from the
 * one it was made with.
 */
export function decodePageToken(token: string, filterKey: string): ListCursor | undefined {
  if (token === "") return undefined;
  const json = parse(token);
  if (!json) throw pageTokenError("page_token is malformed");
  if (json.f !== digest(filterKey)) throw pageTokenError("page_token was issued for different filters");
  return { createdAt: json.c, id: json.i };
}

function parse(token: string): TokenJson | undefined {
  if (token.length > MAX_TOKEN_LENGTH || !BASE64URL.test(token)) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  const { c, i, f } = value as Record<string, unknown>;
  if (typeof c !== "number" || !Number.isSafeInteger(c) || c < 0) return undefined;
  if (typeof i !== "string" || !CURSOR_ID.test(i)) return undefined;
  if (typeof f !== "string") return undefined;
  return { c, i, f };
}

/** Short: it only has to tell filter sets apart, and keeps tokens small whatever the filters. */
function digest(filterKey: string): string {
  return createHash("sha256").update(filterKey).digest("base64url").slice(0, 16);
}

function pageTokenError(description: string): ConnectError {
  return invalidArgument([{ field: "page_token", description }]);
}

/**
 * Tokens of listings in sequence order (a session's messages and events): the sequence
 * after which the next page starts, and a digest of what the listing is (its name, the
 * session, and for events the request's after_sequence), so that a token of another
 * session or listing is refused. Unlike a session token, it has no `c`/`i`.
 */
interface SequenceTokenJson {
  /** The sequence of the last item served. */
  s: number;
  f: string;
}

export function encodeSequenceToken(sequence: number, filterKey: string): string {
  const json: SequenceTokenJson = { s: sequence, f: digest(filterKey) };
  return Buffer.from(JSON.stringify(json)).toString("base64url");
}

/** As decodePageToken, for encodeSequenceToken's tokens: the sequence, or undefined for "". */
export function decodeSequenceToken(token: string, filterKey: string): number | undefined {
  if (token === "") return undefined;
  const json = parseSequence(token);
  if (!json) throw pageTokenError("page_token is malformed");
  if (json.f !== digest(filterKey)) throw pageTokenError("page_token was issued for different filters");
  return json.s;
}

function parseSequence(token: string): SequenceTokenJson | undefined {
  if (token.length > MAX_TOKEN_LENGTH || !BASE64URL.test(token)) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  const { s, f } = value as Record<string, unknown>;
  if (typeof s !== "number" || !Number.isSafeInteger(s) || s < 0) return undefined;
  if (typeof f !== "string") return undefined;
  return { s, f };
}
