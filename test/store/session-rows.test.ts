import { describe, expect, it } from "vitest";
import { SESSION_COLUMNS, sessionRowFromValues } from "../../src/store/sqlite-rows.js";

describe("sessionRowFromValues", () => {
  it("reads each column from its place in SESSION_COLUMNS, and every column", () => {
    const values = SESSION_COLUMNS.map((column) => `value of ${column}`);
    const row = sessionRowFromValues(values);
    expect(Object.keys(row)).toEqual([...SESSION_COLUMNS]);
    for (const column of SESSION_COLUMNS) expect(row[column], column).toBe(`value of ${column}`);
  });
});
