import type { Session } from "../../gen/sessions/v1/session_pb.js";
import { errorText, isUnauthenticated, type Api } from "./api.js";
import { byTestId, h, showText, tagChips } from "./dom.js";
import { dateTime, isoTime, statusLabel } from "./format.js";
import type { LiveUsageChart } from "./usage-chart.js";

/** "connecting" until the first message; then what the contract's tests read: live, ended or error. */
type WatchState = "connecting" | "live" | "ended" | "error";

export interface SessionDetailOptions {
  readonly api: Api;
  readonly chart: LiveUsageChart;
  readonly agentName: (id: string) => string | undefined;
  /** A watch that failed; the page asks for a key on unauthenticated. */
  readonly onError: (err: unknown) => void;
}

/**
 * One session, kept current by WatchSession: the server sends the session as it is, then
 * every change, and ends the stream after a final status.
 */
export class SessionDetail {
  private readonly section = byTestId("session-detail");
  private readonly watchState = byTestId("watch-state");
  private readonly error = document.getElementById("detail-error")!;
  private readonly retry = document.getElementById("watch-retry") as HTMLButtonElement;
  private readonly fields = {
    id: document.getElementById("detail-id")!,
    title: document.getElementById("detail-title")!,
    status: byTestId("detail-status"),
    agent: document.getElementById("detail-agent")!,
    model: document.getElementById("detail-model")!,
    tags: document.getElementById("detail-tags")!,
    created: document.getElementById("detail-created")!,
    started: document.getElementById("detail-started")!,
    finished: document.getElementById("detail-finished")!,
    updated: document.getElementById("detail-updated")!,
    failure: document.getElementById("detail-failure")!,
    prompt: document.getElementById("detail-prompt")!,
    response: document.getElementById("detail-response")!,
    inputTokens: byTestId("detail-input-tokens"),
    outputTokens: byTestId("detail-output-tokens"),
    cacheReadTokens: byTestId("detail-cache-read-tokens"),
    cacheWriteTokens: byTestId("detail-cache-write-tokens"),
  };
  private id = "";
  private watching: AbortController | undefined;

  constructor(private readonly options: SessionDetailOptions) {
    this.retry.addEventListener("click", () => void this.watch());
  }

  /** Shows the session and watches it until it ends, fails, or close() is called. */
  open(id: string): void {
    this.close();
    this.id = id;
    this.section.hidden = false;
    this.clearFields();
    void this.watch();
  }

  /** Empties the view down to the session's id (before a watch, or when the key is refused). */
  private clearFields(): void {
    for (const element of Object.values(this.fields)) element.textContent = "";
    this.fields.id.textContent = this.id;
    this.fields.title.textContent = "Session";
    this.options.chart.clear();
  }

  /** Stops watching (the view is left). */
  close(): void {
    this.watching?.abort();
    this.watching = undefined;
    this.section.hidden = true;
  }

  /** Watches again after an error or after a key was entered; nothing when no session is open. */
  rewatch(): void {
    if (this.watching) void this.watch();
  }

  private async watch(): Promise<void> {
    this.watching?.abort();
    const watching = new AbortController();
    this.watching = watching;
    this.setState("connecting");
    showText(this.error, "");
    try {
      for await (const session of this.options.api.sessions.watchSession({ id: this.id }, { signal: watching.signal })) {
        this.setState("live");
        this.render(session);
        this.options.chart.add(session);
      }
      if (!watching.signal.aborted) this.setState("ended");
    } catch (err) {
      // Aborted because the view was left or the watch restarted: nothing to report.
      if (watching.signal.aborted) return;
      this.setState("error");
      // What was read with a key that is now refused (forgotten, revoked) does not stay on screen.
      if (isUnauthenticated(err)) this.clearFields();
      showText(this.error, `Watch failed: ${errorText(err)}`);
      this.options.onError(err);
    }
  }

  private setState(state: WatchState): void {
    this.watchState.textContent = state;
    this.watchState.className = `watch-state watch-${state}`;
    this.retry.hidden = state !== "error";
  }

  private render(s: Session): void {
    const f = this.fields;
    f.title.textContent = s.title === "" ? "Untitled session" : s.title;
    f.status.textContent = statusLabel(s.status);
    f.status.className = `status status-${statusLabel(s.status)}`;
    const agentName = this.options.agentName(s.agentId);
    f.agent.replaceChildren(h("code", {}, s.agentId), ...(agentName ? [` (${agentName})`] : []));
    f.model.textContent = s.modelId === "" ? "agent's default" : s.modelId;
    f.tags.replaceChildren(...tagChips(s.tags));
    for (const [element, timestamp] of [
      [f.created, s.createdAt],
      [f.started, s.startedAt],
      [f.finished, s.finishedAt],
      [f.updated, s.updatedAt],
    ] as const) {
      element.replaceChildren(timestamp ? h("time", { datetime: isoTime(timestamp) }, dateTime(timestamp)) : "—");
    }
    f.failure.textContent = s.error === "" ? "—" : s.error;
    f.prompt.textContent = s.promptPreview === "" ? "—" : s.promptPreview;
    f.response.textContent = s.responsePreview === "" ? "—" : s.responsePreview;
    f.inputTokens.textContent = String(s.usage?.inputTokens ?? 0n);
    f.outputTokens.textContent = String(s.usage?.outputTokens ?? 0n);
    f.cacheReadTokens.textContent = String(s.usage?.cacheReadTokens ?? 0n);
    f.cacheWriteTokens.textContent = String(s.usage?.cacheCreationTokens ?? 0n);
  }
}
