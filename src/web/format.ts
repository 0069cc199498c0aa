import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { SessionStatus, type Usage } from "../../gen/sessions/v1/session_pb.js";

const STATUS_PREFIX = "SESSION_STATUS_";

/** The status as people read it and the detail view shows it: "running", "completed"… */
export function statusLabel(status: SessionStatus): string {
  return (SessionStatus[status] ?? "unspecified").toLowerCase();
}

/** The enum name the API uses, e.g. "SESSION_STATUS_RUNNING" (the status filter's option values). */
export function statusEnumName(status: SessionStatus): string {
  return STATUS_PREFIX + (SessionStatus[status] ?? "UNSPECIFIED");
}

/** The status whose enum name this is, or undefined for "" and unknown names. */
export function statusFromEnumName(name: string): SessionStatus | undefined {
  if (!name.startsWith(STATUS_PREFIX)) return undefined;
  const value = (SessionStatus as unknown as Record<string, SessionStatus | undefined>)[name.slice(STATUS_PREFIX.length)];
  return typeof value === "number" && value !== SessionStatus.UNSPECIFIED ? value : undefined;
}

/** The statuses a person can filter by, in lifecycle order. */
export const FILTERABLE_STATUSES: readonly SessionStatus[] = [
  SessionStatus.PENDING,
  SessionStatus.RUNNING,
  SessionStatus.COMPLETED,
  SessionStatus.FAILED,
  SessionStatus.CANCELLED,
];

/** The four token counters of a usage, as numbers for charts (exact below 2^53, plenty for a chart). */
export interface TokenCounts {
  readonly input: number;
  readonly output: number;
  readonly cacheRead: number;
  readonly cacheWrite: number;
}

export function tokenCounts(usage: Usage | undefined): TokenCounts {
  return {
    input: Number(usage?.inputTokens ?? 0n),
    output: Number(usage?.outputTokens ?? 0n),
    cacheRead: Number(usage?.cacheReadTokens ?? 0n),
    cacheWrite: Number(usage?.cacheCreationTokens ?? 0n),
  };
}

/** Every token of a usage added up, exactly (int64 travels as bigint). */
export function totalTokens(usage: Usage | undefined): bigint {
  if (!usage) return 0n;
  return usage.inputTokens + usage.outputTokens + usage.cacheReadTokens + usage.cacheCreationTokens;
}

/** "input 1200 · output 350 · cache read 800 · cache write 0" */
export function usageSummary(usage: Usage | undefined): string {
  return [
    `input ${usage?.inputTokens ?? 0n}`,
    `output ${usage?.outputTokens ?? 0n}`,
    `cache read ${usage?.cacheReadTokens ?? 0n}`,
    `cache write ${usage?.cacheCreationTokens ?? 0n}`,
  ].join(" · ");
}

const pad = (n: number, width = 2) => String(n).padStart(width, "0");

/** "2026-11-29 13:25:40" in the browser's time zone; "" when unset. */
export function dateTime(timestamp: Timestamp | undefined): string {
  if (!timestamp) return "";
  const d = timestampDate(timestamp);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${clockTime(timestamp)}`;
}

/** "13:25:40" in the browser's time zone; "" when unset. */
export function clockTime(timestamp: Timestamp | undefined): string {
  if (!timestamp) return "";
  const d = timestampDate(timestamp);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** RFC 3339 in UTC, for <time datetime> and tooltips; "" when unset. */
export function isoTime(timestamp: Timestamp | undefined): string {
  return timestamp ? timestampDate(timestamp).toISOString() : "";
}

/** Tags as typed in the create form: comma-separated, trimmed; empty entries (a trailing comma) dropped. */
export function parseTags(text: string): string[] {
  return text
    .split(",")
    .map((tag) => tag.trim())
    .filter((tag) => tag !== "");
}
