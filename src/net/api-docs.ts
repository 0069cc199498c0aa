import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { NodeHandler, NodeRequest, NodeResponse } from "../rest/node-types.js";
import type { OpenApiDocument } from "../openapi/document.js";
import { openApiJson } from "../openapi/openapi-json.js";
import { contentEtag, sendAsset, type InMemoryAsset } from "./in-memory-asset.js";
import { pathOf } from "./request-path.js";

/**
 * What the API reference page may load and do: only this server's scripts, styles, images
 * (Swagger UI's icons are `data:` SVGs in its stylesheet) and API, no inline script or
 * style, no framing. Swagger UI sets styles through the DOM, which `style-src` allows.
 */
export const API_DOCS_CONTENT_SECURITY_POLICY =
  "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; " +
  "base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/** Swagger UI's files, served under /docs/ by the same names. */
const SWAGGER_UI_FILES: Readonly<Record<string, string>> = {
  "swagger-ui.css": "text/css; charset=utf-8",
  "index.css": "text/css; charset=utf-8",
  "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
  "favicon-16x16.png": "image/png",
  "favicon-32x32.png": "image/png",
};

/**
 * Starts Swagger UI on the document. validatorUrl null: Swagger UI would otherwise send
 * the document to swagger.io's validator. The document's URL is relative to the page, so
 * the reference works behind a proxy that adds a path prefix.
 */
const INIT_SCRIPT = `window.ui = SwaggerUIBundle({
  url: "openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
`;

function page(title: string): string {
  // Relative URLs for the same reason as the document's: /docs names docs/… and openapi.json.
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<link rel="stylesheet" href="docs/swagger-ui.css">
<link rel="stylesheet" href="docs/index.css">
<link rel="icon" type="image/png" href="docs/favicon-32x32.png" sizes="32x32">
<link rel="icon" type="image/png" href="docs/favicon-16x16.png" sizes="16x16">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/swagger-ui-bundle.js"></script>
<script src="docs/init.js"></script>
</body>
</html>
`;
}

function resource(body: string | Buffer, type: string): InMemoryAsset {
  const bytes = typeof body === "string" ? Buffer.from(body) : body;
  return { body: bytes, type, etag: contentEtag(bytes) };
}

/** What each document's docs serve, so that servers sharing a document share the bytes. */
const created = new WeakMap<OpenApiDocument, ReadonlyMap<string, InMemoryAsset>>();

/** Swagger UI's files from node_modules, read once per process: every server of a test run shares them. */
let swaggerUiFiles: ReadonlyMap<string, InMemoryAsset> | undefined;

function loadSwaggerUi(): ReadonlyMap<string, InMemoryAsset> {
  if (!swaggerUiFiles) {
    const folder = dirname(createRequire(import.meta.url).resolve("swagger-ui-dist/package.json"));
    swaggerUiFiles = new Map(
      Object.entries(SWAGGER_UI_FILES).map(([name, type]) => [`/docs/${name}`, resource(readFileSync(join(folder, name)), type)]),
    );
  }
  return swaggerUiFiles;
}

/**
 * The OpenAPI document at `/openapi.json` and an API reference at `/docs` (Swagger UI, its
 * files under `/docs/`), all in memory from the start, to GET and HEAD, with an ETag (304
 * on If-None-Match) and `no-cache`: the names are fixed, so browsers revalidate. The page
 * and its assets need no API key; `/docs/` redirects to `/docs`.
 */
export class ApiDocs {
  private constructor(private readonly resources: ReadonlyMap<string, InMemoryAsset>) {}

  /** Reads Swagger UI's files and serializes the document, each once per process. */
  static create(document: OpenApiDocument): ApiDocs {
    let resources = created.get(document);
    if (!resources) {
      const info = document.info as { title?: string } | undefined;
      resources = new Map([
        ...loadSwaggerUi(),
        ["/openapi.json", resource(openApiJson(document), "application/json")],
        ["/docs", resource(page(`${info?.title ?? "API"} reference`), "text/html; charset=utf-8")],
        ["/docs/init.js", resource(INIT_SCRIPT, "text/javascript; charset=utf-8")],
      ]);
      created.set(document, resources);
    }
    return new ApiDocs(resources);
  }

  /**
   * Answers a GET or HEAD of one of its paths and returns true; returns false, having done
   * nothing, for anything else. The query string is ignored.
   */
  serve(req: NodeRequest, res: NodeResponse): boolean {
    if (req.method !== "GET" && req.method !== "HEAD") return false;
    const path = pathOf(req);
    const found = this.resources.get(path);
    if (!found && path !== "/docs/") return false;
    if (!found) {
      // Relative, so that a path prefix added by a proxy stays.
      res.writeHead(301, { Location: "../docs", "Content-Length": "0" });
      res.end();
      return true;
    }
    sendAsset(req, res, found, {
      "Cache-Control": "no-cache",
      ETag: found.etag,
      "X-Content-Type-Options": "nosniff",
      "Content-Security-Policy": API_DOCS_CONTENT_SECURITY_POLICY,
      "Referrer-Policy": "no-referrer",
    });
    return true;
  }
}

/** The API docs first; anything they do not serve goes to `next`. */
export function serveApiDocsBefore(docs: ApiDocs, next: NodeHandler): NodeHandler {
  return (req, res) => {
    if (!docs.serve(req, res)) next(req, res);
  };
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
