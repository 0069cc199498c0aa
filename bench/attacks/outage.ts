import { readFileSync } from "node:fs";
import * as http from "node:http";

/** The resident memory of process `pid`, read from /proc every 100 ms, and its peak. */
export function watchRss(pid: number) {
  let peak = 0;
  const read = () => {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    const bytes = match ? Number(match[1]) * 1024 : 0;
    peak = Math.max(peak, bytes);
    return bytes;
  };
  const timer = setInterval(read, 100);
  return { current: read, peak: () => peak, stop: () => clearInterval(timer) };
}

/**
 * /healthz over HTTP/1.1 on a fresh connection every 100 ms, as an operator's check would.
 * A probe still waiting after 10 s counts as failed and is given up; stop() also counts
 * the probes still waiting then.
 */
export function probeHealth(port: number) {
  // Each probe slower than 1 s adds the time from its first second to its answer; overlapping probes count once.
  const slow: [number, number][] = [];
  let slowestMs = 0;
  let failed = 0;
  let lastSlow = Date.now();
  let stopped = false;
  const waiting = new Set<number>();
  const one = () => {
    const started = Date.now();
    waiting.add(started);
    const done = (ok: boolean) => {
      if (!waiting.delete(started)) return;
      const ms = Date.now() - started;
      slowestMs = Math.max(slowestMs, ms);
      if (!ok) failed++;
      if (ms > 1000 || !ok) {
        slow.push([started + 1000, Date.now()]);
        lastSlow = Date.now();
      }
    };
    const req = http.get({ host: "127.0.0.1", port, path: "/healthz", agent: false, timeout: 10_000 }, (res) => {
      res.resume();
      res.on("end", () => done(res.statusCode === 200));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", () => done(false));
  };
  const timer = setInterval(() => !stopped && one(), 100);
  return {
    settled: async (quietMs: number, maxMs: number) => {
      const deadline = Date.now() + maxMs;
      while ((waiting.size > 0 || Date.now() - lastSlow < quietMs) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    },
    stop: () => {
      stopped = true;
      clearInterval(timer);
      for (const started of waiting) {
        failed++;
        slowestMs = Math.max(slowestMs, Date.now() - started);
        if (Date.now() - started > 1000) slow.push([started + 1000, Date.now()]);
      }
      waiting.clear();
      let outageMs = 0;
      let reached = 0;
      for (const [from, to] of slow.sort((a, b) => a[0] - b[0])) {
        if (to > Math.max(from, reached)) outageMs += to - Math.max(from, reached);
        reached = Math.max(reached, to);
      }
      return { outageMs, slowestMs, failed };
    },
  };
}
