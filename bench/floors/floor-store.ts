import Database from "better-sqlite3";
import { parseArgs } from "node:util";
import { createIdGenerator, ID_PATTERN } from "../../src/ids.js";

/**
 * What both floors share: the durable work a hand-written CreateSession does — validate
 * the agent id with the service's own regex, insert one row, commit, answer. The database
 * runs with the settings the README promises for ours (WAL, synchronous=FULL, set on
 * every open), so a floor never wins by weaker durability. One autocommit INSERT per
 * request, no batching: the plain code a user would write.
 */

export const AGENT_ID = ID_PATTERN.agent;

export interface FloorSession {
  readonly id: string;
  readonly org_id: string;
  readonly agent_id: string;
  readonly title: string;
  readonly tags: readonly string[];
  readonly created_at: number;
}

export const FLOOR_ORG_ID = "org_00000000000000000000000000000001";

/** Opens (creating) the floor's database; `insert` commits one session before returning it. */
export function openFloorStore(path: string): {
  readonly db: Database.Database;
  insert(agentId: string, title: string, tags: readonly string[]): FloorSession;
} {
  const db = new Database(path);
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = FULL");
  db.exec(`CREATE TABLE IF NOT EXISTS sessions (
    id TEXT NOT NULL PRIMARY KEY, org_id TEXT NOT NULL, agent_id TEXT NOT NULL,
    title TEXT NOT NULL, tags TEXT NOT NULL, created_at INTEGER NOT NULL
  ) STRICT`);
  const statement = db.prepare("INSERT INTO sessions (id, org_id, agent_id, title, tags, created_at) VALUES (?, ?, ?, ?, ?, ?)");
  // Time-ordered ids, as ours: random keys would make the floor slower on a large table
  // and the comparison about key choice instead of overhead.
  const nextId = createIdGenerator();
  return {
    db,
    insert(agentId, title, tags) {
      const session = { id: nextId("session"), org_id: FLOOR_ORG_ID, agent_id: agentId, title, tags, created_at: Date.now() };
      statement.run(session.id, session.org_id, session.agent_id, session.title, JSON.stringify(tags), session.created_at);
      return session;
    },
  };
}

/** `--port N --db PATH`, as the real server takes them. */
export function floorArgs(): { port: number; db: string } {
  const { values } = parseArgs({ options: { port: { type: "string" }, db: { type: "string" } } });
  if (values.db === undefined) throw new Error("--db is required");
  return { port: Number(values.port ?? 0), db: values.db };
}
