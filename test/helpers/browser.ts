import { existsSync, mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, beforeEach } from "vitest";

/**
 * Debian's package unless CHROMIUM_PATH names another; playwright's own downloads are
 * unreachable here, so they are never used.
 */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH || "/usr/bin/chromium";

/**
 * Headless without a sandbox (tests run as root in a container), and without the
 * background traffic (updates, sync, safe-browsing lists) that would reach for the internet.
 */
export const CHROMIUM_ARGS: readonly string[] = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

/** Where screenshots go; git-ignored. */
export const TEST_RESULTS_DIR = fileURLToPath(new URL("../../test-results/", import.meta.url));

/**
 * Launches Debian's Chromium through playwright-core. Fails at once, naming the package to
 * install, when it is missing, instead of playwright's advice to download a browser.
 */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(
      `Chromium is not installed at ${CHROMIUM_PATH}: the browser tests need Debian's package ` +
        "(npm test installs it: scripts/test-prerequisites.sh; or apt-get install -y chromium); they never download a browser.",
    );
  }
  return chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: [...CHROMIUM_ARGS] });
}

/** A page in its own browser context, and everything that went wrong on it so far. */
export interface WatchedPage {
  readonly context: BrowserContext;
  readonly page: Page;
  /** Console messages of type error, with their source location when known. */
  readonly consoleErrors: string[];
  /** Uncaught exceptions and unhandled rejections of the page's scripts. */
  readonly pageErrors: string[];
  /** Requests that got no response at all (CORS refusals, refused connections): method, URL and reason. */
  readonly failedRequests: string[];
  /**
   * The three lists above as one text, for assertion messages and failure reports; it ends
   * with a newline, so that what vitest appends to an assertion message starts a line.
   */
  diagnostics(): string;
}

/**
 * Opens a page in a fresh context (no cookies, cache or storage shared with other tests)
 * and records its console errors, page errors and failed requests.
 */
export async function openWatchedPage(browser: Browser): Promise<WatchedPage> {
  const context = await browser.newContext();
  const page = await context.newPage();
  const consoleErrors: string[] = [];
  const pageErrors: string[] = [];
  const failedRequests: string[] = [];
  page.on("console", (message) => {
    if (message.type() !== "error") return;
    const { url, lineNumber } = message.location();
    consoleErrors.push(url ? `${message.text()} (${url}:${lineNumber + 1})` : message.text());
  });
  page.on("pageerror", (error) => pageErrors.push(error.stack ?? String(error)));
  page.on("requestfailed", (request) =>
    failedRequests.push(`${request.method()} ${request.url()}: ${request.failure()?.errorText ?? "failed"}`),
  );
  return {
    context,
    page,
    consoleErrors,
    pageErrors,
    failedRequests,
    diagnostics() {
      const section = (title: string, lines: string[]) =>
        `${title}:${lines.length === 0 ? " none" : lines.map((line) => `\n  ${line}`).join("")}`;
      return [
        section("console errors", consoleErrors),
        section("page errors", pageErrors),
        section("failed requests", failedRequests),
      ].join("\n") + "\n";
    },
  };
}

/** Saves a full-page screenshot as test-results/<name>.png (name made file-safe); returns its path. */
export async function saveScreenshot(page: Page, name: string): Promise<string> {
  mkdirSync(TEST_RESULTS_DIR, { recursive: true });
  const fileName = name.replace(/[^A-Za-z0-9._-]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 150) || "page";
  const path = `${TEST_RESULTS_DIR}${fileName}.png`;
  await page.screenshot({ path, fullPage: true });
  return path;
}

/**
 * One Chromium for the test file (launched in beforeAll, closed in afterAll) and a fresh
 * watched page per test. When a test fails, its page's diagnostics are printed and a
 * screenshot is saved under test-results/, named after the test.
 * Call at the top of a test file or describe block; read `current()` inside tests.
 */
export function useBrowser(): { browser(): Browser; current(): WatchedPage } {
  let browser: Browser | undefined;
  let watched: WatchedPage | undefined;
  beforeAll(async () => {
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
  });
  beforeEach(async () => {
    watched = await openWatchedPage(browser!);
  });
  afterEach(async (context) => {
    const page = watched;
    watched = undefined;
    if (!page) return;
    if (context.task.result?.state === "fail") {
      // A crashed or closed page cannot be photographed; the diagnostics still help.
      const screenshot = await saveScreenshot(page.page, `${context.task.suite?.name ?? ""} ${context.task.name}`).catch(
        (err: unknown) => `none (${err instanceof Error ? err.message : String(err)})`,
      );
      console.error(`${context.task.name}\n${page.diagnostics()}screenshot: ${screenshot}`);
    }
    await page.context.close();
  });
  return {
    browser() {
      if (!browser) throw new Error("useBrowser(): the browser is launched in beforeAll; use it inside tests");
      return browser;
    },
    current() {
      if (!watched) throw new Error("useBrowser(): a page exists only while a test runs");
      return watched;
    },
  };
}
