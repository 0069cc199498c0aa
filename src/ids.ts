import { randomFillSync } from "node:crypto";

/** The forms of the ids this service hands out and accepts. */
export const ID_PATTERN = {
  session: /^session_[0-9a-f]{32}$/,
  agent: /^agent_[0-9a-f]{32}$/,
  model: /^model_[0-9a-f]{32}$/,
  org: /^org_[0-9a-f]{32}$/,
  message: /^message_[0-9a-f]{32}$/,
} as const;

/**
 * Makes ids of the form `<prefix>_<32 hex>` whose hex is a UUIDv7 (RFC 9562): 48 bits of
 * Unix milliseconds, then a 12-bit counter (method 1 of section 6.2), then random bits.
 * Ids from one generator are strictly increasing, also within one millisecond and when
 * the clock steps back, so newest-first order by id is exact.
 */
export function createIdGenerator(now: () => number = Date.now): (prefix: string) => string {
  let lastMs = -1;
  let counter = 0;
  const pool = Buffer.alloc(8 * 512);
  let poolOffset = pool.length;

  return (prefix) => {
    const ms = now();
    if (ms > lastMs) {
      lastMs = ms;
      // Start low in the counter's range so that a burst within one millisecond has room.
      counter = randomBits(10);
    } else if (++counter > 0xfff) {
      lastMs++;
      counter = 0;
    }
    if (poolOffset === pool.length) {
      randomFillSync(pool);
      poolOffset = 0;
    }
    const high = pool.readUInt32BE(poolOffset);
    const low = pool.readUInt32BE(poolOffset + 4);
    poolOffset += 8;
    // 62 random bits after the variant bits "10".
    const variantAndHigh = (0x80000000 | (high >>> 2)) >>> 0;
    return (
      prefix + "_" +
      lastMs.toString(16).padStart(12, "0") +
      "7" + counter.toString(16).padStart(3, "0") +
      variantAndHigh.toString(16).padStart(8, "0") +
      low.toString(16).padStart(8, "0")
    );
  };
}

function randomBits(bits: number): number {
  const buf = Buffer.alloc(2);
  randomFillSync(buf);
  return buf.readUInt16BE(0) & ((1 << bits) - 1);
}
