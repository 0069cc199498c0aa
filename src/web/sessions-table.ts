import type { Session } from "../../gen/sessions/v1/session_pb.js";
import { errorText, type Api } from "./api.js";
import { byTestId, h, showText, tagChips } from "./dom.js";
import {
  dateTime,
  FILTERABLE_STATUSES,
  isoTime,
  statusEnumName,
  statusFromEnumName,
  statusLabel,
  totalTokens,
  usageSummary,
} from "./format.js";
import type { Timestamp } from "@bufbuild/protobuf/wkt";

export interface SessionsTableOptions {
  readonly api: Api;
  readonly pageSize: number;
  /** Agent names for tooltips, when known. */
  readonly agentName: (id: string) => string | undefined;
  /** Each page shown, for the usage chart. */
  readonly onPage: (sessions: readonly Session[]) => void;
  /** Each failed load, after the table showed it; the page asks for a key on unauthenticated. */
  readonly onError: (err: unknown) => void;
}

const COLUMNS = 7;

/**
 * The sessions table: newest first, a status filter, and paging with the API's page tokens.
 * Tokens only lead forward, so the tokens of the pages seen so far are kept to go back.
 */
export class SessionsTable {
  private readonly body: HTMLTableSectionElement;
  private readonly table = byTestId<HTMLTableElement>("sessions-table");
  private readonly filter = byTestId<HTMLSelectElement>("status-filter");
  private readonly prev = byTestId<HTMLButtonElement>("prev-page");
  private readonly next = byTestId<HTMLButtonElement>("next-page");
  private readonly pageNumber = document.getElementById("page-number")!;
  private readonly error = document.getElementById("list-error")!;
  /** pageTokens[i] fetches page i; page 0's is "". */
  private pageTokens = [""];
  private pageIndex = 0;
  private nextPageToken = "";
  /** Answers to loads that were overtaken (a click while one ran) are dropped. */
  private generation = 0;

  constructor(private readonly options: SessionsTableOptions) {
    this.body = this.table.tBodies[0]!;
    this.filter.replaceChildren(
      h("option", { value: "" }, "all"),
      ...FILTERABLE_STATUSES.map((s) => h("option", { value: statusEnumName(s) }, statusLabel(s))),
    );
    this.filter.addEventListener("change", () => void this.firstPage());
    this.prev.addEventListener("click", () => {
      if (this.pageIndex > 0) void this.show(this.pageIndex - 1);
    });
    this.next.addEventListener("click", () => {
      if (this.nextPageToken === "") return;
      this.pageTokens = [...this.pageTokens.slice(0, this.pageIndex + 1), this.nextPageToken];
      void this.show(this.pageIndex + 1);
    });
    document.getElementById("refresh-sessions")!.addEventListener("click", () => void this.show(this.pageIndex));
  }

  /**
   * After a create: the first page of every status, so that the new (pending) session is in
   * view whatever the filter was.
   */
  showCreated(): Promise<void> {
    this.filter.value = "";
    return this.firstPage();
  }

  /** Shows the first page with the current filter (after a filter change, a new key). */
  firstPage(): Promise<void> {
    this.pageTokens = [""];
    return this.show(0);
  }

  /** Shows the current page again. */
  refresh(): Promise<void> {
    return this.show(this.pageIndex);
  }

  private async show(index: number): Promise<void> {
    const generation = ++this.generation;
    this.table.setAttribute("aria-busy", "true");
    this.prev.disabled = this.next.disabled = true;
    const status = statusFromEnumName(this.filter.value);
    try {
      const page = await this.options.api.sessions.listSessions({
        pageSize: this.options.pageSize,
        pageToken: this.pageTokens[index] ?? "",
        status: status === undefined ? [] : [status],
      });
      if (generation !== this.generation) return;
      this.pageIndex = index;
      this.nextPageToken = page.nextPageToken;
      showText(this.error, "");
      this.render(page.sessions);
      this.options.onPage(page.sessions);
    } catch (err) {
      if (generation !== this.generation) return;
      showText(this.error, `Could not list sessions: ${errorText(err)}`);
      // Rows kept from an earlier load would pass for this one's answer: after "Forget API
      // key" they stayed on screen, read with the key just forgotten.
      this.body.replaceChildren();
      this.options.onPage([]);
      this.options.onError(err);
    } finally {
      if (generation === this.generation) {
        this.table.removeAttribute("aria-busy");
        this.prev.disabled = this.pageIndex === 0;
        this.next.disabled = this.nextPageToken === "";
        this.pageNumber.textContent = `Page ${this.pageIndex + 1}`;
      }
    }
  }

  private render(sessions: readonly Session[]): void {
    if (sessions.length === 0) {
      const text = this.filter.value === "" ? "No sessions yet." : "No sessions with this status.";
      this.body.replaceChildren(h("tr", { class: "empty" }, h("td", { colspan: String(COLUMNS) }, text)));
      return;
    }
    this.body.replaceChildren(...sessions.map((s) => this.row(s)));
  }

  private row(session: Session): HTMLTableRowElement {
    const cell = (col: string, ...children: (Node | string)[]) => h("td", { "data-col": col }, ...children);
    const agentName = this.options.agentName(session.agentId);
    const link = h("a", { href: `#/sessions/${session.id}` }, session.title);
    // An untitled session still needs something to click; CSS shows "untitled" without
    // putting words in the title cell's text.
    if (session.title === "") {
      link.classList.add("untitled");
      link.setAttribute("aria-label", `untitled session ${session.id}`);
    }
    return h(
      "tr",
      { "data-testid": "session-row", "data-session-id": session.id },
      cell("status", h("span", { class: `status status-${statusLabel(session.status)}` }, statusLabel(session.status))),
      cell("agent", h("code", agentName ? { title: agentName } : {}, session.agentId)),
      cell("title", link),
      cell("tags", ...tagChips(session.tags)),
      h("td", { "data-col": "tokens", class: "number", title: usageSummary(session.usage) }, String(totalTokens(session.usage))),
      cell("created", time(session.createdAt)),
      cell("finished", time(session.finishedAt)),
    );
  }
}

function time(timestamp: Timestamp | undefined): Node | string {
  if (!timestamp) return "";
  return h("time", { datetime: isoTime(timestamp), title: isoTime(timestamp) }, dateTime(timestamp));
}
