import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createIdGenerator } from "../src/ids.js";
import { READ_CHUNK_ROWS } from "../src/service/chunked-read.js";
import { STORED_RECORD_OVERHEAD_BYTES } from "../src/store/store.js";
import { DEFAULT_ORG_ID, requestJson, startTestServer, type TestServer } from "./helpers/server.js";
import { storedSession } from "./helpers/stored-session.js";

/**
 * A list page is read in chunks of READ_CHUNK_ROWS (so that a client that leaves stops the
 * reading) and ends at the byte budget (--list-page-bytes): the two together must end a
 * page at the budget even when the budget falls in a later chunk, and paging on must lose
 * and repeat nothing.
 */

/** 2 KiB of title and tags per session (+ the per-record overhead). */
const TAGS = Array.from({ length: 16 }, (_, i) => `tag-${i}-${"t".repeat(100)}`);
const SESSIONS = 400;
/** About 150 sessions: past the first chunk of 100, short of page_size 1000. */
const BUDGET = 150 * (16 * 107 + "chunked".length + STORED_RECORD_OVERHEAD_BYTES);

let server: TestServer;
const ids: string[] = [];

beforeAll(async () => {
  server = await startTestServer({ listPageBytes: BUDGET });
  const newId = createIdGenerator(() => 1_700_000_000_000);
  for (let i = 0; i < SESSIONS; i++) {
    const id = newId("session");
    await server.store.insertSession(storedSession(id, 1_700_000_000_000 + i, { title: "chunked", tags: TAGS }));
    ids.unshift(id);
  }
});
afterAll(() => server.close());

describe("chunked reads within the page byte budget", () => {
  it("ends page_size=1000 pages at the budget, past the first chunk, and pages through every session once", async () => {
    const pages: string[][] = [];
    let token = "";
    do {
      const res = await requestJson(`${server.url}/v1/sessions?page_size=1000${token ? `&page_token=${token}` : ""}`);
      expect(res.status).toBe(200);
      pages.push(res.body.sessions.map((s: { id: string }) => s.id));
      token = res.body.next_page_token;
    } while (token !== "");
    expect(pages[0]!.length).toBeGreaterThan(READ_CHUNK_ROWS);
    expect(pages[0]!.length).toBeLessThanOrEqual(150);
    // In chunks, the page ends where one read of the store ends it.
    const oneRead = await server.store.listSessions(DEFAULT_ORG_ID, { agentId: undefined, states: [], tags: [], createdAfter: undefined, createdBefore: undefined }, undefined, 1000, BUDGET);
    expect(pages[0]).toEqual(oneRead.records.map((r) => r.id));
    expect(pages.flat()).toEqual(ids);
  });

  it("ends a page exactly at page_size when the budget is not reached, across chunks", async () => {
    const res = await requestJson(`${server.url}/v1/sessions?page_size=120`);
    expect(res.body.sessions.map((s: { id: string }) => s.id)).toEqual(ids.slice(0, 120));
    expect(res.body.next_page_token).not.toBe("");
  });
});
