import { describe, expect, it } from "vitest";
import { TurnMemo } from "../../src/auth/turn-memo.js";

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

describe("TurnMemo", () => {
  it("loads each key once per event-loop turn and afresh in the next turn", async () => {
    const memo = new TurnMemo<string, number>();
    let loads = 0;
    const load = async () => ++loads;
    const sameTurn = await Promise.all([memo.get("a", load), memo.get("a", load), memo.get("b", load)]);
    expect(sameTurn).toStrictEqual([1, 1, 2]);
    await nextTurn();
    expect(await memo.get("a", load)).toBe(3);
  });

  it("does not keep a failure past its turn", async () => {
    const memo = new TurnMemo<string, number>();
    await expect(memo.get("a", async () => Promise.reject(new Error("busy")))).rejects.toThrow("busy");
    await nextTurn();
    expect(await memo.get("a", async () => 7)).toBe(7);
  });
});
