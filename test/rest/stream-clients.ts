import * as http from "node:http";
import * as http2 from "node:http2";
import { spawn } from "node:child_process";
import { until } from "../helpers/until.js";

export type HttpVersion = "h1" | "h2";

/** A streamed answer as it arrives: what has come so far, and whether it has ended. */
export interface OpenStream {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  /** The body so far, as text. */
  text(): string;
  /** Whether the body has ended (or the stream closed). */
  ended(): boolean;
  /** Waits until the body so far satisfies `condition`. */
  waitFor(condition: (text: string) => boolean, what: string, timeoutMs?: number): Promise<string>;
  /** Waits for the end of the body and gives all of it. */
  whole(timeoutMs?: number): Promise<string>;
  /** Goes away: destroys the HTTP/1.1 connection, or resets the HTTP/2 stream (CANCEL). */
  close(): void;
}

/**
 * GETs `path` over HTTP/1.1 (its own connection) or cleartext HTTP/2 (its own session),
 * and resolves once the status and headers have arrived, with the body read as it comes.
 */
export function openStream(version: HttpVersion, base: string, path: string, headers: Record<string, string> = {}, method = "GET", body?: string): Promise<OpenStream> {
  const chunks: Buffer[] = [];
  let done = false;
  const stream = (status: number, responseHeaders: OpenStream["headers"], close: () => void): OpenStream => ({
    status,
    headers: responseHeaders,
    text: () => Buffer.concat(chunks).toString(),
    ended: () => done,
    async waitFor(condition, what, timeoutMs = 5000) {
      await until(() => condition(this.text()), what, timeoutMs);
      return this.text();
    },
    async whole(timeoutMs = 5000) {
      await until(() => done, "the end of the stream", timeoutMs);
      return this.text();
    },
    close,
  });
  if (version === "h1") {
    return new Promise((resolve, reject) => {
      const req = http.request(base + path, { method, headers, agent: false }, (res) => {
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => (done = true));
        res.on("close", () => (done = true));
        resolve(stream(res.statusCode!, res.headers, () => req.destroy()));
      });
      req.on("error", (err) => (done ? undefined : reject(err)));
      req.end(body);
    });
  }
  return new Promise((resolve, reject) => {
    const session = http2.connect(base);
    session.on("error", () => undefined);
    const req = session.request({ ":method": method, ":path": path, ...headers });
    req.on("response", (responseHeaders) => {
      const { ":status": status, ...rest } = responseHeaders;
      resolve(
        stream(Number(status), rest as OpenStream["headers"], () => {
          req.close(http2.constants.NGHTTP2_CANCEL);
          session.close();
        }),
      );
    });
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      done = true;
      session.close();
    });
    req.on("close", () => (done = true));
    req.on("error", reject);
    req.end(body);
  });
}

/** A running `curl -N`: its output so far, and a way to stop it. */
export interface CurlRun {
  stdout(): string;
  /** Resolves with curl's exit code once it ends. */
  readonly exit: Promise<number | null>;
  kill(): void;
}

/** Runs the real curl binary with `-N` (no output buffering) and `-sS`. */
export function curlN(args: readonly string[]): CurlRun {
  const child = spawn("curl", ["-N", "-sS", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  const out: Buffer[] = [];
  child.stdout.on("data", (chunk: Buffer) => out.push(chunk));
  child.stderr.on("data", () => undefined);
  const exit = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
  return { stdout: () => Buffer.concat(out).toString(), exit, kill: () => child.kill("SIGTERM") };
}
