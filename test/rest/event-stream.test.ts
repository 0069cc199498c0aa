import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import * as net from "node:net";
import * as http2 from "node:http2";
import { FLOOD_NOTE_BYTES, startLibraryStreamServer, type LibraryStreamServer } from "./library-streams.js";
import { curlN, openStream, type HttpVersion } from "./stream-clients.js";
import { Code, ConnectError } from "@connectrpc/connect";
import { until } from "../helpers/until.js";

/** The REST JSON of one ShelfEvent as streamingLibrary sends it (proto names, implicit fields present). */
function eventJson(sequence: number, shelf: string, note = ""): string {
  const kind = sequence % 2 === 1 ? "SHELF_EVENT_KIND_SHELVED" : "SHELF_EVENT_KIND_LENT";
  const book = `{"name":"shelves/${shelf}/books/${sequence}","title":"Book ${sequence}","author":"","genre":"GENRE_UNSPECIFIED","labels":[],"pages":"0"}`;
  return `{"sequence":"${sequence}","kind":"${kind}","book":${book},"note":${JSON.stringify(note)}}`;
}

function sseEvent(sequence: number, shelf: string, note = ""): string {
  const kind = sequence % 2 === 1 ? "SHELF_EVENT_KIND_SHELVED" : "SHELF_EVENT_KIND_LENT";
  return `id: ${sequence}\nevent: ${kind}\ndata: ${eventJson(sequence, shelf, note)}\n\n`;
}

const SSE = { accept: "text/event-stream" };
const HEARTBEAT_MS = 100;

let server: LibraryStreamServer;
beforeAll(async () => {
  server = await startLibraryStreamServer({ heartbeatMs: HEARTBEAT_MS });
});
afterAll(() => server.close());
beforeEach(() => {
  server.observer.reset();
  server.internalErrors.length = 0;
});

const base = (version: HttpVersion) => (version === "h1" ? server.h1Url : server.h2Url);

describe.each(["h1", "h2"] as const)("over %s", (version) => {
  it("sends one Server-Sent Event per message: id and event from the option, the REST JSON on one data line", async () => {
    const stream = await openStream(version, base(version), "/v1/shelves/notes/events:watch?count=2", SSE);
    expect(stream.status).toBe(200);
    expect(stream.headers["content-type"]).toBe("text/event-stream");
    expect(stream.headers["cache-control"]).toBe("no-cache");
    expect(stream.headers["x-accel-buffering"]).toBe("no");
    if (version === "h1") expect(stream.headers["transfer-encoding"]).toBe("chunked");
    const note = `line one\nline "two"`;
    expect(await stream.whole()).toBe(
      "id: 1\nevent: SHELF_EVENT_KIND_SHELVED\n" +
        String.raw`data: {"sequence":"1","kind":"SHELF_EVENT_KIND_SHELVED","book":{"name":"shelves/notes/books/1","title":"Book 1","author":"","genre":"GENRE_UNSPECIFIED","labels":[],"pages":"0"},"note":"line one\nline \"two\""}` +
        "\n\n" +
        sseEvent(2, "notes", note),
    );
  });

  it.each([
    ["no Accept", {}],
    ["Accept */*", { accept: "*/*" }],
    ["Accept application/json", { accept: "application/json" }],
    ["Accept application/x-ndjson", { accept: "application/x-ndjson" }],
    ["an NDJSON preference over SSE", { accept: "text/event-stream;q=0.5, application/x-ndjson" }],
  ])("sends newline-delimited JSON for %s", async (_, headers: Record<string, string>) => {
    const stream = await openStream(version, base(version), "/v1/shelves/s1/events:watch", headers);
    expect(stream.status).toBe(200);
    expect(stream.headers["content-type"]).toBe("application/x-ndjson");
    expect(stream.headers["cache-control"]).toBe("no-cache");
    expect(await stream.whole()).toBe(`${eventJson(1, "s1")}\n${eventJson(2, "s1")}\n${eventJson(3, "s1")}\n`);
  });

  it("sends SSE for text/* and for text/event-stream preferred over */*", async () => {
    for (const accept of ["text/*", "text/event-stream, */*;q=0.1", "application/json;q=0.2, text/event-stream;q=0.9"]) {
      const stream = await openStream(version, base(version), "/v1/shelves/s1/events:watch?count=1", { accept });
      expect([accept, stream.headers["content-type"], await stream.whole()]).toEqual([accept, "text/event-stream", sseEvent(1, "s1")]);
    }
  });

  it("answers 406 for an Accept that allows neither framing, before calling the method", async () => {
    for (const accept of ["text/html", "application/x-ndjson;q=0, text/event-stream;q=0"]) {
      const stream = await openStream(version, base(version), "/v1/shelves/s1/events:watch", { accept });
      expect(stream.status).toBe(406);
      expect(stream.headers["content-type"]).toBe("application/json");
      expect(JSON.parse(await stream.whole())).toEqual({
        code: 3,
        message: `unacceptable Accept "${accept}": this method streams as text/event-stream or application/x-ndjson`,
        details: [],
      });
    }
    expect(server.observer.requests).toHaveLength(0);
  });

  it("resumes after Last-Event-ID, which wins over the query's resume field", async () => {
    const stream = await openStream(version, base(version), "/v1/shelves/s1/events:watch?after_sequence=1&count=2", {
      ...SSE,
      "last-event-id": "41",
    });
    expect(await stream.whole()).toBe(sseEvent(42, "s1") + sseEvent(43, "s1"));
    expect(server.observer.requests[0]!.afterSequence).toBe(41n);
    // Without the header, the query's value counts.
    const fromQuery = await openStream(version, base(version), "/v1/shelves/s1/events:watch?after_sequence=1&count=1", SSE);
    expect(await fromQuery.whole()).toBe(sseEvent(2, "s1"));
  });

  it("answers 400 naming the header for a malformed Last-Event-ID", async () => {
    const stream = await openStream(version, base(version), "/v1/shelves/s1/events:watch", { ...SSE, "last-event-id": "forty-one" });
    expect(stream.status).toBe(400);
    expect(JSON.parse(await stream.whole())).toEqual({
      code: 3,
      message: `invalid Last-Event-ID header: cannot decode field library.v1.WatchShelfRequest.after_sequence from JSON: expected bigint (int64): forty-one out of range`,
      details: [],
    });
    expect(server.observer.requests).toHaveLength(0);
  });

  it("keeps an idle stream alive with a comment line (SSE) or an empty line (NDJSON) within the heartbeat interval", async () => {
    for (const [headers, beat, type] of [[SSE, ":\n\n", "text/event-stream"], [{}, "\n", "application/x-ndjson"]] as const) {
      const started = Date.now();
      // The first heartbeat starts the stream: its status and headers come with it.
      const stream = await openStream(version, base(version), "/v1/shelves/idle/events:watch", headers);
      expect([stream.status, stream.headers["content-type"]]).toEqual([200, type]);
      const beats = await stream.waitFor((text) => text.startsWith(beat + beat), "two heartbeats");
      expect(beats).toBe(beat.repeat(beats.length / beat.length));
      expect(Date.now() - started).toBeLessThan(HEARTBEAT_MS * 2 + 2000);
      stream.close();
      await until(() => server.observer.signals.at(-1)!.aborted, "the idle method to see its client go");
    }
  });

  it("answers an error before the first message as an ordinary REST error (status and google.rpc.Status)", async () => {
    for (const headers of [SSE, {}]) {
      const stream = await openStream(version, base(version), "/v1/shelves/missing/events:watch", headers);
      expect(stream.status).toBe(404);
      expect(stream.headers["content-type"]).toBe("application/json");
      expect(JSON.parse(await stream.whole())).toEqual({ code: 5, message: "shelf missing not found", details: [] });
    }
  });

  it("ends a started stream that fails with an error event holding the google.rpc.Status JSON", async () => {
    const status = `{"code":9,"message":"the shelf fell over","details":[]}`;
    const sse = await openStream(version, base(version), "/v1/shelves/broken/events:watch", SSE);
    expect(sse.status).toBe(200);
    expect(await sse.whole()).toBe(sseEvent(1, "broken") + sseEvent(2, "broken") + `event: error\ndata: ${status}\n\n`);
    const ndjson = await openStream(version, base(version), "/v1/shelves/broken/events:watch", {});
    expect(await ndjson.whole()).toBe(`${eventJson(1, "broken")}\n${eventJson(2, "broken")}\n{"error":${status}}\n`);
  });

  it("sends an internal failure after the start as internal error, without its text", async () => {
    const sse = await openStream(version, base(version), "/v1/shelves/leaky/events:watch", SSE);
    expect(await sse.whole()).toBe(sseEvent(1, "leaky") + `event: error\ndata: {"code":13,"message":"internal error","details":[]}\n\n`);
    expect(String(server.internalErrors[0])).toContain("SELECT * FROM shelves");
  });

  it("aborts the method's signal as soon as the client goes away, and lets the method finish", async () => {
    const stream = await openStream(version, base(version), "/v1/shelves/one-then-idle/events:watch", SSE);
    await stream.waitFor((text) => text.startsWith(sseEvent(1, "one-then-idle")), "the first event, before the stream ends");
    const signal = server.observer.signals[0]!;
    expect(signal.aborted).toBe(false);
    stream.close();
    await until(() => signal.aborted, "the method's signal to abort");
    await until(() => server.observer.finished.includes(server.observer.requests[0]!), "the method to finish");
    await until(() => server.caps.size === 0, "its stream place to be freed");
  });

  it("reads a POST rule's body into the request of a stream without the event_stream option (data lines only)", async () => {
    const stream = await openStream(version, base(version), "/v1/books:follow", { ...SSE, "content-type": "application/json" }, "POST", `{"author":"Le Guin"}`);
    const book = (i: number) => `{"name":"shelves/s/books/${i}","title":"","author":"Le Guin","genre":"GENRE_UNSPECIFIED","labels":[],"pages":"0"}`;
    expect(await stream.whole()).toBe(`data: ${book(1)}\n\ndata: ${book(2)}\n\ndata: ${book(3)}\n\n`);
  });

  it("works with curl -N, which prints each event as it comes", async () => {
    const args = version === "h2" ? ["--http2-prior-knowledge"] : ["--http1.1"];
    const finished = curlN([...args, "-H", "Accept: text/event-stream", `${base(version)}/v1/shelves/s1/events:watch?count=3`]);
    expect(await finished.exit).toBe(0);
    expect(finished.stdout()).toBe(sseEvent(1, "s1") + sseEvent(2, "s1") + sseEvent(3, "s1"));
    // A stream that stays open: its first event is printed at once, not held back.
    const open = curlN([...args, "-H", "Accept: text/event-stream", `${base(version)}/v1/shelves/one-then-idle/events:watch`]);
    // (Heartbeats may follow it.)
    await until(() => open.stdout().startsWith(sseEvent(1, "one-then-idle")), "curl to print the first event of an open stream");
    open.kill();
    await open.exit;
    await until(() => server.observer.signals.at(-1)!.aborted, "the method to see curl go");
  });
});

describe("back-pressure", () => {
  it("pulls no more messages while an HTTP/1.1 client does not read (bounded by the socket buffers)", async () => {
    const url = new URL(server.h1Url);
    const socket = net.connect(Number(url.port), url.hostname);
    await new Promise((resolve) => socket.once("connect", resolve));
    socket.pause();
    socket.write("GET /v1/shelves/flood/events:watch HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n");
    await untilSteady(() => server.observer.floodPulls);
    // The kernel's buffers on both sides hold a few MiB on loopback; nothing grows beyond.
    expect(server.observer.floodPulls * FLOOD_NOTE_BYTES).toBeLessThan(32 * 1024 * 1024);
    expect(server.observer.floodPulls).toBeGreaterThan(0);
    socket.destroy();
    await until(() => server.observer.finished.includes(server.observer.requests[0]!), "the flood to end with its client");
  });

  it("pulls no more messages while an HTTP/2 client does not read (bounded by flow control)", async () => {
    const session = http2.connect(server.h2Url);
    const req = session.request({ ":path": "/v1/shelves/flood/events:watch", accept: "text/event-stream" });
    req.pause();
    await untilSteady(() => server.observer.floodPulls);
    expect(server.observer.floodPulls * FLOOD_NOTE_BYTES).toBeLessThan(4 * 1024 * 1024);
    expect(server.observer.floodPulls).toBeGreaterThan(0);
    session.destroy();
    await until(() => server.observer.finished.includes(server.observer.requests[0]!), "the flood to end with its client");
  });
});

describe("server-side ends", () => {
  it("ends started streams with the reason of the server's shutdown signal, even when the method ignores its signal", async () => {
    const own = await startLibraryStreamServer({ heartbeatMs: HEARTBEAT_MS });
    try {
      const streams = [
        await openStream("h1", own.h1Url, "/v1/shelves/deaf/events:watch", SSE),
        await openStream("h2", own.h2Url, "/v1/shelves/deaf/events:watch", {}),
      ];
      await streams[0]!.waitFor((text) => text.startsWith(sseEvent(1, "deaf")), "the SSE stream's first event");
      await streams[1]!.waitFor((text) => text.startsWith(eventJson(1, "deaf") + "\n"), "the NDJSON stream's first line");
      own.shutdown.abort(new ConnectError("server is shutting down", Code.Unavailable));
      const status = `{"code":14,"message":"server is shutting down","details":[]}`;
      expect((await streams[0]!.whole()).replaceAll(":\n\n", "")).toBe(sseEvent(1, "deaf") + `event: error\ndata: ${status}\n\n`);
      expect((await streams[1]!.whole()).replace(/\n(?=\n)/g, "")).toBe(`${eventJson(1, "deaf")}\n{"error":${status}}\n`);
    } finally {
      await own.close();
    }
  });
});

describe("stream caps", () => {
  it("counts REST streams against the per-connection cap, as RPC streams are", async () => {
    const capped = await startLibraryStreamServer({ perConnectionStreams: 1, heartbeatMs: HEARTBEAT_MS });
    try {
      const session = http2.connect(capped.h2Url);
      const first = session.request({ ":path": "/v1/shelves/idle/events:watch", accept: "text/event-stream" });
      await until(() => capped.caps.size === 1, "the first stream to take its place");
      const second = session.request({ ":path": "/v1/shelves/s1/events:watch", accept: "text/event-stream" });
      const [status, body] = await new Promise<[number, string]>((resolve) => {
        let status = 0;
        const chunks: Buffer[] = [];
        second.on("response", (headers) => (status = Number(headers[":status"])));
        second.on("data", (chunk: Buffer) => chunks.push(chunk));
        second.on("end", () => resolve([status, Buffer.concat(chunks).toString()]));
      });
      expect(status).toBe(429);
      expect(JSON.parse(body)).toEqual({
        code: 8,
        message: "too many open streams on this connection: at most 1 (--max-streams-per-connection)",
        details: [],
      });
      first.close(http2.constants.NGHTTP2_CANCEL);
      await until(() => capped.caps.size === 0, "the first stream's place to be freed");
      session.destroy();
    } finally {
      await capped.close();
    }
  });
});

/** Waits until `value` has not changed for 300 ms. */
async function untilSteady(value: () => number): Promise<void> {
  let last = -1;
  let since = Date.now();
  await until(() => {
    const now = value();
    if (now !== last) {
      last = now;
      since = Date.now();
      return false;
    }
    return now > 0 && Date.now() - since >= 300;
  }, "the pulls to stop", 15_000);
}
