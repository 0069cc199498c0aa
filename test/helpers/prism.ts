import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

const PRISM = fileURLToPath(new URL("../../node_modules/@stoplight/prism-cli/dist/index.js", import.meta.url));

/** What Prism's `--errors` mode answers instead of the server's answer: `type` of its problem+json. */
export const PRISM_REQUEST_REFUSED = "https://stoplight.io/prism/errors#UNPROCESSABLE_ENTITY";
export const PRISM_RESPONSE_REFUSED = "https://stoplight.io/prism/errors#VIOLATIONS";

export interface PrismProxy {
  /** `http://127.0.0.1:<port>`, where Prism listens. */
  readonly url: string;
  /** Everything Prism printed so far, for failure messages. */
  output(): string;
  /** Stops Prism and waits for it to exit. */
  close(): Promise<void>;
}

/**
 * Starts `prism proxy --errors` (Stoplight's validating proxy, @stoplight/prism-cli) on a
 * free port of 127.0.0.1, in front of `upstream`, validating against `document` (a path
 * or a URL). In that mode a request the document forbids is answered 422 by Prism and not
 * forwarded; an answer that does not conform is replaced by a 500; both are
 * application/problem+json, and the violations are also listed in an `sl-violations`
 * header. Its own CORS handling is off, so that the headers seen are the server's.
 */
export function startPrismProxy(document: string, upstream: string, timeoutMs = 45_000): Promise<PrismProxy> {
  const child = spawn(process.execPath, [PRISM, "proxy", "--errors", "--cors=false", "-h", "127.0.0.1", "-p", "0", document, upstream], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`Prism did not start within ${timeoutMs} ms:\n${output}`)), timeoutMs);
    const onData = (chunk: Buffer) => {
      output += chunk.toString("utf8");
      const listening = /Prism is listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(output);
      if (listening) {
        clearTimeout(timer);
        resolve({ url: listening[1]!, output: () => output, close: () => stop(child, exited) });
      }
    };
    const fail = (error: Error) => {
      clearTimeout(timer);
      void stop(child, exited).then(() => reject(error));
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.once("exit", (code, signal) => fail(new Error(`Prism exited (${signal ?? code}) before listening:\n${output}`)));
    child.once("error", fail);
  });
}

async function stop(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
  await exited;
}
