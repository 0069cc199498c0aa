/**
 * Fills the disk under a running server (a 2 MiB tmpfs; needs root), then writes until
 * creates are refused, and asks /readyz: does it still say ready while every write answers
 * 503? Then frees the disk: how long until /readyz says ready again.
 *
 *   node --import tsx bench/attacks/readyz-full-disk.ts [--root <checkout>]
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { argument, call, MODEL_ID, startAttackServer } from "./storage-attack-server.js";

const root = argument("root", ".");
const mount = mkdtempSync(join(tmpdir(), "attack-full-"));
execFileSync("mount", ["-t", "tmpfs", "-o", "size=2m", "tmpfs", mount]);
const tags = Array.from({ length: 32 }, (_, i) => `tag-${i}`.padEnd(64, "x"));
try {
  mkdirSync(join(mount, "data"));
  const server = await startAttackServer(root, ["--db", join(mount, "data", "sessions.db")]);
  const agent = await call(`${server.url}/v1/agents`, { name: "a", default_model_id: MODEL_ID });
  try {
    writeFileSync(join(mount, "filler"), Buffer.alloc(2 * 1024 * 1024));
  } catch { /* ENOSPC: the disk is full */ }
  let refused = 0;
  let created = 0;
  for (let i = 0; i < 1000 && refused < 20; i++) {
    const r = await call(`${server.url}/v1/sessions`, { agent_id: agent.body.id, title: "".padEnd(256, "."), tags });
    if (r.status === 201) created++;
    else refused++;
  }
  const readyWhileFull: number[] = [];
  for (let i = 0; i < 10; i++) {
    readyWhileFull.push((await call(`${server.url}/readyz`)).status);
    await new Promise((r) => setTimeout(r, 200));
  }
  rmSync(join(mount, "filler"));
  const freedAt = Date.now();
  let readyAgainSeconds: number | null = null;
  while (Date.now() - freedAt < 10_000) {
    if ((await call(`${server.url}/readyz`)).status === 200) {
      readyAgainSeconds = (Date.now() - freedAt) / 1000;
      break;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  await server.kill("SIGTERM");
  console.log(JSON.stringify({ root, createdBeforeRefusals: created, refusedCreates: refused, readyzWhileFull: readyWhileFull, readyAgainSeconds }));
} finally {
  execFileSync("umount", [mount]);
  rmSync(mount, { recursive: true, force: true });
}
