import { createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SessionService } from "../gen/sessions/v1/session_service_pb.js";
import { AgentService } from "../gen/sessions/v1/agent_service_pb.js";
import { createIdGenerator } from "../src/ids.js";
import type { AgentRecord, SessionRecord } from "../src/store/store.js";
import { AGENT_ID, DEFAULT_ORG_ID, MODEL_ID, requestJson, startTestServer, type TestServer } from "./helpers/server.js";
import { RPC_TRANSPORTS } from "./helpers/rpc-transports.js";
import { storedSession } from "./helpers/stored-session.js";

/**
 * A list page has a byte budget besides page_size (--list-page-bytes): once the stored
 * size of its records reaches it, the page ends early with a next_page_token (AIP-158:
 * "fewer results than page_size"), on every protocol, and paging on loses or repeats no
 * record. Before the budget, one page_size=1000 page held every row, whatever its size.
 */

const BUDGET = 256 * 1024;
/** About 40 KiB of stored capability configuration per record: six fit in BUDGET. */
const CONFIG = { blob: "x".repeat(40 * 1024) };
const SESSIONS = 40;

let server: TestServer;
const sessionIds: string[] = [];
const agentIds: string[] = [];

beforeAll(async () => {
  server = await startTestServer({ listPageBytes: BUDGET });
  const newId = createIdGenerator(() => 1_700_000_000_000);
  for (let i = 0; i < SESSIONS; i++) {
    const id = newId("session");
    await server.store.insertSession(largeSession(id, 1_700_000_000_000 + i));
    sessionIds.unshift(id);
  }
  for (let i = 0; i < 12; i++) {
    const id = newId("agent");
    await server.store.insertAgent(largeAgent(id, 1_700_000_000_000 + i));
    agentIds.unshift(id);
  }
  // The seeded AGENT_ID, small, was created now: the newest agent.
  agentIds.unshift(AGENT_ID);
});
afterAll(() => server.close());

describe("REST", () => {
  it("ends a page_size=1000 page of large sessions at the byte budget, with a token, and pages through all of them once", async () => {
    const pages: string[][] = [];
    let token = "";
    do {
      const res = await requestJson(`${server.url}/v1/sessions?page_size=1000${token ? `&page_token=${token}` : ""}`);
      expect(res.status).toBe(200);
      pages.push(res.body.sessions.map((s: { id: string }) => s.id));
      token = res.body.next_page_token;
    } while (token !== "");
    // 40 KiB of config and 512 bytes of overhead each: 6 records fit in 256 KiB.
    expect(pages.map((p) => p.length)).toEqual([6, 6, 6, 6, 6, 6, 4]);
    expect(pages.flat()).toEqual(sessionIds);
  });

  it("keeps the answer near the budget", async () => {
    const res = await fetch(`${server.url}/v1/sessions?page_size=1000`);
    const text = await res.text();
    expect(res.status).toBe(200);
    expect(text.length).toBeGreaterThan(BUDGET * 0.8);
    expect(text.length).toBeLessThan(BUDGET * 1.2);
  });

  it("ends a ListAgents page at the byte budget too", async () => {
    const pages: string[][] = [];
    let token = "";
    do {
      const res = await requestJson(`${server.url}/v1/agents?page_size=1000${token ? `&page_token=${token}` : ""}`);
      expect(res.status).toBe(200);
      pages.push(res.body.agents.map((a: { id: string }) => a.id));
      token = res.body.next_page_token;
    } while (token !== "");
    expect(pages.map((p) => p.length)).toEqual([7, 6]);
    expect(pages.flat()).toEqual(agentIds);
  });

  it("still serves a record larger than the whole budget, alone on its page", async () => {
    const big = await startTestServer({ listPageBytes: 16 * 1024 });
    try {
      const newId = createIdGenerator(() => 1_700_000_000_000);
      const ids = [newId("session"), newId("session")];
      for (const [i, id] of ids.entries()) await big.store.insertSession(largeSession(id, 1_700_000_000_000 + i));
      const first = await requestJson(`${big.url}/v1/sessions?page_size=10`);
      expect(first.body.sessions.map((s: { id: string }) => s.id)).toEqual([ids[1]]);
      expect(first.body.next_page_token).not.toBe("");
      const second = await requestJson(`${big.url}/v1/sessions?page_size=10&page_token=${first.body.next_page_token}`);
      expect(second.body.sessions.map((s: { id: string }) => s.id)).toEqual([ids[0]]);
      // The last page has no token: no empty page after it.
      expect(second.body.next_page_token).toBe("");
    } finally {
      await big.close();
    }
  });
});

describe.each(RPC_TRANSPORTS)("$name", (transport) => {
  it("ends pages at the byte budget and pages through every session once", async () => {
    const client = createClient(SessionService, transport.create(server.url));
    const pages: string[][] = [];
    let pageToken = "";
    do {
      const page = await client.listSessions({ pageSize: 1000, pageToken });
      pages.push(page.sessions.map((s) => s.id));
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    expect(pages.map((p) => p.length)).toEqual([6, 6, 6, 6, 6, 6, 4]);
    expect(pages.flat()).toEqual(sessionIds);
  });

  it("ends ListAgents pages at the byte budget", async () => {
    const client = createClient(AgentService, transport.create(server.url));
    const first = await client.listAgents({ pageSize: 1000 });
    expect(first.agents.map((a) => a.id)).toEqual(agentIds.slice(0, 7));
    expect(first.nextPageToken).not.toBe("");
  });
});

function largeAgent(id: string, createdAt: number): AgentRecord {
  return {
    id,
    orgId: DEFAULT_ORG_ID,
    name: "large",
    defaultModelId: MODEL_ID,
    capabilities: [{ capabilityId: "big", config: CONFIG }],
    createdAt,
    updatedAt: createdAt,
    version: 1,
  };
}

function largeSession(id: string, createdAt: number): SessionRecord {
  return storedSession(id, createdAt, { title: "large", capabilities: [{ capabilityId: "big", config: CONFIG }] });
}
