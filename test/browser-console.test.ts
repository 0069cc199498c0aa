import { copyFileSync, mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { Page } from "playwright-core";
import { beforeEach, describe, expect, it } from "vitest";
import { saveScreenshot, useBrowser, type WatchedPage } from "./helpers/browser.js";
import { insertTestKey } from "./helpers/keys.js";
import { AGENT_ID, DEFAULT_ORG_ID, requestJson, SESSION_ID_PATTERN, startTestServer, type TestServer } from "./helpers/server.js";

// The console served at / by the server itself, driven in a real Chromium over both of
// connect-web's transports: what a person sees (exact texts of the DOM contract's
// data-testid elements) against what the API holds, read from Node over REST.

const browser = useBrowser();

/** Where `UPDATE_SCREENSHOT=1` writes the README's picture of the console. */
const README_SCREENSHOT = fileURLToPath(new URL("../docs/console.png", import.meta.url));

/** The console's rows per page without `?page_size=` (src/web/api.ts). */
const DEFAULT_PAGE_SIZE = 20;

type TransportName = "connect" | "grpc-web";

/** What a transport puts on the wire: connect-web sends Connect as JSON and gRPC-Web as binary protobuf. */
const TRANSPORTS: { name: TransportName; contentType: string }[] = [
  { name: "connect", contentType: "application/json" },
  { name: "grpc-web", contentType: "application/grpc-web+proto" },
];

interface RestSession {
  id: string;
  title: string;
  tags: string[];
  status: string;
  usage: { input_tokens: string; output_tokens: string; cache_read_tokens: string; cache_creation_tokens: string };
  created_at: string;
  started_at?: string;
  finished_at?: string;
}

interface Usage {
  input_tokens: number;
  output_tokens: number;
  cache_read_tokens: number;
  cache_creation_tokens: number;
}

/** A session to seed: its title and tags, the moves it makes and the usage it records. */
interface SeedSpec {
  title: string;
  tags: string[];
  to?: "running" | "completed" | "failed" | "cancelled";
  usage?: Usage;
}

/** Another client of the API: plain REST calls from Node, each checked for its status. */
class RestClient {
  constructor(private readonly baseUrl: string, private readonly key?: string) {}

  private async call(path: string, init: { method?: string; body?: unknown }, expected: number): Promise<any> {
    const headers: Record<string, string> = this.key ? { authorization: `Bearer ${this.key}` } : {};
    const res = await requestJson(`${this.baseUrl}${path}`, { ...init, headers });
    if (res.status !== expected) throw new Error(`${init.method ?? "GET"} ${path} answered ${res.status}: ${JSON.stringify(res.body)}`);
    return res.body;
  }

  create(title: string, tags: string[] = []): Promise<RestSession> {
    return this.call("/v1/sessions", { body: { agent_id: AGENT_ID, title, tags } }, 201);
  }

  move(id: string, verb: "start" | "complete" | "cancel"): Promise<RestSession> {
    return this.call(`/v1/sessions/${id}:${verb}`, { method: "POST" }, 200);
  }

  fail(id: string, error: string): Promise<RestSession> {
    return this.call(`/v1/sessions/${id}:fail`, { body: { error } }, 200);
  }

  recordUsage(id: string, usage: Usage): Promise<RestSession> {
    return this.call(`/v1/sessions/${id}:recordUsage`, { body: usage }, 200);
  }

  get(id: string): Promise<RestSession> {
    return this.call(`/v1/sessions/${id}`, {}, 200);
  }

  async list(): Promise<RestSession[]> {
    return (await this.call("/v1/sessions?page_size=1000", {}, 200)).sessions;
  }

  /** Creates the session, moves it along its lifecycle and records its usage; answers it as it then is. */
  async seed(spec: SeedSpec): Promise<RestSession> {
    const { id } = await this.create(spec.title, spec.tags);
    if (spec.to === "cancelled") await this.move(id, "cancel");
    else if (spec.to !== undefined) await this.move(id, "start");
    if (spec.usage) await this.recordUsage(id, spec.usage);
    if (spec.to === "completed") await this.move(id, "complete");
    if (spec.to === "failed") await this.fail(id, "the agent gave up");
    return this.get(id);
  }
}

/** A row of the sessions table as the page shows it. */
interface ShownRow {
  id: string;
  status: string;
  agent: string;
  agentTooltip: string | null;
  title: string;
  tags: string;
  tokens: string;
  tokensTooltip: string | null;
  created: string;
  createdDatetime: string | null;
  finished: string;
}

async function shownRows(page: Page): Promise<ShownRow[]> {
  return page.getByTestId("session-row").evaluateAll((rows) =>
    rows.map((row) => {
      const cell = (col: string) => row.querySelector(`[data-col="${col}"]`);
      return {
        id: row.getAttribute("data-session-id"),
        status: cell("status").textContent,
        agent: cell("agent").textContent,
        agentTooltip: cell("agent").querySelector("code").getAttribute("title"),
        title: cell("title").textContent,
        tags: cell("tags").textContent,
        tokens: cell("tokens").textContent,
        tokensTooltip: cell("tokens").getAttribute("title"),
        created: cell("created").textContent,
        createdDatetime: cell("created").querySelector("time")?.getAttribute("datetime") ?? null,
        finished: cell("finished").textContent,
      };
    }),
  );
}

/** The titles of the rows shown, once the table has settled (no load under way). */
async function shownTitles(page: Page): Promise<string[]> {
  if ((await page.getByTestId("sessions-table").getAttribute("aria-busy")) === "true") return ["(loading)"];
  return page.locator('[data-testid="session-row"] [data-col="title"]').allTextContents();
}

/** "2026-11-29 13:25:40" in this process's time zone, which the Chromium it launched shares. */
function localDateTime(iso: string): string {
  const d = new Date(iso);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** The row the console should show for a session the API holds. */
function expectedRow(s: RestSession): ShownRow {
  const u = s.usage;
  const total = BigInt(u.input_tokens) + BigInt(u.output_tokens) + BigInt(u.cache_read_tokens) + BigInt(u.cache_creation_tokens);
  return {
    id: s.id,
    status: s.status.replace("SESSION_STATUS_", "").toLowerCase(),
    agent: AGENT_ID,
    agentTooltip: "test agent",
    title: s.title,
    tags: s.tags.join(" "),
    tokens: String(total),
    tokensTooltip: `input ${u.input_tokens} · output ${u.output_tokens} · cache read ${u.cache_read_tokens} · cache write ${u.cache_creation_tokens}`,
    created: localDateTime(s.created_at),
    createdDatetime: s.created_at,
    finished: s.finished_at ? localDateTime(s.finished_at) : "",
  };
}

const text = (page: Page, testId: string) => page.getByTestId(testId).textContent();

/** Waits until the element's text is `expected`; a timeout reports the last text seen. */
async function expectText(page: Page, testId: string, expected: string, timeout = 5000): Promise<void> {
  await expect.poll(() => text(page, testId), { timeout, message: `text of ${testId}` }).toBe(expected);
}

/** Chromium's console line for an HTTP error answer to a fetch, as the harness records it. */
function failedToLoad(status: 400 | 401, url: string): string {
  const reason = status === 400 ? "Bad Request" : "Unauthorized";
  return `Failed to load resource: the server responded with a status of ${status} (${reason}) (${url}:1)`;
}

/** Nothing went wrong on the page: no console errors, no uncaught errors, no failed requests. */
function expectNoProblems(watched: WatchedPage): void {
  expect(watched.consoleErrors, watched.diagnostics()).toEqual([]);
  expect(watched.pageErrors, watched.diagnostics()).toEqual([]);
  expect(watched.failedRequests, watched.diagnostics()).toEqual([]);
}

describe.each(TRANSPORTS)("console over $name", ({ name: transport, contentType }) => {
  let server: TestServer;
  let rest: RestClient;
  // One server per test, so that each sees only its own sessions; it stops after the
  // harness's afterEach, so a failing test's screenshot still shows the page as it was.
  beforeEach(async (context) => {
    server = await startTestServer();
    rest = new RestClient(server.url);
    context.onTestFinished(() => server.close());
  });

  const consoleUrl = (query: Record<string, string> = {}) => `${server.url}/?${new URLSearchParams({ transport, ...query })}`;
  const rpcUrl = (method: string) => `${server.url}/sessions.v1.${method}`;

  /** Opens the list and waits until it shows these titles, in this order. */
  async function openList(page: Page, titles: string[], query: Record<string, string> = {}): Promise<void> {
    await page.goto(consoleUrl(query));
    await expect.poll(() => shownTitles(page), { message: "titles of the rows shown" }).toEqual(titles);
  }

  it("loads, names its transport, and lists the sessions newest first with their status, agent, tags, tokens and times", async () => {
    const seeded = [
      await rest.seed({ title: "Triage flaky test", tags: ["ci"] }),
      await rest.seed({
        title: "Nightly eval",
        tags: ["nightly", "eval"],
        to: "running",
        usage: { input_tokens: 5000, output_tokens: 1200, cache_read_tokens: 3000, cache_creation_tokens: 0 },
      }),
      await rest.seed({
        title: "Review PR 42",
        tags: ["ci", "review"],
        to: "completed",
        usage: { input_tokens: 1200, output_tokens: 350, cache_read_tokens: 800, cache_creation_tokens: 64 },
      }),
    ];
    const { page } = browser.current();
    const listCall = page.waitForRequest(rpcUrl("SessionService/ListSessions"));

    await openList(page, ["Review PR 42", "Nightly eval", "Triage flaky test"]);

    expect(await text(page, "transport-name")).toBe(transport);
    expect((await listCall).headers()["content-type"]).toBe(contentType);
    expect(await shownRows(page)).toEqual(seeded.toReversed().map(expectedRow));
    expect(await text(page, "prev-page")).toBe("Previous");
    expect(await page.getByTestId("prev-page").isDisabled()).toBe(true);
    expect(await page.getByTestId("next-page").isDisabled()).toBe(true);
    expect(await page.locator("#page-number").textContent()).toBe("Page 1");
    expect(await page.getByTestId("usage-chart").isVisible()).toBe(true);
    expectNoProblems(browser.current());
  });

  it(`pages ${DEFAULT_PAGE_SIZE} sessions at a time by default, forward and back, and ?page_size= sets the page`, async () => {
    const count = 2 * DEFAULT_PAGE_SIZE + 5;
    for (let i = 1; i <= count; i++) await rest.create(`session ${String(i).padStart(2, "0")}`);
    // Newest first: page p (from 0) holds sessions count - 20p down to count - 20p - 19.
    const titles = (from: number, to: number) =>
      Array.from({ length: from - to + 1 }, (_, i) => `session ${String(from - i).padStart(2, "0")}`);
    const { page } = browser.current();
    const pageNumber = page.locator("#page-number");
    const buttons = async () => [await page.getByTestId("prev-page").isDisabled(), await page.getByTestId("next-page").isDisabled()];

    await openList(page, titles(45, 26));
    expect([await pageNumber.textContent(), ...(await buttons())]).toEqual(["Page 1", true, false]);

    await page.getByTestId("next-page").click();
    await expect.poll(() => shownTitles(page)).toEqual(titles(25, 6));
    expect([await pageNumber.textContent(), ...(await buttons())]).toEqual(["Page 2", false, false]);

    await page.getByTestId("next-page").click();
    await expect.poll(() => shownTitles(page)).toEqual(titles(5, 1));
    expect([await pageNumber.textContent(), ...(await buttons())]).toEqual(["Page 3", false, true]);

    await page.getByTestId("prev-page").click();
    await expect.poll(() => shownTitles(page)).toEqual(titles(25, 6));
    expect([await pageNumber.textContent(), ...(await buttons())]).toEqual(["Page 2", false, false]);

    await page.getByTestId("prev-page").click();
    await expect.poll(() => shownTitles(page)).toEqual(titles(45, 26));
    expect([await pageNumber.textContent(), ...(await buttons())]).toEqual(["Page 1", true, false]);

    await openList(page, titles(45, 39), { page_size: "7" });
    await page.getByTestId("next-page").click();
    await expect.poll(() => shownTitles(page)).toEqual(titles(38, 32));
    expect(await pageNumber.textContent()).toBe("Page 2");
    expectNoProblems(browser.current());
  });

  it("narrows the table to the status chosen in the filter, and shows every session again with all", async () => {
    const running = { input_tokens: 10, output_tokens: 5, cache_read_tokens: 0, cache_creation_tokens: 0 };
    const seeded = [
      await rest.seed({ title: "pending one", tags: [] }),
      await rest.seed({ title: "running one", tags: ["a"], to: "running", usage: running }),
      await rest.seed({ title: "completed one", tags: ["b"], to: "completed" }),
      await rest.seed({ title: "failed one", tags: ["c"], to: "failed" }),
      await rest.seed({ title: "running two", tags: [], to: "running" }),
    ];
    const byTitle = (title: string) => expectedRow(seeded.find((s) => s.title === title)!);
    const { page } = browser.current();
    const filter = page.getByTestId("status-filter");
    await openList(page, ["running two", "failed one", "completed one", "running one", "pending one"]);

    expect(await filter.locator("option").evaluateAll((options) => options.map((o) => [o.value, o.textContent]))).toEqual([
      ["", "all"],
      ["SESSION_STATUS_PENDING", "pending"],
      ["SESSION_STATUS_RUNNING", "running"],
      ["SESSION_STATUS_COMPLETED", "completed"],
      ["SESSION_STATUS_FAILED", "failed"],
      ["SESSION_STATUS_CANCELLED", "cancelled"],
    ]);
    expect(await filter.inputValue()).toBe("");

    await filter.selectOption("SESSION_STATUS_RUNNING");
    await expect.poll(() => shownTitles(page)).toEqual(["running two", "running one"]);
    expect(await shownRows(page)).toEqual([byTitle("running two"), byTitle("running one")]);

    await filter.selectOption("SESSION_STATUS_FAILED");
    await expect.poll(() => shownTitles(page)).toEqual(["failed one"]);
    expect(await shownRows(page)).toEqual([byTitle("failed one")]);

    await filter.selectOption("SESSION_STATUS_CANCELLED");
    await expect.poll(() => shownTitles(page)).toEqual([]);
    expect(await page.locator('[data-testid="sessions-table"] tbody').textContent()).toBe("No sessions with this status.");

    await filter.selectOption("");
    await expect.poll(() => shownTitles(page)).toEqual(["running two", "failed one", "completed one", "running one", "pending one"]);
    expectNoProblems(browser.current());
  });

  it("creates a session from the form: its id is shown, it heads the table, and the API holds it", async () => {
    await rest.create("older session");
    const { page } = browser.current();
    await openList(page, ["older session"]);

    await page.getByTestId("create-agent-id").fill(AGENT_ID);
    await page.getByTestId("create-title").fill("Made in the console");
    await page.getByTestId("create-tags").fill(" ui, smoke ,");
    await page.getByTestId("create-submit").click();

    await expect.poll(() => shownTitles(page)).toEqual(["Made in the console", "older session"]);
    const id = (await text(page, "created-session-id"))!;
    expect(id).toMatch(SESSION_ID_PATTERN);
    expect(await page.getByTestId("created-session-id").getAttribute("href")).toBe(`#/sessions/${id}`);
    expect(await page.locator("#created").textContent()).toBe(`Created ${id}`);
    expect((await shownRows(page))[0]).toEqual(expectedRow(await rest.get(id)));
    expect(await rest.get(id)).toMatchObject({ id, title: "Made in the console", tags: ["ui", "smoke"], status: "SESSION_STATUS_PENDING" });
    // Ready for the next one: title and tags cleared, the agent kept, no errors shown.
    expect([
      await page.getByTestId("create-agent-id").inputValue(),
      await page.getByTestId("create-title").inputValue(),
      await page.getByTestId("create-tags").inputValue(),
    ]).toEqual([AGENT_ID, "", ""]);
    for (const testId of ["error-agent_id", "error-title", "error-tags", "form-error"]) {
      expect(await page.getByTestId(testId).isHidden(), testId).toBe(true);
    }
    expect((await rest.list()).map((s) => s.title)).toEqual(["Made in the console", "older session"]);
    expectNoProblems(browser.current());
  });

  it("shows every status after a create, so the new pending session is in view whatever the filter was", async () => {
    await rest.seed({ title: "already running", tags: [], to: "running" });
    await rest.create("still pending");
    const { page } = browser.current();
    await openList(page, ["still pending", "already running"]);
    await page.getByTestId("status-filter").selectOption("SESSION_STATUS_RUNNING");
    await expect.poll(() => shownTitles(page)).toEqual(["already running"]);

    await page.getByTestId("create-agent-id").fill(AGENT_ID);
    await page.getByTestId("create-title").fill("made while filtered");
    await page.getByTestId("create-submit").click();

    await expect.poll(() => shownTitles(page)).toEqual(["made while filtered", "still pending", "already running"]);
    expect(await page.getByTestId("status-filter").inputValue()).toBe("");
    expectNoProblems(browser.current());
  });

  const BAD_AGENTS = [
    { name: "a malformed agent id", agentId: "agent_nope" },
    { name: "a well-formed agent id of no agent", agentId: "agent_" + "f".repeat(32) },
  ];

  it.each(BAD_AGENTS)("shows the server's message for $name next to the agent field and creates nothing", async ({ agentId }) => {
    // What the server says to the same request, from Node.
    const answer = await requestJson(`${server.url}/v1/sessions`, { body: { agent_id: agentId, title: "never", tags: ["x"] } });
    expect(answer.status).toBe(400);
    expect(answer.body.details[0].field_violations).toHaveLength(1);
    const { field, description } = answer.body.details[0].field_violations[0];
    expect(field).toBe("agent_id");
    expect(description).toMatch(/^Invalid agent ID: /);

    await rest.create("the only session");
    const watched = browser.current();
    const { page } = watched;
    await openList(page, ["the only session"]);

    await page.getByTestId("create-agent-id").fill(agentId);
    await page.getByTestId("create-title").fill("never");
    await page.getByTestId("create-tags").fill("x");
    await page.getByTestId("create-submit").click();

    await expectText(page, "error-agent_id", description);
    expect(await page.getByTestId("error-agent_id").isVisible()).toBe(true);
    expect(await page.getByTestId("create-agent-id").getAttribute("aria-invalid")).toBe("true");
    for (const testId of ["error-title", "error-tags", "form-error"]) {
      expect(await page.getByTestId(testId).isHidden(), testId).toBe(true);
    }
    expect(await page.locator("#created").isHidden()).toBe(true);
    // The inputs keep what was typed, to be corrected.
    expect(await page.getByTestId("create-title").inputValue()).toBe("never");
    expect(await shownTitles(page)).toEqual(["the only session"]);
    expect((await rest.list()).map((s) => s.title)).toEqual(["the only session"]);
    // Connect answers an error with its HTTP status, which Chromium logs; gRPC-Web answers 200.
    expect(watched.consoleErrors, watched.diagnostics()).toEqual(
      transport === "connect" ? [failedToLoad(400, rpcUrl("SessionService/CreateSession"))] : [],
    );
    expect(watched.pageErrors, watched.diagnostics()).toEqual([]);
    expect(watched.failedRequests, watched.diagnostics()).toEqual([]);
  });

  it("watches a session live: status, tokens and watch state follow another client's moves without a reload", async () => {
    const session = await rest.create("Watched live", ["live"]);
    const { page } = browser.current();
    await openList(page, ["Watched live"]);
    // Survives only as long as the document does: a reload would drop it.
    await page.evaluate(() => ((globalThis as { sameDocument?: boolean }).sameDocument = true));

    await page.locator(`[data-session-id="${session.id}"] [data-col="title"] a`).click();
    expect(new URL(page.url()).hash).toBe(`#/sessions/${session.id}`);
    expect(await page.getByTestId("session-detail").isVisible()).toBe(true);
    expect(await page.getByTestId("sessions-table").isVisible()).toBe(false);
    await expectText(page, "watch-state", "live");
    const tokens = async () =>
      Promise.all(["input", "output", "cache-read", "cache-write"].map((kind) => text(page, `detail-${kind}-tokens`)));
    expect(await text(page, "detail-status")).toBe("pending");
    expect(await tokens()).toEqual(["0", "0", "0", "0"]);
    expect(await page.locator("#detail-title").textContent()).toBe("Watched live");
    expect(await page.locator("#detail-id").textContent()).toBe(session.id);
    // Every status the page shows from now on, in order.
    await page.getByTestId("detail-status").evaluate((element) => {
      const seen: string[] = [];
      (globalThis as { statusesSeen?: string[] }).statusesSeen = seen;
      const { MutationObserver } = globalThis as any;
      new MutationObserver(() => {
        if (seen.at(-1) !== element.textContent) seen.push(element.textContent);
      }).observe(element, { childList: true, characterData: true, subtree: true });
    });

    const started = await rest.move(session.id, "start");
    await expectText(page, "detail-status", "running");
    expect(await page.locator("#detail-started").textContent()).toBe(localDateTime(started.started_at!));

    await rest.recordUsage(session.id, { input_tokens: 1200, output_tokens: 350, cache_read_tokens: 800, cache_creation_tokens: 40 });
    await expect.poll(tokens).toEqual(["1200", "350", "800", "40"]);
    await rest.recordUsage(session.id, { input_tokens: 300, output_tokens: 50, cache_read_tokens: 0, cache_creation_tokens: 0 });
    await expect.poll(tokens).toEqual(["1500", "400", "800", "40"]);
    expect(await text(page, "watch-state")).toBe("live");

    const completed = await rest.move(session.id, "complete");
    await expectText(page, "detail-status", "completed");
    await expectText(page, "watch-state", "ended");
    expect(await page.locator("#detail-finished").textContent()).toBe(localDateTime(completed.finished_at!));
    expect(await tokens()).toEqual(["1500", "400", "800", "40"]);
    expect(await page.evaluate(() => (globalThis as { statusesSeen?: string[] }).statusesSeen)).toEqual(["running", "completed"]);
    expect(await page.evaluate(() => (globalThis as { sameDocument?: boolean }).sameDocument)).toBe(true);
    expectNoProblems(browser.current());
  });

  it("asks for an API key once the server has keys, loads the table with it, keeps it in sessionStorage only, and forgets it", async () => {
    await rest.create("behind a key", ["auth"]);
    const { key } = await insertTestKey(server.store, DEFAULT_ORG_ID, "console");
    const watched = browser.current();
    const { page, context } = watched;

    await page.goto(consoleUrl());
    await page.getByTestId("api-key-form").waitFor({ state: "visible" });
    const missing = "missing API key: send Authorization: Bearer <key>";
    await expect.poll(() => page.locator("#list-error").textContent()).toBe(`Could not list sessions: ${missing}`);
    expect(await page.locator("#api-key-reason").textContent()).toBe(`This server requires an API key (${missing}).`);
    expect(await shownTitles(page)).toEqual([]);
    expect(await page.getByTestId("api-key-forget").isHidden()).toBe(true);

    const listCall = page.waitForRequest(rpcUrl("SessionService/ListSessions"));
    await page.getByTestId("api-key-input").fill(key);
    await page.getByTestId("api-key-submit").click();

    await expect.poll(() => shownTitles(page)).toEqual(["behind a key"]);
    expect((await listCall).headers()["authorization"]).toBe(`Bearer ${key}`);
    expect(await page.getByTestId("api-key-form").isHidden()).toBe(true);
    expect(await page.locator("#list-error").isHidden()).toBe(true);
    expect(await page.getByTestId("api-key-forget").isVisible()).toBe(true);
    const storage = await page.evaluate(() => {
      const { sessionStorage, localStorage, document } = globalThis as any;
      return { session: { ...sessionStorage }, local: { ...localStorage }, cookie: document.cookie };
    });
    expect(storage).toEqual({ session: { "sessions-api-key": key }, local: {}, cookie: "" });
    expect(await context.cookies()).toEqual([]);

    // Forgetting the key forgets what it showed, and asks again.
    await page.getByTestId("api-key-forget").click();
    await expect.poll(() => page.locator("#list-error").textContent()).toBe(`Could not list sessions: ${missing}`);
    expect(await shownTitles(page)).toEqual([]);
    expect(await page.getByTestId("api-key-form").isVisible()).toBe(true);
    expect(await page.getByTestId("api-key-forget").isHidden()).toBe(true);
    expect(await page.evaluate(() => (globalThis as any).sessionStorage.length)).toBe(0);

    // Without a key, the agents and the sessions were each refused: at first, and after forgetting it.
    const refusals = [failedToLoad(401, rpcUrl("AgentService/ListAgents")), failedToLoad(401, rpcUrl("SessionService/ListSessions"))];
    expect(watched.consoleErrors, watched.diagnostics()).toEqual(transport === "connect" ? [...refusals, ...refusals] : []);
    expect(watched.pageErrors, watched.diagnostics()).toEqual([]);
    expect(watched.failedRequests, watched.diagnostics()).toEqual([]);
  });

  it("empties the session view when its API key is forgotten, and asks for one again", async () => {
    const session = await rest.create("behind a key, watched", ["auth"]);
    await rest.recordUsage(session.id, { input_tokens: 70, output_tokens: 7, cache_read_tokens: 0, cache_creation_tokens: 0 });
    const { key } = await insertTestKey(server.store, DEFAULT_ORG_ID, "console");
    const watched = browser.current();
    const { page } = watched;
    await page.goto(`${consoleUrl()}#/sessions/${session.id}`);
    await page.getByTestId("api-key-form").waitFor({ state: "visible" });
    await page.getByTestId("api-key-input").fill(key);
    await page.getByTestId("api-key-submit").click();
    await expectText(page, "watch-state", "live");
    expect(await text(page, "detail-input-tokens")).toBe("70");
    expect(await page.locator("#detail-title").textContent()).toBe("behind a key, watched");

    await page.getByTestId("api-key-forget").click();
    await expectText(page, "watch-state", "error");
    expect(await page.getByTestId("api-key-form").isVisible()).toBe(true);
    // Nothing read with the forgotten key stays on screen but the id the address names.
    expect(await page.locator("#detail-id").textContent()).toBe(session.id);
    expect(await page.locator("#detail-title").textContent()).toBe("Session");
    expect(await text(page, "detail-input-tokens")).toBe("");
    expect(await text(page, "detail-status")).toBe("");
    expect(watched.pageErrors, watched.diagnostics()).toEqual([]);
  });

  it("shows sessions of every status, their tags and a usage chart with bars (screenshot)", async () => {
    const specs: SeedSpec[] = [
      { title: "Refactor billing module", tags: ["refactor"], to: "completed", usage: { input_tokens: 18400, output_tokens: 5200, cache_read_tokens: 12000, cache_creation_tokens: 2100 } },
      { title: "Review PR 42", tags: ["ci", "review"], to: "completed", usage: { input_tokens: 9600, output_tokens: 2300, cache_read_tokens: 15400, cache_creation_tokens: 800 } },
      { title: "Summarise incident 7", tags: ["ops"], to: "failed", usage: { input_tokens: 6100, output_tokens: 900, cache_read_tokens: 2000, cache_creation_tokens: 0 } },
      { title: "Translate release notes", tags: ["docs", "i18n"], to: "cancelled" },
      { title: "Nightly eval", tags: ["nightly", "eval"], to: "running", usage: { input_tokens: 14800, output_tokens: 3900, cache_read_tokens: 9000, cache_creation_tokens: 1500 } },
      { title: "Triage flaky test", tags: ["ci"], to: "running", usage: { input_tokens: 4200, output_tokens: 1100, cache_read_tokens: 6300, cache_creation_tokens: 0 } },
      { title: "Draft onboarding guide", tags: ["docs"] },
    ];
    const seeded: RestSession[] = [];
    for (const spec of specs) seeded.push(await rest.seed(spec));
    const { page } = browser.current();
    await page.setViewportSize({ width: 1280, height: 800 });
    await openList(page, specs.map((s) => s.title).toReversed());
    expect(await shownRows(page)).toEqual(seeded.toReversed().map(expectedRow));
    // Chart.js draws on the next animation frame after a resize; let it.
    await page.evaluate(() => new Promise((resolve) => (globalThis as any).requestAnimationFrame(() => (globalThis as any).requestAnimationFrame(resolve))));

    const path = await saveScreenshot(page, `console over ${transport}`);
    if (process.env.UPDATE_SCREENSHOT === "1" && transport === "connect") {
      mkdirSync(new URL("../docs/", import.meta.url), { recursive: true });
      copyFileSync(path, README_SCREENSHOT);
    }
    expectNoProblems(browser.current());
  });
});
