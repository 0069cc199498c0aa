import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import type { EventStreamFields } from "./event-stream-rule.js";
import type { NodeResponse } from "./node-types.js";

/** How a server stream is framed over REST. */
export type StreamFormat = "sse" | "ndjson";

export const SSE_MEDIA_TYPE = "text/event-stream";
export const NDJSON_MEDIA_TYPE = "application/x-ndjson";

/** Longest a stream goes without writing anything, by default: proxies cut idle connections after 30–60 s. */
export const DEFAULT_STREAM_HEARTBEAT_MS = 15_000;

/**
 * The framing an `Accept` header asks for: Server-Sent Events when it prefers
 * `text/event-stream` (or `text/*`), newline-delimited JSON otherwise — when it is absent,
 * and for `application/x-ndjson`, `application/json`, `application/*` and `*∕*`. At equal
 * quality a named type wins over a wildcard, and NDJSON over SSE. Undefined when the header
 * allows neither (406).
 */
export function streamFormatOf(accept: string | undefined): StreamFormat | undefined {
  if (accept === undefined || accept.trim() === "") return "ndjson";
  const sse = { q: 0, exact: false };
  const ndjson = { q: 0, exact: false };
  // The most specific range that matches a type sets its quality (RFC 9110 §12.5.1).
  const sseSpecificity = { value: -1 };
  const ndjsonSpecificity = { value: -1 };
  for (const range of accept.split(",")) {
    const [type = "", ...params] = range.split(";").map((part) => part.trim().toLowerCase());
    let q = 1;
    for (const param of params) {
      const match = /^q=([0-9.]+)$/.exec(param);
      if (match) q = Math.min(1, Number(match[1]) || 0);
    }
    const consider = (target: { q: number; exact: boolean }, specificity: { value: number }, rank: number) => {
      if (rank < specificity.value) return;
      // Of equally specific ranges the best quality counts (application/json and application/x-ndjson both name NDJSON).
      if (rank === specificity.value && q <= target.q) return;
      specificity.value = rank;
      target.q = q;
      target.exact = rank === 2;
    };
    if (type === "*/*") {
      consider(sse, sseSpecificity, 0);
      consider(ndjson, ndjsonSpecificity, 0);
    } else if (type === "text/*") consider(sse, sseSpecificity, 1);
    else if (type === SSE_MEDIA_TYPE) consider(sse, sseSpecificity, 2);
    else if (type === "application/*") consider(ndjson, ndjsonSpecificity, 1);
    else if (type === NDJSON_MEDIA_TYPE || type === "application/json") consider(ndjson, ndjsonSpecificity, 2);
  }
  if (sse.q === 0 && ndjson.q === 0) return undefined;
  if (sse.q > ndjson.q || (sse.q === ndjson.q && sse.exact && !ndjson.exact)) return "sse";
  return "ndjson";
}

/** What the writer needs of the handler. */
export interface EventStreamOptions {
  readonly format: StreamFormat;
  /** The option's fields; without them SSE events have only `data:`. */
  readonly fields: EventStreamFields | undefined;
  /** Longest time without a write: a `:` comment (SSE) or an empty line (NDJSON) is sent then. */
  readonly heartbeatMs: number;
  /** Sets the answer's own headers, just before the status line goes out. */
  readonly beforeStart: () => void;
}

/**
 * Writes one server stream as Server-Sent Events or newline-delimited JSON on a Node
 * response, HTTP/1.1 (chunked) or HTTP/2 alike. Nothing is written before the first
 * message or the first heartbeat, so that an error before either is an ordinary REST
 * error answer; after that (`started`), an error is the stream's last event. Each message
 * is written at once, never held back; `send` resolves only once the response can take
 * more, so the caller pulls the next message only as fast as the client reads.
 *
 * SSE: `id:` and `event:` lines from the fields of the event_stream option, then one
 * `data:` line (JSON never holds a raw line break), then an empty line; an error is
 * `event: error` with the google.rpc.Status JSON. NDJSON: one JSON value per line; an
 * error is a last line `{"error": <google.rpc.Status JSON>}`.
 */
export class EventStreamWriter {
  private begun = false;
  private readonly heartbeat: NodeJS.Timeout;
  private waiting: Promise<boolean> | undefined;

  constructor(
    private readonly res: NodeResponse,
    private readonly options: EventStreamOptions,
  ) {
    this.heartbeat = setInterval(() => this.beat(), options.heartbeatMs);
    this.heartbeat.unref();
  }

  /** Whether the status line has gone out: from now on errors travel inside the stream. */
  get started(): boolean {
    return this.begun;
  }

  /**
   * Writes one message: `message` is its whole REST JSON (for the SSE id and event
   * fields), `data` what is sent of it (all of it, or its response_body field). Resolves
   * true once the response can take more, false when the client has gone.
   */
  send(message: JsonObject, data: JsonValue): Promise<boolean> {
    const text = JSON.stringify(data);
    if (this.options.format === "ndjson") return this.write(text + "\n");
    let frame = "";
    const { fields } = this.options;
    if (fields?.id) frame += `id: ${lineValue(message[fields.id.name], "id")}\n`;
    if (fields?.type) {
      const type = lineValue(message[fields.type.name], "event");
      if (type !== "") frame += `event: ${type}\n`;
    }
    return this.write(`${frame}data: ${text}\n\n`);
  }

  /** Ends the stream with an error (a google.rpc.Status JSON) as its last event. */
  fail(status: JsonObject): void {
    const text = JSON.stringify(status);
    this.stop();
    if (!this.open()) return;
    this.start();
    this.res.end(this.options.format === "sse" ? `event: error\ndata: ${text}\n\n` : `${JSON.stringify({ error: status })}\n`);
  }

  /** Ends the stream normally. */
  end(): void {
    this.stop();
    if (!this.open()) return;
    this.start();
    this.res.end();
  }

  /** Stops the heartbeat; the response is left as it is. */
  stop(): void {
    clearInterval(this.heartbeat);
  }

  private beat(): void {
    // Behind a client that does not read, a heartbeat would only add to what waits.
    if (this.waiting || !this.open()) return;
    void this.write(this.options.format === "sse" ? ":\n\n" : "\n");
  }

  private start(): void {
    if (this.begun) return;
    this.begun = true;
    this.options.beforeStart();
    const { res } = this;
    res.statusCode = 200;
    res.setHeader("Content-Type", this.options.format === "sse" ? SSE_MEDIA_TYPE : NDJSON_MEDIA_TYPE);
    // Every event is news: no cache, and no proxy buffering (nginx reads X-Accel-Buffering).
    res.setHeader("Cache-Control", "no-cache");
    res.setHeader("X-Accel-Buffering", "no");
  }

  private open(): boolean {
    return !this.res.destroyed && !this.res.writableEnded;
  }

  private write(text: string): Promise<boolean> {
    if (!this.open()) return Promise.resolve(false);
    this.start();
    if (this.res.write(text)) return Promise.resolve(true);
    // Past the high-water mark: wait until it drains (or the client goes) before more.
    this.waiting = new Promise<boolean>((resolve) => {
      const done = (drained: boolean) => {
        this.res.off("drain", onDrain);
        this.res.off("close", onClose);
        this.waiting = undefined;
        resolve(drained);
      };
      const onDrain = () => done(true);
      const onClose = () => done(false);
      this.res.on("drain", onDrain);
      this.res.on("close", onClose);
    });
    return this.waiting;
  }
}

/** A value as an SSE field's text; a line break or NUL in it would end or void the field. */
function lineValue(value: JsonValue | undefined, field: string): string {
  const text = value === undefined || value === null ? "" : String(value);
  if (/[\r\n\0]/.test(text)) throw new Error(`cannot send ${JSON.stringify(text)} as a Server-Sent Event's ${field}: it holds a line break or NUL`);
  return text;
}
