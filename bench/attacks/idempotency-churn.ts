/**
 * Creates and deletes sessions in a loop, each create with a fresh request_id, as a client
 * that never keeps a session would: the sessions table stays empty, but every create leaves
 * an idempotency key. Prints the keys left and the database's size (after a checkpoint).
 *
 *   node --import tsx bench/attacks/idempotency-churn.ts [--root <checkout>] [--loops 20000] [-- server flags…]
 */
import Database from "better-sqlite3";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { argument, call, MODEL_ID, startAttackServer } from "./storage-attack-server.js";

const root = argument("root", ".");
const loops = Number(argument("loops", "20000"));
const extra = process.argv.includes("--") ? process.argv.slice(process.argv.indexOf("--") + 1) : [];
const dir = mkdtempSync(join(tmpdir(), "attack-keys-"));
const db = join(dir, "sessions.db");
const size = () => {
  const check = new Database(db);
  check.pragma("wal_checkpoint(TRUNCATE)");
  const keys = check.prepare("SELECT count(*) FROM idempotency_keys").pluck().get() as number;
  const sessions = check.prepare("SELECT count(*) FROM sessions").pluck().get() as number;
  check.close();
  return { mb: Number((statSync(db).size / 1e6).toFixed(2)), keys, sessions };
};
try {
  const server = await startAttackServer(root, ["--db", db, ...extra]);
  const agent = await call(`${server.url}/v1/agents`, { name: "a", default_model_id: MODEL_ID });
  const before = size();
  const started = Date.now();
  let next = 0;
  const worker = async () => {
    while (next++ < loops) {
      const created = await call(`${server.url}/v1/sessions`, { agent_id: agent.body.id, request_id: crypto.randomUUID(), title: "churn" });
      await call(`${server.url}/v1/sessions/${created.body.id}`, undefined, "DELETE");
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  const seconds = (Date.now() - started) / 1000;
  await server.kill("SIGTERM");
  console.log(JSON.stringify({ root, loops, extra, seconds, before, after: size() }));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
