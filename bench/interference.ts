import { readFileSync, statSync } from "node:fs";

/**
 * What other processes did during a measurement. The server, the load tool and this
 * process share two cores and one disk with anything else running, and a busy neighbour
 * shows up in the figures; these say how much there was:
 *
 * - CPU: all busy time on the machine minus the server's and this process's own (which
 *   includes the load tool's, a child's time being added to ours when it is waited for),
 *   in cores.
 * - Disk: bytes written to the block device that holds `dir` minus what the server wrote,
 *   in MiB/s. fsync latency, and so every durable write, suffers from other writers on
 *   the same disk. Approximate: writeback of earlier writes lands when the kernel decides.
 */
export interface Interference {
  readonly otherCpuCores: number;
  readonly otherDiskWriteMiBps: number;
}

export function startInterferenceAccount(serverPid: number, dir: string): () => Interference {
  const device = blockDeviceOf(dir);
  const before = {
    machine: machineBusyTicks(),
    server: processTicks(serverPid),
    self: processTicks("self", true),
    diskBytes: deviceWrittenBytes(device),
    serverBytes: processWrittenBytes(serverPid),
    at: performance.now(),
  };
  return () => {
    const seconds = (performance.now() - before.at) / 1000;
    const cpuTicks =
      machineBusyTicks() - before.machine - (processTicks(serverPid) - before.server) - (processTicks("self", true) - before.self);
    const diskBytes = deviceWrittenBytes(device) - before.diskBytes - (processWrittenBytes(serverPid) - before.serverBytes);
    return {
      otherCpuCores: Math.max(0, cpuTicks / TICKS_PER_SECOND / seconds),
      otherDiskWriteMiBps: Math.max(0, diskBytes / 2 ** 20 / seconds),
    };
  };
}

/** USER_HZ: /proc counts CPU time in these; 100 on every Linux architecture Node runs on. */
const TICKS_PER_SECOND = 100;

function machineBusyTicks(): number {
  const fields = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal. Left out: idle and iowait, and irq and
  // softirq, which are mostly our own loopback traffic and charged to no process. Steal
  // stays in: CPU the hypervisor gave someone else is lost to this run all the same.
  return fields[0]! + fields[1]! + fields[2]! + fields[7]!;
}

/** utime + stime (+ cutime + cstime with children) of a process; 0 once it is gone. */
function processTicks(pid: number | "self", withChildren = false): number {
  const text = readOrEmpty(`/proc/${pid}/stat`);
  if (text === "") return 0;
  // Fields after the command name, which is in parentheses and may contain spaces:
  // fields[0] is field 3 (state), so utime (14), stime (15), cutime (16), cstime (17) are 11–14.
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ").map(Number);
  return fields[11]! + fields[12]! + (withChildren ? fields[13]! + fields[14]! : 0);
}

function processWrittenBytes(pid: number): number {
  return Number(/^write_bytes: (\d+)$/m.exec(readOrEmpty(`/proc/${pid}/io`))?.[1] ?? 0);
}

/** "major:minor" of the block device (disk or partition, as /proc/diskstats lists both) holding `dir`. */
function blockDeviceOf(dir: string): string {
  const dev = statSync(dir).dev;
  return `${(dev >> 8) & 0xfff}:${(dev & 0xff) | ((dev >> 12) & 0xfff00)}`;
}

function deviceWrittenBytes(device: string): number {
  for (const line of readOrEmpty("/proc/diskstats").split("\n")) {
    const f = line.trim().split(/\s+/);
    // major minor name, then: reads, merged, sectors read, ms, writes, merged, sectors written (512 bytes each)…
    if (`${f[0]}:${f[1]}` === device) return Number(f[9]) * 512;
  }
  return 0;
}

function readOrEmpty(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}
