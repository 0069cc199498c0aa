import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SqliteStore } from "../src/store/sqlite.js";
import { listQuery } from "../src/store/sqlite-sessions.js";
import { LIST_MESSAGES_SQL } from "../src/store/sqlite-messages.js";
import { LIST_EVENTS_SQL } from "../src/store/sqlite-events.js";
import type { ListCursor, SessionFilter, SessionState } from "../src/store/store.js";
import { AGENT_ID, DEFAULT_ORG_ID, seedTestAgent } from "./helpers/server.js";

/**
 * Every ListSessions filter, alone and combined, is a range scan of an index in listing
 * order: SQLite's EXPLAIN QUERY PLAN for the SQL of listQuery shows no table scanned and
 * nothing sorted but the at most `limit` rows of one arm of a multi-status merge. The
 * plans are checked on an empty database (no statistics, as a fresh server runs) and
 * again after 20,000 skewed rows and ANALYZE (statistics could change the planner's
 * choice). They are, for SQLite 3.53.2 (better-sqlite3 12.11.1):
 *
 * none                SEARCH s USING INDEX sessions_by_org_created (org_id=?)
 * agent_id            SEARCH s USING INDEX sessions_by_org_agent_created (org_id=? AND agent_id=?)
 * one status          SEARCH s USING INDEX sessions_by_org_state_created (org_id=? AND state=?)
 * two statuses        MERGE (UNION ALL)
 *                       LEFT
 *                         CO-ROUTINE (subquery-1)
 *                           SEARCH s USING INDEX sessions_by_org_state_created (org_id=? AND state=?)
 *                         SCAN (subquery-1)
 *                         USE TEMP B-TREE FOR ORDER BY
 *                       RIGHT
 *                         CO-ROUTINE (subquery-3)
 *                           SEARCH s USING INDEX sessions_by_org_state_created (org_id=? AND state=?)
 *                         SCAN (subquery-3)
 *                         USE TEMP B-TREE FOR ORDER BY
 * one tag             SEARCH t USING PRIMARY KEY (org_id=? AND tag=?)
 *                     SEARCH s USING INDEX sqlite_autoindex_sessions_1 (id=?)
 * two tags            SEARCH t USING PRIMARY KEY (org_id=? AND tag=?)
 *                     CORRELATED SCALAR SUBQUERY 1
 *                       SEARCH o USING PRIMARY KEY (org_id=? AND tag=? AND created_at=? AND session_id=?)
 *                     SEARCH s USING INDEX sqlite_autoindex_sessions_1 (id=?)
 * created_after       SEARCH s USING INDEX sessions_by_org_created (org_id=? AND created_at>?)
 * created_before      SEARCH s USING INDEX sessions_by_org_created (org_id=? AND created_at<?)
 * cursor              SEARCH s USING INDEX sessions_by_org_created (org_id=? AND (created_at,id)<(?,?))
 * agent + status      SEARCH s USING INDEX sessions_by_org_agent_state_created (org_id=? AND agent_id=? AND state=?)
 * tag + status        SEARCH t USING PRIMARY KEY (org_id=? AND tag=?)
 *                     SEARCH s USING INDEX sqlite_autoindex_sessions_1 (id=?)
 *
 * The "USE TEMP B-TREE" of a multi-status listing sorts one arm's output (its LIMIT
 * bounds it to a page plus one), never the matching rows; the arms come out of the index
 * already in order. Status and agent filters under a tag filter are checked on each row
 * the tag's index yields (session_tags holds no status): such a page reads about
 * page size / (share of the tag's sessions that match) rows, at any depth.
 */

const ORG = DEFAULT_ORG_ID;
const AGENT_B = "agent_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const AGENT_C = "agent_cccccccccccccccccccccccccccccccc";
const CURSOR: ListCursor = { createdAt: 1_700_000_010_000, id: "session_0000000000000000000000000000ffff" };
const LIMIT = 21;
/** Time bounds inside the seeded range (1_700_000_000_000 + 0 … 19,999 ms). */
const AFTER = 1_700_000_004_000;
const BEFORE = 1_700_000_016_000;

function filterOf(parts: Partial<SessionFilter>): SessionFilter {
  return { agentId: undefined, states: [], tags: [], createdAfter: undefined, createdBefore: undefined, ...parts };
}

const SEARCH_CREATED = "SEARCH s USING INDEX sessions_by_org_created";
const BY_ID = "SEARCH s USING INDEX sqlite_autoindex_sessions_1 (id=?)";
const BY_STATE = "SEARCH s USING INDEX sessions_by_org_state_created (org_id=? AND state=?)";
const OTHER_TAGS = [
  "CORRELATED SCALAR SUBQUERY 1",
  "  SEARCH o USING PRIMARY KEY (org_id=? AND tag=? AND created_at=? AND session_id=?)",
];

/** The plan of a merge of two or three per-status arms, each searching with `search`. */
function mergedArms(search: string, arms: 2 | 3): string[] {
  const arm = (n: number, indent: string) => [
    `${indent}CO-ROUTINE (subquery-${n})`,
    `${indent}  ${search}`,
    `${indent}SCAN (subquery-${n})`,
    `${indent}USE TEMP B-TREE FOR ORDER BY`,
  ];
  const two = ["MERGE (UNION ALL)", "  LEFT", ...arm(1, "    "), "  RIGHT", ...arm(3, "    ")];
  if (arms === 2) return two;
  return ["MERGE (UNION ALL)", "  LEFT", ...two.map((l) => "    " + l), "  RIGHT", ...arm(5, "    ")];
}

interface PlanCase {
  readonly name: string;
  readonly filter: SessionFilter;
  readonly cursor?: ListCursor;
  /** The whole plan, or (`searches`) only its SEARCH lines where the tree's shape is SQLite's business. */
  readonly plan?: readonly string[];
  readonly searches?: readonly string[];
}

const CASES: readonly PlanCase[] = [
  { name: "none", filter: filterOf({}), plan: [`${SEARCH_CREATED} (org_id=?)`] },
  {
    name: "agent_id",
    filter: filterOf({ agentId: AGENT_ID }),
    plan: ["SEARCH s USING INDEX sessions_by_org_agent_created (org_id=? AND agent_id=?)"],
  },
  { name: "one status", filter: filterOf({ states: ["running"] }), plan: [BY_STATE] },
  { name: "two statuses", filter: filterOf({ states: ["running", "failed"] }), plan: mergedArms(BY_STATE, 2) },
  { name: "three statuses", filter: filterOf({ states: ["pending", "running", "failed"] }), plan: mergedArms(BY_STATE, 3) },
  {
    name: "five statuses",
    filter: filterOf({ states: ["pending", "running", "completed", "failed", "cancelled"] }),
    searches: Array(5).fill(BY_STATE),
  },
  { name: "one tag", filter: filterOf({ tags: ["a"] }), plan: ["SEARCH t USING PRIMARY KEY (org_id=? AND tag=?)", BY_ID] },
  { name: "two tags", filter: filterOf({ tags: ["a", "b"] }), plan: ["SEARCH t USING PRIMARY KEY (org_id=? AND tag=?)", ...OTHER_TAGS, BY_ID] },
  {
    name: "32 tags",
    filter: filterOf({ tags: Array.from({ length: 32 }, (_, i) => `t${i}`) }),
    plan: ["SEARCH t USING PRIMARY KEY (org_id=? AND tag=?)", ...OTHER_TAGS, BY_ID],
  },
  { name: "created_after", filter: filterOf({ createdAfter: AFTER }), plan: [`${SEARCH_CREATED} (org_id=? AND created_at>?)`] },
  { name: "created_before", filter: filterOf({ createdBefore: BEFORE }), plan: [`${SEARCH_CREATED} (org_id=? AND created_at<?)`] },
  {
    name: "created_after + created_before",
    filter: filterOf({ createdAfter: AFTER, createdBefore: BEFORE }),
    plan: [`${SEARCH_CREATED} (org_id=? AND created_at>? AND created_at<?)`],
  },
  { name: "cursor", filter: filterOf({}), cursor: CURSOR, plan: [`${SEARCH_CREATED} (org_id=? AND (created_at,id)<(?,?))`] },
  {
    name: "created_before + an earlier cursor",
    filter: filterOf({ createdBefore: BEFORE }),
    cursor: CURSOR,
    plan: [`${SEARCH_CREATED} (org_id=? AND (created_at,id)<(?,?))`],
  },
  {
    name: "created_before + a later cursor",
    filter: filterOf({ createdBefore: CURSOR.createdAt - 1 }),
    cursor: CURSOR,
    plan: [`${SEARCH_CREATED} (org_id=? AND created_at<?)`],
  },
  {
    name: "agent + status",
    filter: filterOf({ agentId: AGENT_ID, states: ["running"] }),
    plan: ["SEARCH s USING INDEX sessions_by_org_agent_state_created (org_id=? AND agent_id=? AND state=?)"],
  },
  {
    name: "agent + two statuses + cursor",
    filter: filterOf({ agentId: AGENT_ID, states: ["running", "failed"] }),
    cursor: CURSOR,
    plan: mergedArms("SEARCH s USING INDEX sessions_by_org_agent_state_created (org_id=? AND agent_id=? AND state=? AND (created_at,id)<(?,?))", 2),
  },
  {
    name: "two statuses + cursor",
    filter: filterOf({ states: ["running", "failed"] }),
    cursor: CURSOR,
    plan: mergedArms("SEARCH s USING INDEX sessions_by_org_state_created (org_id=? AND state=? AND (created_at,id)<(?,?))", 2),
  },
  { name: "tag + status", filter: filterOf({ tags: ["a"], states: ["running"] }), plan: ["SEARCH t USING PRIMARY KEY (org_id=? AND tag=?)", BY_ID] },
  {
    name: "tag + cursor",
    filter: filterOf({ tags: ["a"] }),
    cursor: CURSOR,
    plan: ["SEARCH t USING PRIMARY KEY (org_id=? AND tag=? AND (created_at,session_id)<(?,?))", BY_ID],
  },
  {
    name: "everything",
    filter: filterOf({
      agentId: AGENT_ID, states: ["running", "failed"], tags: ["a", "b"], createdAfter: AFTER, createdBefore: BEFORE,
    }),
    cursor: CURSOR,
    // The cursor lies before created_before, so it is the only upper bound in the query.
    plan: [
      "SEARCH t USING PRIMARY KEY (org_id=? AND tag=? AND created_at>? AND (created_at,session_id)<(?,?))",
      ...OTHER_TAGS,
      BY_ID,
    ],
  },
];

interface PlanRow {
  id: number;
  parent: number;
  detail: string;
}

/** EXPLAIN QUERY PLAN as the sqlite3 shell shows it: one line per node, indented by depth. */
function planOf(store: SqliteStore, { filter, cursor }: PlanCase): string[] {
  const { sql, params } = listQuery(ORG, filter, cursor, LIMIT);
  const rows = store.db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as PlanRow[];
  const depth = new Map<number, number>([[0, -1]]);
  return rows.map((row) => {
    const d = (depth.get(row.parent) ?? -1) + 1;
    depth.set(row.id, d);
    return "  ".repeat(d) + row.detail;
  });
}

/**
 * Why a plan is not a bounded index scan, or undefined if it is: every table is reached
 * through an index (SEARCH … USING INDEX / PRIMARY KEY), the only SCANs are of a
 * subquery's rows, and a sort only ever sorts a subquery's (LIMITed) rows.
 */
function unindexedAccess(plan: readonly string[]): string | undefined {
  for (const [i, line] of plan.entries()) {
    const node = line.trim();
    if (node.startsWith("SCAN ") && !/^SCAN \(subquery-\d+\)$/.test(node)) return `scans a table: ${node}`;
    if (node.startsWith("SEARCH ") && !/^SEARCH \w+ USING (COVERING INDEX \w+|INDEX \w+|PRIMARY KEY) \(/.test(node)) {
      return `searches without an index: ${node}`;
    }
    if (node.startsWith("USE TEMP B-TREE")) {
      const sortsSubquery = /^ *SCAN \(subquery-\d+\)$/.test(plan[i - 1] ?? "") && plan[i - 1]!.search(/\S/) === line.search(/\S/);
      if (!sortsSubquery) return `sorts rows that are not a subquery's: ${node}`;
    }
    if (node.startsWith("AUTOMATIC") || node.includes("BLOOM FILTER")) return `builds a transient index: ${node}`;
  }
  return undefined;
}

function expectPlan(plan: readonly string[], planCase: PlanCase): void {
  expect(unindexedAccess(plan)).toBeUndefined();
  if (planCase.plan) expect(plan).toEqual(planCase.plan);
  if (planCase.searches) expect(plan.map((l) => l.trim()).filter((l) => l.startsWith("SEARCH "))).toEqual(planCase.searches);
}

describe("listQuery's plans", () => {
  let dir: string;
  let store: SqliteStore;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "list-plan-"));
    store = new SqliteStore(join(dir, "plan.db"));
  });
  afterAll(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("recognises what it must refuse", () => {
    expect(unindexedAccess(["SCAN s"])).toBe("scans a table: SCAN s");
    expect(unindexedAccess(["SCAN s USING INDEX sessions_by_org_created"])).toBe(
      "scans a table: SCAN s USING INDEX sessions_by_org_created",
    );
    expect(unindexedAccess([`${SEARCH_CREATED} (org_id=?)`, "USE TEMP B-TREE FOR ORDER BY"])).toBe(
      "sorts rows that are not a subquery's: USE TEMP B-TREE FOR ORDER BY",
    );
    expect(unindexedAccess(["SEARCH s USING AUTOMATIC COVERING INDEX (state=?)"])).toBe(
      "searches without an index: SEARCH s USING AUTOMATIC COVERING INDEX (state=?)",
    );
    expect(unindexedAccess(mergedArms(BY_STATE, 3))).toBeUndefined();
  });

  it.each(CASES)("$name: an index range scan, on an empty database", (planCase) => {
    expectPlan(planOf(store, planCase), planCase);
  });

  describe("with 20,000 skewed sessions and ANALYZE statistics", () => {
    beforeAll(async () => {
      await seedSessions(store, 20_000);
      store.db.exec("ANALYZE");
    });

    it.each(CASES)("$name: the same plan", (planCase) => {
      expectPlan(planOf(store, planCase), planCase);
    });

    it("gives the same rows whichever of created_before and the cursor bounds the query", async () => {
      const filter = filterOf({ createdBefore: BEFORE, tags: ["b"] });
      const { records: all } = await store.listSessions(ORG, filter, undefined, 1_000_000);
      expect(all).toHaveLength(3200);
      expect(all[0]!.createdAt).toBe(BEFORE - 5);
      const fromCursor = async (createdAt: number, id: string) => (await store.listSessions(ORG, filter, { createdAt, id }, 3)).records;
      // A cursor after the bound (only a forged token has one) changes nothing.
      expect(await fromCursor(BEFORE + 1000, "session_ffffffffffffffffffffffffffffffff")).toEqual(all.slice(0, 3));
      expect(await fromCursor(BEFORE, "session_00000000000000000000000000000000")).toEqual(all.slice(0, 3));
      expect(await fromCursor(all[0]!.createdAt, all[0]!.id)).toEqual(all.slice(1, 4));
    });

    it("serves page 1 and page 1,000 in similar time (measured, not asserted)", async () => {
      const PAGE = 20;
      const measured: string[] = [];
      for (const planCase of CASES.filter((c) => c.cursor === undefined && !c.name.startsWith("32 tags"))) {
        const { records: all } = await store.listSessions(ORG, planCase.filter, undefined, 1_000_000);
        // The cursor of the last full page: with no filter, page 1,000 of 20,000.
        const deep = all.length > PAGE ? all[all.length - PAGE - 1]! : undefined;
        const first = medianMs(() => store.listSessions(ORG, planCase.filter, undefined, PAGE));
        const last = deep && medianMs(() => store.listSessions(ORG, planCase.filter, { createdAt: deep.createdAt, id: deep.id }, PAGE));
        measured.push(
          `${planCase.name.padEnd(30)} ${String(all.length).padStart(6)} rows  page 1 ${(await first).toFixed(3)} ms` +
            (last ? `  deep page ${(await last).toFixed(3)} ms  ratio ${((await last) / (await first)).toFixed(2)}` : ""),
        );
        if (deep) {
          const { records: page } = await store.listSessions(ORG, planCase.filter, { createdAt: deep.createdAt, id: deep.id }, PAGE);
          expect(page.map((s) => s.id)).toEqual(all.slice(all.length - PAGE).map((s) => s.id));
        }
      }
      console.log(`median of 30 runs, ${PAGE} + 1 rows per page:\n${measured.join("\n")}`);
    });
  });
});

/**
 * The conversation's queries: a page of messages or events is a range of its table's
 * primary key (session, sequence), an event's message is one primary-key lookup, and a
 * message by id uses messages_by_id. For SQLite 3.53.2:
 *
 * messages page       SEARCH messages USING PRIMARY KEY (org_id=? AND session_id=? AND sequence>?)
 * events page         SEARCH e USING PRIMARY KEY (org_id=? AND session_id=? AND sequence>?)
 *                     SEARCH m USING PRIMARY KEY (org_id=? AND session_id=? AND sequence=?) LEFT-JOIN
 * message by id       SEARCH messages USING INDEX messages_by_id (org_id=? AND session_id=? AND id=?)
 */
const CONVERSATION_CASES = [
  {
    name: "messages page",
    sql: LIST_MESSAGES_SQL,
    params: [ORG, "session_00000000000000000000000000000001", 10, LIMIT],
    plan: ["SEARCH messages USING PRIMARY KEY (org_id=? AND session_id=? AND sequence>?)"],
  },
  {
    name: "events page",
    sql: LIST_EVENTS_SQL,
    params: [ORG, "session_00000000000000000000000000000001", 10, LIMIT],
    plan: [
      "SEARCH e USING PRIMARY KEY (org_id=? AND session_id=? AND sequence>?)",
      "SEARCH m USING PRIMARY KEY (org_id=? AND session_id=? AND sequence=?) LEFT-JOIN",
    ],
  },
  {
    name: "message by id",
    sql: "SELECT * FROM messages WHERE org_id = ? AND session_id = ? AND id = ?",
    params: [ORG, "session_00000000000000000000000000000001", "message_00000000000000000000000000000001"],
    plan: ["SEARCH messages USING INDEX messages_by_id (org_id=? AND session_id=? AND id=?)"],
  },
  {
    name: "a deleted session's messages",
    sql: "DELETE FROM messages WHERE org_id = ? AND session_id = ?",
    params: [ORG, "session_00000000000000000000000000000001"],
    plan: ["SEARCH messages USING PRIMARY KEY (org_id=? AND session_id=?)"],
  },
  {
    name: "a deleted session's events",
    sql: "DELETE FROM session_events WHERE org_id = ? AND session_id = ?",
    params: [ORG, "session_00000000000000000000000000000001"],
    plan: ["SEARCH session_events USING PRIMARY KEY (org_id=? AND session_id=?)"],
  },
] as const;

describe("the conversation's query plans", () => {
  let dir: string;
  let store: SqliteStore;
  const planOfSql = (sql: string, params: readonly unknown[]) =>
    (store.db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as PlanRow[]).map((row) => row.detail);
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "conversation-plan-"));
    store = new SqliteStore(join(dir, "plan.db"));
  });
  afterAll(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it.each(CONVERSATION_CASES)("$name: a primary-key or index range, on an empty database", ({ sql, params, plan }) => {
    expect(planOfSql(sql, params)).toEqual(plan);
  });

  it.each(CONVERSATION_CASES)("$name: the same with 20 sessions of 1,000 events and ANALYZE", ({ sql, params, plan }) => {
    if (store.db.prepare("SELECT count(*) FROM session_events").pluck().get() === 0) {
      const event = store.db.prepare(`INSERT INTO session_events (org_id, session_id, sequence, type, title, tags, state,
        input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens, prompt_preview, response_preview, error,
        updated_at, version, message_count) VALUES (?, ?, ?, 'message_added', '', '[]', 'running', 0, 0, 0, 0, '', '', '', 1, ?, ?)`);
      const message = store.db.prepare(`INSERT INTO messages (org_id, session_id, sequence, id, role, content, model_id, created_at)
        VALUES (?, ?, ?, ?, 'user', '[{"text":"x"}]', '', 1)`);
      store.db.transaction(() => {
        for (let s = 0; s < 20; s++) {
          const sessionId = `session_${s.toString(16).padStart(32, "0")}`;
          for (let q = 1; q <= 1000; q++) {
            event.run(ORG, sessionId, q, q, q);
            message.run(ORG, sessionId, q, `message_${(s * 1000 + q).toString(16).padStart(32, "0")}`);
          }
        }
      })();
      store.db.exec("ANALYZE");
    }
    expect(planOfSql(sql, params)).toEqual(plan);
  });
});

async function medianMs(run: () => Promise<unknown>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < 30; i++) {
    const start = performance.now();
    await run();
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  return times[15]!;
}

/**
 * Sessions spread like a busy deployment's, inserted with plain SQL in one transaction:
 * agents 70/25/5 %, mostly completed, tag "a" on half, "b" on a fifth, "c" on 2 %.
 */
async function seedSessions(store: SqliteStore, count: number): Promise<void> {
  for (const agent of [AGENT_ID, AGENT_B, AGENT_C]) await seedTestAgent(store, agent);
  const insertSession = store.db.prepare(`
    INSERT INTO sessions (id, org_id, agent_id, model_id, capabilities, title, tags, state, created_at, updated_at)
    VALUES (?, ?, ?, '', '[]', '', ?, ?, ?, ?)`);
  const insertTag = store.db.prepare("INSERT INTO session_tags (org_id, tag, created_at, session_id) VALUES (?, ?, ?, ?)");
  const STATES: SessionState[] = [
    ...Array<SessionState>(80).fill("completed"), ...Array<SessionState>(10).fill("running"),
    ...Array<SessionState>(5).fill("failed"), ...Array<SessionState>(4).fill("pending"), "cancelled",
  ];
  store.db.transaction(() => {
    for (let i = 0; i < count; i++) {
      const id = `session_${i.toString(16).padStart(32, "0")}`;
      const agent = i % 20 === 0 ? AGENT_C : i % 4 === 1 ? AGENT_B : AGENT_ID;
      // A multiplier coprime to 100 spreads states without lining them up with agents or tags.
      const state = STATES[(i * 37) % 100]!;
      const tags = [i % 2 === 0 ? "a" : "", i % 5 === 0 ? "b" : "", i % 50 === 3 ? "c" : ""].filter((t) => t !== "");
      const createdAt = 1_700_000_000_000 + i;
      insertSession.run(id, ORG, agent, JSON.stringify(tags), state, createdAt, createdAt);
      for (const tag of tags) insertTag.run(ORG, tag, createdAt, id);
    }
  })();
}
