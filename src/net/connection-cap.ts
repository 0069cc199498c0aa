import { readFileSync } from "node:fs";
import type * as net from "node:net";

/** Descriptors kept back from connections: at least this many, or a tenth of the limit if more. */
const MIN_HEADROOM = 100;
/** The cap when the soft open-file limit reads "unlimited". */
const UNLIMITED_CAP = 1_000_000;
/** When /proc/self/limits cannot be read (not Linux): the cap for the common limit of 1024. */
const FALLBACK_CAP = 1024 - MIN_HEADROOM;

/**
 * The default connection cap from the text of /proc/self/limits: the soft open-file limit
 * (`ulimit -n`) less max(100, 10 %), kept for the database, its WAL and shared memory,
 * logs, and Node's own descriptors. At least 1.
 */
export function connectionCapFromLimits(limits: string): number {
  const soft = /^Max open files\s+(\S+)/m.exec(limits)?.[1];
  if (soft === undefined) return FALLBACK_CAP;
  if (soft === "unlimited") return UNLIMITED_CAP;
  const limit = Number(soft);
  if (!Number.isSafeInteger(limit)) return FALLBACK_CAP;
  return Math.max(1, limit - Math.max(MIN_HEADROOM, Math.ceil(limit / 10)));
}

/** The default connection cap of this process (see connectionCapFromLimits). */
export function defaultConnectionCap(): number {
  let limits = "";
  try {
    limits = readFileSync("/proc/self/limits", "utf8");
  } catch {
    // not Linux: the fallback
  }
  return connectionCapFromLimits(limits);
}

/**
 * Closes every connection accepted while `cap` are open, at once and before a byte is
 * read (Node's `maxConnections`), and tells `onRefused` of each.
 */
export function capConnections(listener: net.Server, cap: number, onRefused: () => void): void {
  listener.maxConnections = cap;
  listener.on("drop", () => onRefused());
}
