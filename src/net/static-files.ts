import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { extname, join } from "node:path";
import type { NodeHandler, NodeRequest, NodeResponse } from "../rest/node-types.js";
import { contentEtag, sendAsset, type InMemoryAsset } from "./in-memory-asset.js";
import { pathOf } from "./request-path.js";

/**
 * What a page from this server may load and do: its own scripts, styles and API only, no
 * inline script or style, no framing. `data:` images are for the page's empty favicon.
 */
export const CONTENT_SECURITY_POLICY =
  "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; " +
  "base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/** Pages name the current assets, so they are revalidated on every load (a 304 when unchanged). */
const REVALIDATE = "no-cache";
/** A name with a content hash never changes content: browsers keep it for a year without asking. */
const IMMUTABLE = "public, max-age=31536000, immutable";
/** esbuild's `[hash]`: 8 characters of base32, before the extension(s), e.g. app-FA72Y3ZP.js.map. */
const CONTENT_HASHED_NAME = /-[A-Z2-7]{8}\.[a-z0-9.]+$/;

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".txt": "text/plain; charset=utf-8",
};

/** One file's bytes and the headers of its answers. */
class StaticFile implements InMemoryAsset {
  private validator: string | undefined;

  constructor(
    readonly body: Buffer,
    readonly type: string,
    private readonly cacheControl: string,
  ) {}

  /**
   * The quoted strong validator sent as ETag: a hash of the content, computed at the first
   * request rather than at start, where hashing every file (source maps are megabytes)
   * cost each server start about 10 ms.
   */
  get etag(): string {
    return (this.validator ??= contentEtag(this.body));
  }

  /** The headers of a 200; a 304 sends the same but Content-Type and Content-Length. */
  headers(): Record<string, string> {
    return {
      "Cache-Control": this.cacheControl,
      ETag: this.etag,
      "X-Content-Type-Options": "nosniff",
      "Content-Security-Policy": CONTENT_SECURITY_POLICY,
      "Referrer-Policy": "no-referrer",
    };
  }
}

/**
 * The files of one folder, read into memory once, served to GET and HEAD at `/<name>`
 * (`/` is index.html) with a strong ETag, 304 on a matching If-None-Match, `nosniff`, and
 * the page's Content-Security-Policy. Files added to the folder later are not seen;
 * subfolders and files of unknown types are not served.
 */
export class StaticFiles {
  private constructor(private readonly files: ReadonlyMap<string, StaticFile>) {}

  /** Reads the folder; undefined when it does not exist. Files that vanish while it reads (a build cleaning up) are skipped. */
  static load(root: string): StaticFiles | undefined {
    if (!existsSync(root) || !statSync(root).isDirectory()) return undefined;
    const files = new Map<string, StaticFile>();
    for (const name of readdirSync(root)) {
      const contentType = CONTENT_TYPES[extname(name)];
      if (!contentType) continue;
      let body: Buffer;
      try {
        if (!statSync(join(root, name)).isFile()) continue;
        body = readFileSync(join(root, name));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") continue;
        throw err;
      }
      files.set(`/${name}`, new StaticFile(body, contentType, CONTENT_HASHED_NAME.test(name) ? IMMUTABLE : REVALIDATE));
    }
    const index = files.get("/index.html");
    if (index) files.set("/", index);
    return new StaticFiles(files);
  }

  /**
   * Answers a GET or HEAD of a file it holds and returns true; returns false, having done
   * nothing, for any other method or path, so the request can go on to another handler.
   * The query string is ignored (`/?transport=grpc-web` is the page).
   */
  serve(req: NodeRequest, res: NodeResponse): boolean {
    if (req.method !== "GET" && req.method !== "HEAD") return false;
    const file = this.files.get(pathOf(req));
    if (!file) return false;
    sendAsset(req, res, file, file.headers());
    return true;
  }
}

/** Static files first; anything they do not serve goes to `next` (the REST transcoder, which answers 404 for unknown paths). */
export function serveStaticFilesBefore(files: StaticFiles, next: NodeHandler): NodeHandler {
  return (req, res) => {
    if (!files.serve(req, res)) next(req, res);
  };
}
