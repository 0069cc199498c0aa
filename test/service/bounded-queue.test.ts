import { describe, expect, it } from "vitest";
import { BoundedQueue } from "../../src/service/bounded-queue.js";

describe("BoundedQueue", () => {
  it("hands items out in order and refuses one past the limit", async () => {
    const queue = new BoundedQueue<number>(2);
    expect([queue.push(1), queue.push(2), queue.push(3)]).toStrictEqual([true, true, false]);
    expect(queue.size).toBe(2);
    expect([await queue.take(), await queue.take()]).toStrictEqual([1, 2]);
    expect(queue.push(4)).toBe(true);
    expect(await queue.take()).toBe(4);
  });

  it("wakes a waiting take with the next item, which does not count against the limit", async () => {
    const queue = new BoundedQueue<string>(1);
    const taken = queue.take();
    expect(queue.push("a")).toBe(true);
    expect(queue.size).toBe(0);
    expect(await taken).toBe("a");
  });

  it("drops queued items on close and then answers undefined, or rejects with the close error", async () => {
    const quiet = new BoundedQueue<number>(4);
    quiet.push(1);
    quiet.close();
    expect(quiet.size).toBe(0);
    expect(quiet.push(2)).toBe(false);
    expect(await quiet.take()).toBeUndefined();

    const failed = new BoundedQueue<number>(4);
    const waiting = failed.take();
    const error = new Error("fell behind");
    failed.close(error);
    failed.close();
    await expect(waiting).rejects.toBe(error);
    await expect(failed.take()).rejects.toBe(error);
  });
});
