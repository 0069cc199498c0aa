import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SqliteStore } from "../src/store/sqlite.js";
import type { Store } from "../src/store/store.js";
import { DEFAULT_CONCURRENT_LISTS } from "../src/service/work-limiter.js";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { until } from "./helpers/until.js";

/**
 * List pages are built at most DEFAULT_CONCURRENT_LISTS at a time per server; the other
 * list calls wait their turn holding nothing but their request, and one whose client
 * leaves while it waits never reaches the store. (Before, 1,000 unread list streams on
 * 10 HTTP/2 connections were all built at once: 595 MB and /healthz unanswered.)
 */

let server: TestServer;
/** Store list reads in progress, held by the test until it releases them. */
let reading = 0;
let mostAtOnce = 0;
let reads = 0;
const held: Array<() => void> = [];

beforeAll(async () => {
  const base = new SqliteStore(":memory:");
  const gated = new Proxy(base, {
    get(target, property, receiver) {
      if (property === "listSessions" || property === "listAgents") {
        return async (...args: unknown[]) => {
          reads++;
          reading++;
          mostAtOnce = Math.max(mostAtOnce, reading);
          await new Promise<void>((resolve) => held.push(resolve));
          reading--;
          return (target[property] as (...a: unknown[]) => unknown).apply(target, args);
        };
      }
      const value = Reflect.get(target, property, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  }) as Store;
  server = await startTestServer({ store: gated, seedAgent: true });
});

afterAll(async () => {
  for (const go of held.splice(0)) go();
  await server?.close();
});

const releaseAll = async (until_: () => boolean) => {
  while (!until_()) {
    for (const go of held.splice(0)) go();
    await new Promise((resolve) => setImmediate(resolve));
  }
};

describe("list pages built at once", () => {
  it(`are at most ${DEFAULT_CONCURRENT_LISTS}, sessions and agents together; the rest wait and are all answered`, async () => {
    const calls = 40;
    const answers = Array.from({ length: calls }, (_, i) =>
      fetch(`${server.url}/v1/${i % 2 === 0 ? "sessions" : "agents"}?page_size=10`).then((res) => res.status),
    );
    await until(() => reading === DEFAULT_CONCURRENT_LISTS, "the first lists to reach the store");
    // Give the others every chance to start too: none may.
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(reading).toBe(DEFAULT_CONCURRENT_LISTS);
    let settled = 0;
    for (const answer of answers) void answer.then(() => settled++);
    await releaseAll(() => settled === calls);
    expect(await Promise.all(answers)).toEqual(Array(calls).fill(200));
    expect(mostAtOnce).toBe(DEFAULT_CONCURRENT_LISTS);
  });

  it("drops a waiting list whose client went away: it never reaches the store", async () => {
    reads = 0;
    const holders = Array.from({ length: DEFAULT_CONCURRENT_LISTS }, () => fetch(`${server.url}/v1/sessions?page_size=1`));
    await until(() => reading === DEFAULT_CONCURRENT_LISTS, "the lists to fill every place");
    const leaving = new AbortController();
    const gone = fetch(`${server.url}/v1/sessions?page_size=1`, { signal: leaving.signal }).catch((e: unknown) => e);
    await new Promise((resolve) => setTimeout(resolve, 50));
    leaving.abort();
    await gone;
    await until(() => server.logs.some((l) => l.msg === "request" && l.code === "canceled"), "the canceled request record");
    let settled = 0;
    for (const h of holders) void h.then(() => settled++);
    await releaseAll(() => settled === holders.length);
    expect(reads).toBe(DEFAULT_CONCURRENT_LISTS);
  });
});
