import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";
import type { CrossOriginOutcome, CrossOriginVia } from "../fixtures/cross-origin-client.js";
import type { WatchedPage } from "./browser.js";

export type { CrossOriginOutcome, CrossOriginVia };

const CLIENT_ENTRY = fileURLToPath(new URL("../fixtures/cross-origin-client.ts", import.meta.url));

// The icon link keeps Chromium from requesting /favicon.ico, which would only add noise
// to the failed-request and console-error reports.
const PAGE_HTML = `<!doctype html>
<html>
<head><meta charset="utf-8"><title>cross-origin client</title><link rel="icon" href="data:,"></head>
<body>
<pre id="result"></pre>
<script type="module" src="/client.js"></script>
</body>
</html>
`;

let bundle: Promise<string> | undefined;

/** The client fixture and its imports (connect-web, the generated code) as one browser module, built once per process. */
function clientBundle(): Promise<string> {
  bundle ??= esbuild
    .build({
      entryPoints: [CLIENT_ENTRY],
      bundle: true,
      write: false,
      format: "esm",
      platform: "browser",
      target: "es2022",
      logLevel: "silent",
    })
    .then((result) => result.outputFiles[0]!.text);
  return bundle;
}

export interface CrossOriginPage {
  /** `http://127.0.0.1:<port>`: another port, so another origin than the API's. */
  readonly origin: string;
  /** The page's URL for one call of the API at `api` (see test/fixtures/cross-origin-client.ts). */
  url(call: { api: string; via: CrossOriginVia; agent: string; title: string }): string;
  close(): Promise<void>;
}

/**
 * Serves, on 127.0.0.1 port 0, a page whose script calls the Sessions API from the page's
 * own origin: the browser then applies CORS exactly as it would to a web app hosted apart
 * from the API.
 */
export async function startCrossOriginPage(): Promise<CrossOriginPage> {
  const script = await clientBundle();
  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://page").pathname;
    if (req.method === "GET" && path === "/") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" });
      res.end(PAGE_HTML);
    } else if (req.method === "GET" && path === "/client.js") {
      res.writeHead(200, { "content-type": "text/javascript; charset=utf-8", "cache-control": "no-store" });
      res.end(script);
    } else {
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("not found\n");
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    origin,
    url: (call) => `${origin}/?${new URLSearchParams(call)}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}

/**
 * Opens the page for one call and answers its outcome once the script has written it. If
 * it never does, or the script broke, the error carries the page's diagnostics.
 */
export async function runCrossOriginCall(
  watched: WatchedPage,
  page: CrossOriginPage,
  call: { api: string; via: CrossOriginVia; agent: string; title: string },
  timeoutMs = 10_000,
): Promise<CrossOriginOutcome> {
  await watched.page.goto(page.url(call));
  const result = watched.page.locator("#result");
  try {
    await result.filter({ hasText: /./ }).waitFor({ timeout: timeoutMs });
  } catch {
    throw new Error(`the cross-origin page wrote no result within ${timeoutMs} ms\n${watched.diagnostics()}`);
  }
  const parsed = JSON.parse(await result.textContent() ?? "") as CrossOriginOutcome | { pageError: string };
  if ("pageError" in parsed) throw new Error(`the cross-origin page failed: ${parsed.pageError}\n${watched.diagnostics()}`);
  return parsed;
}
