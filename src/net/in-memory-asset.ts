import { createHash } from "node:crypto";
import type { NodeRequest, NodeResponse } from "../rest/node-types.js";

/** Bytes served from memory (the console's files, the API reference's). */
export interface InMemoryAsset {
  readonly body: Buffer;
  readonly type: string;
  /** The quoted strong validator sent as ETag. */
  readonly etag: string;
}

/** A strong validator for these bytes: a hash of the content, quoted. */
export function contentEtag(body: Buffer): string {
  return `"${createHash("sha256").update(body).digest("base64url").slice(0, 27)}"`;
}

/**
 * Answers a GET or HEAD of an asset: 304 when If-None-Match matches (with the caching
 * headers a 200 would have had, RFC 9110 §15.4.5), else 200 with the body (none for HEAD).
 * `headers` are those of both answers (caching, ETag, security); Content-Type and
 * Content-Length are added to the 200.
 */
export function sendAsset(req: NodeRequest, res: NodeResponse, asset: InMemoryAsset, headers: Record<string, string>): void {
  if (matchesEtag(req.headers["if-none-match"], asset.etag)) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  res.writeHead(200, { "Content-Type": asset.type, "Content-Length": String(asset.body.length), ...headers });
  if (req.method === "HEAD") res.end();
  else res.end(asset.body);
}

/** If-None-Match uses the weak comparison (RFC 9110 §13.1.2): `W/"x"` matches `"x"`; `*` matches any. */
function matchesEtag(header: string | string[] | undefined, etag: string): boolean {
  if (header === undefined) return false;
  const text = Array.isArray(header) ? header.join(",") : header;
  return text.split(",").some((candidate) => {
    const tag = candidate.trim();
    return tag === "*" || tag === etag || tag === `W/${etag}`;
  });
}
