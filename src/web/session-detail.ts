import type { SessionEvent } from "../../gen/sessions/v1/session_event_pb.js";
import type { Session } from "../../gen/sessions/v1/session_pb.js";
import { errorText, isUnauthenticated, type Api } from "./api.js";
import { ConversationView } from "./conversation-view.js";
import { byTestId, h, showText, tagChips } from "./dom.js";
import { dateTime, isoTime, statusLabel } from "./format.js";
import { followSessionEvents } from "./session-event-follower.js";
import type { LiveUsageChart } from "./usage-chart.js";

/**
 * "connecting" until the first event; then what the contract's tests read: live, ended or
 * error; "reconnecting" while a dropped stream waits to resume.
 */
type WatchState = "connecting" | "live" | "reconnecting" | "ended" | "error";

/** Messages per ListMessages call: the API's largest page. */
const MESSAGES_PAGE_SIZE = 1000;

export interface SessionDetailOptions {
  readonly api: Api;
  readonly chart: LiveUsageChart;
  readonly agentName: (id: string) => string | undefined;
  /** A load or follow that failed; the page asks for a key on unauthenticated. */
  readonly onError: (err: unknown) => void;
}

/**
 * One session and its conversation, kept current by the session's event log: the messages
 * so far are read in pages (ListMessages), then StreamSessionEvents follows from the last
 * of them. Each event carries the session as it was right after it, which the fields and
 * the chart show, and MESSAGE_ADDED events carry their message, which the conversation
 * appends. One stream and one cursor serve both, so the fields never run ahead of or behind
 * the messages shown (the tokens are those of the messages above them), and a dropped
 * stream resumes after the last sequence seen: nothing missed, nothing twice.
 *
 * The stream starts just before the last message (its sequence minus one), so that its
 * first event, that message's MESSAGE_ADDED (dropped as already shown), brings the session
 * at once; a session without messages is followed from its CREATED event.
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
  private readonly conversation = new ConversationView();
  private id = "";
  private watching: AbortController | undefined;
  /** Whether the messages so far were read; until then there is no cursor to follow from. */
  private loaded = false;
  /** The sequence of the last event received: where a resumed stream starts. */
  private cursor = 0n;

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
    this.conversation.clear();
    this.loaded = false;
    this.cursor = 0n;
  }

  /** Stops watching (the view is left). */
  close(): void {
    this.watching?.abort();
    this.watching = undefined;
    this.section.hidden = true;
  }

  /**
   * Follows again after an error or after a key was entered, from the last event seen (from
   * the start when the view was emptied); nothing when no session is open.
   */
  rewatch(): void {
    if (this.watching) void this.watch();
  }

  private async watch(): Promise<void> {
    this.watching?.abort();
    const watching = new AbortController();
    const { signal } = watching;
    this.watching = watching;
    this.setState("connecting");
    showText(this.error, "");
    try {
      if (!this.loaded) {
        await this.loadMessages(signal);
        if (signal.aborted) return;
        this.loaded = true;
        const last = this.conversation.lastMessageSequence;
        this.cursor = last > 0n ? last - 1n : 0n;
      }
      await followSessionEvents(this.options.api, this.id, this.cursor, signal, {
        onLive: () => {
          this.setState("live");
          showText(this.error, "");
        },
        onEvent: (event) => this.apply(event),
        onRetry: (err, delayMs) => {
          this.setState("reconnecting");
          showText(this.error, `The event stream dropped (${errorText(err)}); resuming in ${delayMs / 1000} s.`);
        },
      });
      if (!signal.aborted) this.setState("ended");
    } catch (err) {
      // Aborted because the view was left or the watch restarted: nothing to report.
      if (signal.aborted) return;
      if (!this.loaded) this.conversation.abandonLoading();
      this.setState("error");
      // What was read with a key that is now refused (forgotten, revoked) does not stay on screen.
      if (isUnauthenticated(err)) this.clearFields();
      showText(this.error, `Watch failed: ${errorText(err)}`);
      this.options.onError(err);
    }
  }

  /** Reads the conversation so far, a page at a time, showing each page as it arrives. */
  private async loadMessages(signal: AbortSignal): Promise<void> {
    this.conversation.setLoading(true);
    let pageToken = "";
    do {
      const page = await this.options.api.sessions.listMessages(
        { sessionId: this.id, pageSize: MESSAGES_PAGE_SIZE, pageToken },
        { signal },
      );
      if (signal.aborted) return;
      this.conversation.append(page.messages);
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    this.conversation.setLoading(false);
  }

  private apply(event: SessionEvent): void {
    this.cursor = event.sequence;
    if (event.change.case === "message") this.conversation.append([event.change.value]);
    if (event.session) {
      this.render(event.session);
      this.options.chart.add(event.session);
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
