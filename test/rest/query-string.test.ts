import { describe, expect, it } from "vitest";
import { ConnectError } from "@connectrpc/connect";
import { parseQueryString } from "../../src/rest/query-string.js";

describe("parseQueryString", () => {
  it.each([
    ["a=1&b=2", [["a", "1"], ["b", "2"]]],
    ["a=1&a=2", [["a", "1"], ["a", "2"]]],
    ["q=hello+world&p=a%2Bb", [["q", "hello world"], ["p", "a+b"]]],
    ["a", [["a", ""]]],
    ["a=", [["a", ""]]],
    ["a=b=c", [["a", "b=c"]]],
    ["&&a=1&", [["a", "1"]]],
    ["", []],
    ["t=%C3%A9%F0%9F%9A%80", [["t", "é🚀"]]],
    ["t=%00", [["t", "\u0000"]]],
    ["%61=1", [["a", "1"]]],
  ])("reads %j as URLSearchParams would", (query, pairs) => {
    expect([...parseQueryString(query)]).toEqual(pairs);
    expect([...parseQueryString(query)]).toEqual([...new URLSearchParams(query)]);
  });

  it.each([
    ["tag=%FF", "tag"],
    ["tag=%E2%82", "tag"],
    ["tag=%ED%A0%80", "tag"],
    ["tag=%zz", "tag"],
    ["tag=%", "tag"],
    ["tag=%4", "tag"],
    ["ok=1&%zz=1", "%zz"],
    ["%FF", "%FF"],
  ])("refuses %j, where URLSearchParams would keep or replace the bytes, naming %j", (query, name) => {
    let error: unknown;
    try {
      parseQueryString(query);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).rawMessage).toBe(`invalid query parameter "${name}": malformed percent-encoding or invalid UTF-8`);
  });
});
