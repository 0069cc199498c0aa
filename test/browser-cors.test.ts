import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useBrowser } from "./helpers/browser.js";
import { runCrossOriginCall, startCrossOriginPage, type CrossOriginPage } from "./helpers/cross-origin-page.js";
import { AGENT_ID, requestJson, SESSION_ID_PATTERN, startTestServer, type TestServer } from "./helpers/server.js";

// A web app served from one origin calling the API on another, in a real Chromium: the
// browser, not the server, decides whether a response reaches the script, so only a
// browser proves that CORS lets the right origin in and keeps the others out.

const browser = useBrowser();
let page: CrossOriginPage;

beforeAll(async () => {
  page = await startCrossOriginPage();
});
afterAll(async () => {
  await page?.close();
});

const RPC_TRANSPORTS = ["connect", "grpc-web"] as const;
const INVALID_AGENT_MESSAGE = 'Invalid agent ID: agent_id must be "agent_" followed by 32 lowercase hex digits';

/** The sessions the server holds, listed same-origin from Node (no CORS involved). */
async function sessionsOf(api: TestServer): Promise<{ id: string; title: string }[]> {
  const res = await requestJson(`${api.url}/v1/sessions?page_size=1000`);
  expect(res.status).toBe(200);
  return res.body.sessions;
}

describe("with the page's origin allowed (--cors-origin)", () => {
  let api: TestServer;
  beforeAll(async () => {
    api = await startTestServer({ corsOrigins: [page.origin] });
  });
  afterAll(async () => {
    await api?.close();
  });

  for (const via of RPC_TRANSPORTS) {
    it(`${via}: createSession and listSessions succeed from the other origin`, async () => {
      const title = `allowed over ${via}`;
      const watched = browser.current();
      const outcome = await runCrossOriginCall(watched, page, { api: api.url, via, agent: AGENT_ID, title });

      expect(outcome, watched.diagnostics()).toMatchObject({ ok: true, via });
      if (!outcome.ok || outcome.via === "rest") throw new Error("unreachable");
      expect(outcome.sessionId).toMatch(SESSION_ID_PATTERN);
      expect(outcome.listedIds).toContain(outcome.sessionId);
      expect(await sessionsOf(api)).toContainEqual(expect.objectContaining({ id: outcome.sessionId, title }));
      expect(watched.consoleErrors).toEqual([]);
      expect(watched.failedRequests).toEqual([]);
    });
  }

  it("rest: POST /v1/sessions succeeds from the other origin and its Location header is readable", async () => {
    const title = "allowed over rest";
    const watched = browser.current();
    const outcome = await runCrossOriginCall(watched, page, { api: api.url, via: "rest", agent: AGENT_ID, title });

    expect(outcome, watched.diagnostics()).toMatchObject({ ok: true, via: "rest", status: 201, body: { agent_id: AGENT_ID, title } });
    if (!outcome.ok || outcome.via !== "rest") throw new Error("unreachable");
    const sessionId = (outcome.body as { id: string }).id;
    expect(sessionId).toMatch(SESSION_ID_PATTERN);
    expect(outcome.location).toBe(`/v1/sessions/${sessionId}`);
    expect(await sessionsOf(api)).toContainEqual(expect.objectContaining({ id: sessionId, title }));
    expect(watched.consoleErrors).toEqual([]);
    expect(watched.failedRequests).toEqual([]);
  });

  // Errors must carry the CORS headers too, or the page sees "Failed to fetch" instead of why.
  for (const via of RPC_TRANSPORTS) {
    it(`${via}: the page reads an invalid_argument error with its message`, async () => {
      const watched = browser.current();
      const outcome = await runCrossOriginCall(watched, page, { api: api.url, via, agent: "agent_42", title: "bad agent" });

      expect(outcome, watched.diagnostics()).toEqual({ ok: false, via, step: "createSession", code: "InvalidArgument", message: INVALID_AGENT_MESSAGE });
      expect(watched.failedRequests).toEqual([]);
    });
  }

  it("rest: the page reads a 400 and its JSON error", async () => {
    const watched = browser.current();
    const outcome = await runCrossOriginCall(watched, page, { api: api.url, via: "rest", agent: "agent_42", title: "bad agent" });

    expect(outcome, watched.diagnostics()).toMatchObject({ ok: true, via: "rest", status: 400, location: null, body: { code: 3, message: INVALID_AGENT_MESSAGE } });
    expect(watched.failedRequests).toEqual([]);
  });
});

const REFUSING_SETUPS: { name: string; corsOrigins: () => string[] }[] = [
  { name: "with no origin configured", corsOrigins: () => [] },
  // Same host, another port: an allow-list must compare whole origins, not hosts.
  { name: "with only another origin configured", corsOrigins: () => [otherOriginThan(page.origin)] },
];

function otherOriginThan(origin: string): string {
  const url = new URL(origin);
  url.port = String(Number(url.port) === 65535 ? 1 : Number(url.port) + 1);
  return url.origin;
}

for (const setup of REFUSING_SETUPS) {
  describe(setup.name, () => {
    let api: TestServer;
    beforeAll(async () => {
      api = await startTestServer({ corsOrigins: setup.corsOrigins() });
    });
    afterAll(async () => {
      await api?.close();
    });

    for (const via of RPC_TRANSPORTS) {
      it(`${via}: the browser refuses createSession and no session is created`, async () => {
        const watched = browser.current();
        const outcome = await runCrossOriginCall(watched, page, { api: api.url, via, agent: AGENT_ID, title: `refused over ${via}` });

        // connect-web sees only fetch's TypeError: the browser hides why.
        expect(outcome, watched.diagnostics()).toEqual({ ok: false, via, step: "createSession", code: "Unknown", message: "Failed to fetch" });
        expect(watched.consoleErrors.join("\n")).toMatch(/blocked by CORS policy/);
        expect(await sessionsOf(api)).toEqual([]);
      });
    }

    it("rest: the browser refuses POST /v1/sessions and no session is created", async () => {
      const watched = browser.current();
      const outcome = await runCrossOriginCall(watched, page, { api: api.url, via: "rest", agent: AGENT_ID, title: "refused over rest" });

      expect(outcome, watched.diagnostics()).toEqual({ ok: false, via: "rest", step: "fetch", code: "TypeError", message: "Failed to fetch" });
      expect(watched.consoleErrors.join("\n")).toMatch(/blocked by CORS policy/);
      expect(await sessionsOf(api)).toEqual([]);
    });
  });
}
