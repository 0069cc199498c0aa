import type { JsonObject } from "@bufbuild/protobuf";
import { MessageRole, type ContentPart, type Message, type ToolCall, type ToolResult } from "../../gen/sessions/v1/message_pb.js";
import { byTestId, h, showText } from "./dom.js";
import { dateTime, isoTime, usageSummary } from "./format.js";

/** The role as people read it: "user", "assistant", "system", "tool". */
export function roleLabel(role: MessageRole): string {
  return (MessageRole[role] ?? "unspecified").toLowerCase();
}

/** A tool's arguments or output as the view shows them: JSON indented by two spaces; `{}` when unset. */
export function prettyJson(value: JsonObject | undefined): string {
  return JSON.stringify(value ?? {}, null, 2);
}

/** "input 1200 · output 350": the tokens of the generation that produced an assistant message. */
export function messageTokens(message: Message): string | undefined {
  if (message.role !== MessageRole.ASSISTANT || !message.usage) return undefined;
  return `input ${message.usage.inputTokens} · output ${message.usage.outputTokens}`;
}

/**
 * A session's conversation, oldest first: each message with its role, time, text, and its
 * tool calls and results collapsed (<details>, the tool's name as the summary, the JSON
 * inside). Messages are shown once each, in sequence order: one whose sequence is not past
 * the last shown is dropped, so a replayed or resumed stream never shows a message twice.
 */
export class ConversationView {
  private readonly list = byTestId<HTMLOListElement>("conversation");
  private readonly box = document.getElementById("conversation-box")!;
  private readonly empty = byTestId("conversation-empty");
  private readonly count = document.getElementById("conversation-count")!;
  /** Tool names by call id, so that a result is summarised by the tool it answers. */
  private readonly toolNames = new Map<string, string>();
  private shown = 0;
  private lastSequence = 0n;

  /** The sequence of the last message shown; 0 before any. */
  get lastMessageSequence(): bigint {
    return this.lastSequence;
  }

  clear(): void {
    this.list.replaceChildren();
    this.toolNames.clear();
    this.shown = 0;
    this.lastSequence = 0n;
    this.empty.hidden = true;
    this.box.removeAttribute("aria-busy");
    showText(this.count, "");
  }

  /**
   * Marks the conversation as loading (aria-busy, so that screen readers do not read out a
   * whole history as it arrives) or loaded, when it says so if there is no message.
   */
  setLoading(loading: boolean): void {
    if (loading) this.box.setAttribute("aria-busy", "true");
    else this.box.removeAttribute("aria-busy");
    this.empty.hidden = loading || this.shown > 0;
  }

  /** A load that failed: no longer busy, and no "no messages" claim either. */
  abandonLoading(): void {
    this.box.removeAttribute("aria-busy");
  }

  /** Appends messages after the last one shown; returns how many were new. */
  append(messages: readonly Message[]): number {
    const stick = this.isScrolledToEnd();
    const added: HTMLLIElement[] = [];
    for (const message of messages) {
      if (message.sequence <= this.lastSequence) continue;
      this.lastSequence = message.sequence;
      added.push(this.item(message));
    }
    if (added.length === 0) return 0;
    this.list.append(...added);
    this.shown += added.length;
    this.empty.hidden = true;
    showText(this.count, this.shown === 1 ? "1 message" : `${this.shown} messages`);
    // Following the end of a long conversation: keep the newest in view, unless the reader
    // scrolled up to read earlier messages.
    if (stick) this.box.scrollTop = this.box.scrollHeight;
    return added.length;
  }

  private isScrolledToEnd(): boolean {
    return this.box.scrollHeight - this.box.scrollTop - this.box.clientHeight < 24;
  }

  private item(message: Message): HTMLLIElement {
    const role = roleLabel(message.role);
    const tokens = messageTokens(message);
    const header = h(
      "header",
      { class: "message-head" },
      h("span", { class: `role role-${role}`, "data-testid": "message-role" }, role),
      ...(message.modelId !== "" ? [" ", h("code", { class: "message-model" }, message.modelId)] : []),
      ...(message.createdAt
        ? [" ", h("time", { datetime: isoTime(message.createdAt), title: isoTime(message.createdAt) }, dateTime(message.createdAt))]
        : []),
      ...(tokens
        ? [" ", h("span", { class: "message-tokens", "data-testid": "message-tokens", title: usageSummary(message.usage) }, tokens)]
        : []),
    );
    return h(
      "li",
      {
        class: `message message-${role}`,
        "data-testid": "message",
        "data-message-id": message.id,
        "data-role": role,
        "data-sequence": String(message.sequence),
      },
      header,
      ...message.content.map((part) => this.part(part)),
    );
  }

  private part(part: ContentPart): HTMLElement {
    switch (part.part.case) {
      case "text":
        return h("p", { class: "message-text", "data-testid": "message-text" }, part.part.value);
      case "toolCall":
        return this.toolCall(part.part.value);
      case "toolResult":
        return this.toolResult(part.part.value);
      default:
        // A kind of part newer than this console.
        return h("p", { class: "hint" }, "(a part this console cannot show)");
    }
  }

  private toolCall(call: ToolCall): HTMLElement {
    this.toolNames.set(call.id, call.name);
    return h(
      "details",
      { class: "tool tool-call", "data-testid": "tool-call", "data-tool-call-id": call.id },
      h(
        "summary",
        {},
        "Tool call ",
        h("code", { "data-testid": "tool-name" }, call.name),
        " ",
        h("span", { class: "hint" }, call.id),
      ),
      h("pre", { "data-testid": "tool-arguments", "aria-label": `arguments of ${call.name}` }, prettyJson(call.arguments)),
    );
  }

  private toolResult(result: ToolResult): HTMLElement {
    const name = this.toolNames.get(result.toolCallId);
    return h(
      "details",
      {
        class: `tool tool-result${result.isError ? " tool-error" : ""}`,
        "data-testid": "tool-result",
        "data-tool-call-id": result.toolCallId,
      },
      h(
        "summary",
        {},
        result.isError ? "Tool error " : "Tool result ",
        h("code", { "data-testid": "tool-name" }, name ?? result.toolCallId),
        ...(name !== undefined ? [" ", h("span", { class: "hint" }, result.toolCallId)] : []),
      ),
      h("pre", { "data-testid": "tool-output", "aria-label": `output of ${name ?? result.toolCallId}` }, prettyJson(result.output)),
    );
  }
}
