import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { translateSqliteError, unavailableReason } from "../../src/store/sqlite-errors.js";
import { StoreUnavailableError } from "../../src/store/store.js";

describe("unavailableReason", () => {
  it.each([
    ["SQLITE_FULL", "full"],
    ["SQLITE_READONLY", "read-only"],
    ["SQLITE_READONLY_DBMOVED", "read-only"],
    ["SQLITE_READONLY_RECOVERY", "read-only"],
    ["SQLITE_IOERR", "io"],
    ["SQLITE_IOERR_WRITE", "io"],
    ["SQLITE_IOERR_FSYNC", "io"],
    ["SQLITE_IOERR_SHORT_READ", "io"],
    ["SQLITE_BUSY", "busy"],
    ["SQLITE_BUSY_SNAPSHOT", "busy"],
    ["SQLITE_LOCKED", "busy"],
    ["SQLITE_LOCKED_SHAREDCACHE", "busy"],
    ["SQLITE_CANTOPEN", "cannot-open"],
    ["SQLITE_CANTOPEN_NOTEMPDIR", "cannot-open"],
  ])("%s is %s", (code, reason) => {
    expect(unavailableReason(code)).toBe(reason);
  });

  it.each(["SQLITE_ERROR", "SQLITE_CONSTRAINT_PRIMARYKEY", "SQLITE_CORRUPT", "SQLITE_NOTADB", "SQLITE_MISUSE", "SQLITE_FULLER", "SQLITE_IOERRX"])(
    "%s is not unavailability",
    (code) => {
      expect(unavailableReason(code)).toBeUndefined();
    },
  );
});

describe("translateSqliteError", () => {
  it("turns an unavailable SQLite error into a StoreUnavailableError with a clean message and the error as cause", () => {
    const sqlite = new Database.SqliteError("database or disk is full", "SQLITE_FULL");
    const translated = translateSqliteError(sqlite) as StoreUnavailableError;
    expect(translated).toBeInstanceOf(StoreUnavailableError);
    expect({ name: translated.name, reason: translated.reason, message: translated.message, cause: translated.cause }).toStrictEqual({
      name: "StoreUnavailableError",
      reason: "full",
      message: "storage is full; try again later",
      cause: sqlite,
    });
  });

  it("leaves other SQLite errors and every other error as they are", () => {
    const constraint = new Database.SqliteError("UNIQUE constraint failed: sessions.id", "SQLITE_CONSTRAINT_PRIMARYKEY");
    const thrown = new Error("a mutation refused the change");
    expect(translateSqliteError(constraint)).toBe(constraint);
    expect(translateSqliteError(thrown)).toBe(thrown);
    expect(translateSqliteError("text")).toBe("text");
  });
});
