import { Code, ConnectError } from "@connectrpc/connect";
import type { SessionRecord, UsageRecord } from "../store/store.js";

/** Previews keep this many code points. */
export const PREVIEW_LENGTH = 200;
const INT64_MAX = (1n << 63n) - 1n;

/**
 * The session's usage plus `delta`, field by field; throws out_of_range naming the field
 * when a sum would pass 2^63-1 (then nothing is stored).
 */
export function addUsage(current: SessionRecord, delta: UsageRecord): UsageRecord {
  const add = (field: keyof UsageRecord) => {
    const sum = current.usage[field] + delta[field];
    if (sum > INT64_MAX) {
      throw new ConnectError(`usage would overflow: ${field} of session ${current.id} exceeds 2^63-1`, Code.OutOfRange);
    }
    return sum;
  };
  return {
    inputTokens: add("inputTokens"),
    outputTokens: add("outputTokens"),
    cacheReadTokens: add("cacheReadTokens"),
    cacheCreationTokens: add("cacheCreationTokens"),
  };
}
