import { readFileSync, writeFileSync } from "node:fs";

/**
 * Resident memory of another process from /proc. VmHWM is the peak since the process
 * started, or since it was last reset by writing "5" to /proc/<pid>/clear_refs (Linux
 * 4.0+; needs the same user or root), which lets each phase report its own peak.
 */

/** VmRSS and VmHWM in MiB. */
export function memoryOf(pid: number): { rssMiB: number; peakMiB: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN);
  return { rssMiB: kib("VmRSS") / 1024, peakMiB: kib("VmHWM") / 1024 };
}

/** Resets VmHWM to the current RSS; false where the kernel or permissions refuse. */
export function resetPeak(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}
