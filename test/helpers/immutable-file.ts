import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * Whether this process may set the immutable attribute (root with CAP_LINUX_IMMUTABLE, on
 * ext2/3/4, xfs, btrfs…): the tests that cause real I/O errors by making the WAL file
 * immutable run only where it can. Called once per file at collection time, so a
 * synchronous child process is fine here.
 */
export function canMakeImmutable(): boolean {
  const dir = mkdtempSync(join(tmpdir(), "sessions-chattr-"));
  const file = join(dir, "probe");
  writeFileSync(file, "");
  try {
    execFileSync("chattr", ["+i", file], { stdio: "ignore" });
    execFileSync("chattr", ["-i", file], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
