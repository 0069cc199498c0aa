import { describe, expect, it } from "vitest";
import { monotonicClock } from "../../src/clock.js";

describe("monotonicClock", () => {
  it("follows the wall clock forwards and holds its last reading when it steps back", () => {
    const readings = [1000, 1005, 990, 995, 1010];
    const clock = monotonicClock(() => readings.shift()!);
    expect([clock(), clock(), clock(), clock(), clock()]).toEqual([1000, 1005, 1005, 1005, 1010]);
  });
});
