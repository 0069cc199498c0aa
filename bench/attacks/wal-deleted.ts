/**
 * Deletes `sessions.db-wal` under a running server while 16 clients create sessions and
 * record usage, keeps writing for `--seconds`, then kill -9 and a restart: how many answered
 * writes were lost, and how long after the deletion writes were first refused.
 *
 *   node --import tsx bench/attacks/wal-deleted.ts [--root <checkout>] [--seconds 2]
 */
import Database from "better-sqlite3";
import { mkdtempSync, rmSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { argument, call, MODEL_ID, startAttackServer } from "./storage-attack-server.js";

const root = argument("root", ".");
const seconds = Number(argument("seconds", "2"));
const dir = mkdtempSync(join(tmpdir(), "attack-wal-"));
const db = join(dir, "sessions.db");
try {
  const server = await startAttackServer(root, ["--db", db]);
  const agent = await call(`${server.url}/v1/agents`, { name: "a", default_model_id: MODEL_ID });
  const target = await call(`${server.url}/v1/sessions`, { agent_id: agent.body.id });
  const answered: string[] = [];
  let usage = 0;
  let refused = 0;
  let deletedAt = 0;
  let firstRefusalAt = 0;
  const writer = async () => {
    while (deletedAt === 0 || Date.now() - deletedAt < seconds * 1000) {
      const [created, counted] = await Promise.all([
        call(`${server.url}/v1/sessions`, { agent_id: agent.body.id }),
        call(`${server.url}/v1/sessions/${target.body.id}:recordUsage`, { input_tokens: "1" }),
      ]);
      if (created.status === 201) answered.push(created.body.id);
      if (counted.status === 200) usage++;
      for (const r of [created, counted]) {
        if (r.status === 503) {
          refused++;
          firstRefusalAt ||= Date.now();
        }
      }
    }
  };
  const writers = Array.from({ length: 16 }, writer);
  while (answered.length < 200) await new Promise((r) => setTimeout(r, 10));
  unlinkSync(`${db}-wal`);
  deletedAt = Date.now();
  await Promise.all(writers);
  await server.kill("SIGKILL");
  const again = await startAttackServer(root, ["--db", db]);
  await again.kill("SIGTERM");
  const check = new Database(db, { readonly: true });
  const ids = new Set(check.prepare("SELECT id FROM sessions").pluck().all() as string[]);
  const tokens = Number(check.prepare("SELECT input_tokens FROM sessions WHERE id = ?").pluck().get(target.body.id));
  check.close();
  console.log(JSON.stringify({
    root,
    answeredCreates: answered.length,
    lostCreates: answered.filter((id) => !ids.has(id)).length,
    answeredUsage: usage,
    lostUsage: Math.max(0, usage - tokens),
    refusedWrites: refused,
    secondsToFirstRefusal: firstRefusalAt ? (firstRefusalAt - deletedAt) / 1000 : null,
  }));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
