import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { useBrowser } from "../helpers/browser.js";
import { until } from "../helpers/until.js";
import { startLibraryStreamServer, type LibraryStreamServer } from "./library-streams.js";

/**
 * A page that follows a stream with the browser's own EventSource and keeps what it
 * receives: every named event (type, lastEventId, data) and each `error` event's data.
 */
const PAGE = `<!doctype html><meta charset="utf-8"><title>events</title><script>
window.received = [];
window.follow = (path, types) => {
  window.source = new EventSource(path);
  for (const type of types) {
    window.source.addEventListener(type, (e) => window.received.push({ type: e.type, id: e.lastEventId, data: JSON.parse(e.data) }));
  }
  // A MessageEvent with data is the stream's own error event; a plain Event is a lost connection.
  window.source.addEventListener("error", (e) => { if (e.data !== undefined) window.received.push({ type: "error", data: JSON.parse(e.data) }); });
};
</script>`;

const KINDS = ["SHELF_EVENT_KIND_SHELVED", "SHELF_EVENT_KIND_LENT"];

let server: LibraryStreamServer;
beforeAll(async () => {
  server = await startLibraryStreamServer({ page: PAGE, heartbeatMs: 200 });
});
afterAll(() => server.close());
beforeEach(() => server.observer.reset());

describe("a browser's EventSource", () => {
  const browser = useBrowser();

  type Received = { type: string; id?: string; data: { sequence?: string; kind?: string; code?: number; message?: string } };
  const received = () => browser.current().page.evaluate(() => (globalThis as unknown as { received: Received[] }).received);
  /** What the page has received once it holds at least `count` events (polled: the page cannot call back). */
  const receivedAtLeast = async (count: number, timeoutMs = 10_000): Promise<Received[]> => {
    for (const deadline = Date.now() + timeoutMs; ; ) {
      const events = await received();
      if (events.length >= count) return events;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${count} events; the page has ${JSON.stringify(events)}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  const follow = (path: string) =>
    browser.current().page.evaluate(([p, kinds]) => (globalThis as unknown as { follow: (p: string, t: string[]) => void }).follow(p!, kinds as string[]), [path, KINDS] as const);
  const closeSource = () => browser.current().page.evaluate(() => (globalThis as unknown as { source: EventSource }).source.close());

  it("receives each event by its type and id, and on its automatic reconnect sends Last-Event-ID and resumes", async () => {
    const { page } = browser.current();
    await page.goto(server.h1Url + "/");
    // Each connection sends two events and ends: EventSource reconnects by itself.
    await follow("/v1/shelves/s1/events:watch?count=2");
    const events = await receivedAtLeast(4, 15_000);
    await closeSource();
    expect(events.slice(0, 4).map((e) => [e.type, e.id, e.data.sequence])).toEqual([
      ["SHELF_EVENT_KIND_SHELVED", "1", "1"],
      ["SHELF_EVENT_KIND_LENT", "2", "2"],
      ["SHELF_EVENT_KIND_SHELVED", "3", "3"],
      ["SHELF_EVENT_KIND_LENT", "4", "4"],
    ]);
    // The first request had none; the reconnect carried the last id the page saw.
    expect(server.observer.lastEventIds.slice(0, 2)).toEqual([null, "2"]);
    expect(server.observer.requests[1]!.afterSequence).toBe(2n);
    expect(browser.current().pageErrors).toEqual([]);
  });

  it("receives an error after the start as an error event with the google.rpc.Status JSON", async () => {
    const { page } = browser.current();
    await page.goto(server.h1Url + "/");
    await follow("/v1/shelves/broken/events:watch");
    const events = await receivedAtLeast(3);
    await closeSource();
    expect(events.slice(0, 3)).toEqual([
      { type: "SHELF_EVENT_KIND_SHELVED", id: "1", data: expect.objectContaining({ sequence: "1" }) },
      { type: "SHELF_EVENT_KIND_LENT", id: "2", data: expect.objectContaining({ sequence: "2" }) },
      { type: "error", data: { code: 9, message: "the shelf fell over", details: [] } },
    ]);
  });

  it("aborts the method on the server when the page closes its EventSource", async () => {
    const { page } = browser.current();
    await page.goto(server.h1Url + "/");
    await follow("/v1/shelves/one-then-idle/events:watch");
    expect((await receivedAtLeast(1)).map((e) => e.id)).toEqual(["1"]);
    expect(server.observer.signals[0]!.aborted).toBe(false);
    await closeSource();
    await until(() => server.observer.signals[0]!.aborted, "the method's signal to abort");
  });
});
