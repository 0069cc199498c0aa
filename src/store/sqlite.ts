import Database from "better-sqlite3";
import { mkdirSync, realpathSync } from "node:fs";
import { dirname } from "node:path";
import { MIGRATIONS } from "./migrations.js";
import { SqliteSessions } from "./sqlite-sessions.js";
import { SqliteAgents } from "./sqlite-agents.js";
import { SqliteKeys } from "./sqlite-keys.js";
import { SqliteMessages } from "./sqlite-messages.js";
import { SqliteEvents } from "./sqlite-events.js";
import { translateSqliteError } from "./sqlite-errors.js";
import { rollBackLeftoverTransaction, WriteBatcher } from "./write-batcher.js";
import { Checkpointer } from "./checkpointer.js";
import { IDEMPOTENCY_KEYS_PER_ORG, SqliteIdempotencyKeys } from "./sqlite-idempotency.js";
import { StorageFileGuard, type StorageFault } from "./storage-file-guard.js";
import type { StoreObserver, StoreRead } from "./store-observer.js";
import type {
  AgentRecord, ApiKeyRecord, DeleteCheck, IdempotencyKey, KeyedInsert, ListCursor, MessageRecord, Mutation, SessionChange,
  SessionEventRecord, SessionFilter, SessionRecord, Store, StoredPage,
} from "./store.js";
import { StoreUnavailableError } from "./store.js";

/** The settings the README promises; see "Storage and durability" there. */
export const SQLITE_SETTINGS = {
  // WAL: readers never wait for the writer, a commit appends to one file, and a crash
  // mid-write leaves the last complete commit (the WAL is replayed on the next open).
  journalMode: "wal",
  // FULL: the WAL is fsynced at every COMMIT, before the answer goes out, so an answered
  // write survives power loss and OS crashes too. NORMAL would fsync only at checkpoints:
  // it survives kill -9 just as well (the OS still holds the writes), but an OS crash or
  // power cut could take back the last answered commits. Cost here: one fsync per COMMIT
  // (~0.2 ms median, ~4 ms p99), shared by the writes of a group commit. Set on every open: better-sqlite3 is built with
  // SQLITE_DEFAULT_WAL_SYNCHRONOUS=1, so a reopened WAL database would run at NORMAL.
  synchronous: "full",
  // How often a worker thread folds the WAL back into the database file (see Checkpointer),
  // off the event loop, when something was committed since its last checkpoint. Durability does not depend on it: a commit is durable once in the WAL.
  checkpointIntervalMs: 100,
  // The serving connection's own checkpoint, after a commit that leaves the WAL over this
  // many pages (64 MiB): only a backstop, for when the worker cannot keep up or has failed,
  // since it runs on the event loop and stalled it 30–45 ms each time at SQLite's default
  // of 1000 pages.
  walAutocheckpointPages: 16_000,
  // How long a write waits for the write lock while another process holds it before
  // failing as unavailable (503). The only other writer meant to share the file is the
  // keys command, whose writes and closing checkpoint take milliseconds. SQLite waits by
  // sleeping on the event loop, so every request stalls meanwhile: a longer hold (a
  // manual sqlite3 session) should fail writes after a second, not freeze the server.
  busyTimeoutMs: 1000,
  // Where the statement journal of each write's savepoint in a group commit lives (see
  // WriteBatcher). On a file, it spills to disk past 64 KiB of pages, and a batch of 256
  // creates then took 22 ms instead of 5 ms here. It only ever undoes a savepoint inside
  // the open transaction, so durability does not depend on it; it is emptied whenever a
  // write's savepoint is released, so it holds the pages of one write at most.
  tempStore: "memory",
  // How often a timer checks that the database, its WAL and its shared-memory index are still
  // the files the connections hold (see StorageFileGuard); a write transaction also checks
  // first when the last check is older than fileCheckBeforeWriteMs, so that writes stop going
  // into a deleted file within that long under load, at a cost of three stat calls per 50 ms.
  fileCheckIntervalMs: 1000,
  fileCheckBeforeWriteMs: 50,
  // Readiness (ping) trusts the latest write transaction's outcome for this long after it
  // succeeded, and for writeRetryAfterFailureMs after it failed; older than that, it writes
  // one row of its own. A server under load never probes, an idle one at most every 5 s, and
  // one whose writes fail (and which load balancers have stopped sending traffic to) notices
  // within a second that they work again.
  writeOutcomeFreshMs: 5000,
  writeRetryAfterFailureMs: 1000,
} as const;

const SQLITE_DEFAULT_AUTOCHECKPOINT_PAGES = 1000;

/** Options of a store; tests shorten the busy timeout. */
export interface SqliteStoreOptions {
  /** Defaults to SQLITE_SETTINGS.busyTimeoutMs. */
  readonly busyTimeoutMs?: number;
  /**
   * Whether the writes of one event-loop turn share one transaction (see WriteBatcher).
   * Defaults to true; false commits each write on its own, for measuring the difference.
   */
  readonly groupCommit?: boolean;
  /** The most writes in one group commit; defaults to GROUP_COMMIT_MAX_WRITES. */
  readonly groupCommitMaxWrites?: number;
  /**
   * Whether a worker thread checkpoints the WAL (see Checkpointer). Defaults to true;
   * false leaves checkpoints to the serving connection, for measuring the difference.
   */
  readonly checkpointInWorker?: boolean;
  /** The most idempotency keys an organisation keeps; defaults to IDEMPOTENCY_KEYS_PER_ORG. */
  readonly idempotencyKeysPerOrg?: number;
}

/**
 * A batch runs on the event loop from BEGIN to COMMIT, so its size bounds how long one
 * turn can stall. Here a full batch of 256 creates is about 5 ms of statements and a 3–4 ms
 * COMMIT; in bench/store-micro.ts with 2,048 creates in flight, bounds of 128, 256 and 1,024
 * gave 11.0k, 11.2k and 12.4k rows/s with the longest stall at 33, 52 and 117 ms.
 */
export const GROUP_COMMIT_MAX_WRITES = 256;

/**
 * The embedded store: one SQLite file in WAL mode, prepared statements only. Opening
 * creates the file and its folder when missing and brings the schema up to date.
 */
export class SqliteStore implements Store {
  /** The open database, for tests that read query plans or check integrity. */
  readonly db: Database.Database;
  private readonly sessions: SqliteSessions;
  private readonly messages: SqliteMessages;
  private readonly events: SqliteEvents;
  private readonly agents: SqliteAgents;
  private readonly keys: SqliteKeys;
  private readonly idempotencyKeys: SqliteIdempotencyKeys;
  /** Undefined for an in-memory database. */
  private readonly files: StorageFileGuard | undefined;
  /** The write of a readiness probe in flight, shared by the probes that ask meanwhile. */
  private probing: Promise<void> | undefined;
  private readonly writeProbeStatement: Database.Statement<[number]>;
  /** Every session and agent write goes through it: resolved once committed. */
  private readonly writes: WriteBatcher;
  private readonly checkpointer: Checkpointer | undefined;
  /** Told of write batches and reads (the server's metrics); usually one, or none. */
  private readonly observers = new Set<StoreObserver>();
  /** Reads the schema's first page: a real read of the file (or its WAL), unlike `SELECT 1`. */
  private readonly pingStatement: Database.Statement;

  /** Throws an Error naming the path when the file cannot be opened or migrated. */
  constructor(path: string, options: SqliteStoreOptions = {}) {
    if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
    const checkpointInWorker = path !== ":memory:" && (options.checkpointInWorker ?? true);
    let db: Database.Database | undefined;
    try {
      db = new Database(path);
      db.pragma(`journal_mode = ${SQLITE_SETTINGS.journalMode}`);
      db.pragma(`synchronous = ${SQLITE_SETTINGS.synchronous}`);
      db.pragma(`wal_autocheckpoint = ${checkpointInWorker ? SQLITE_SETTINGS.walAutocheckpointPages : SQLITE_DEFAULT_AUTOCHECKPOINT_PAGES}`);
      db.pragma(`temp_store = ${SQLITE_SETTINGS.tempStore}`);
      db.pragma(`busy_timeout = ${options.busyTimeoutMs ?? SQLITE_SETTINGS.busyTimeoutMs}`);
      migrate(db);
    } catch (error) {
      db?.close();
      throw new Error(`cannot open database ${path}: ${(error as Error).message}`, { cause: error });
    }
    this.db = db;
    this.idempotencyKeys = new SqliteIdempotencyKeys(this.db, options.idempotencyKeysPerOrg ?? IDEMPOTENCY_KEYS_PER_ORG);
    this.messages = new SqliteMessages(this.db);
    this.events = new SqliteEvents(this.db);
    this.sessions = new SqliteSessions(this.db, this.idempotencyKeys, this.messages, this.events);
    this.agents = new SqliteAgents(this.db, this.idempotencyKeys);
    this.keys = new SqliteKeys(this.db);
    this.pingStatement = this.db.prepare("SELECT 1 FROM sqlite_schema LIMIT 1");
    this.writeProbeStatement = this.db.prepare("UPDATE write_probe SET probed_at = ? WHERE id = 1");
    if (path !== ":memory:") {
      // A read opens the WAL and its index (creating them if missing), so that the guard
      // records the files the connection holds. SQLite puts them beside the real file.
      this.pingStatement.get();
      const real = realpathSync(path);
      this.files = new StorageFileGuard([path, `${real}-wal`, `${real}-shm`], SQLITE_SETTINGS.fileCheckIntervalMs, (fault) =>
        this.onFault(fault),
      );
    }
    const checkpointer = checkpointInWorker
      ? new Checkpointer({ path, synchronous: SQLITE_SETTINGS.synchronous, intervalMs: SQLITE_SETTINGS.checkpointIntervalMs })
      : undefined;
    this.checkpointer = checkpointer;
    this.writes = new WriteBatcher(this.db, {
      groupCommit: options.groupCommit ?? true,
      maxBatch: options.groupCommitMaxWrites ?? GROUP_COMMIT_MAX_WRITES,
      ...(checkpointer ? { onCommit: () => checkpointer.noteCommit() } : {}),
      beforeBatch: () => this.refuseWritesAfterFault(SQLITE_SETTINGS.fileCheckBeforeWriteMs),
      onBatch: (writes, seconds) => {
        for (const observer of this.observers) observer.writeBatch(writes, seconds);
      },
    });
  }

  insertSession(session: SessionRecord): Promise<boolean>;
  insertSession(session: SessionRecord, key: IdempotencyKey): Promise<KeyedInsert<SessionRecord> | false>;
  insertSession(session: SessionRecord, key?: IdempotencyKey): Promise<boolean | KeyedInsert<SessionRecord>> {
    return this.writes.run<boolean | KeyedInsert<SessionRecord>>(() =>
      key ? this.sessions.insertKeyedSession(session, key) : this.sessions.insertSession(session),
    );
  }
  findSession(orgId: string, id: string) {
    return this.read("find_session", () => this.sessions.findSession(orgId, id));
  }
  listSessions(orgId: string, filter: SessionFilter, cursor: ListCursor | undefined, limit: number, maxBytes = Infinity) {
    return this.read("list_sessions", () => this.sessions.listSessions(orgId, filter, cursor, limit, maxBytes));
  }
  mutateSession(orgId: string, id: string, change: SessionChange, mutation: Mutation<SessionRecord>) {
    return this.writes.run(() => this.sessions.mutateSession(orgId, id, change, mutation));
  }
  deleteSession(orgId: string, id: string, check: DeleteCheck<SessionRecord>) {
    return this.writes.run(() => this.sessions.deleteSession(orgId, id, check));
  }
  appendMessage(message: MessageRecord, mutation: Mutation<SessionRecord>, key?: IdempotencyKey) {
    return this.writes.run(() => this.sessions.appendMessage(message, mutation, key));
  }
  findMessage(orgId: string, sessionId: string, id: string) {
    return this.read("find_message", () => this.messages.findMessage(orgId, sessionId, id));
  }
  listMessages(orgId: string, sessionId: string, afterSequence: number, limit: number, maxBytes = Infinity) {
    return this.read("list_messages", () => this.messages.listMessages(orgId, sessionId, afterSequence, limit, maxBytes));
  }
  /** Empty when there is no such session (the service tells not_found apart first). */
  listSessionEvents(
    orgId: string,
    sessionId: string,
    afterSequence: number,
    limit: number,
    maxBytes = Infinity,
  ): Promise<StoredPage<SessionEventRecord>> {
    return this.read("list_session_events", () => {
      // One read of the session for the fields every event shares, in the same synchronous
      // call as the page (no write can come between them).
      const session = this.sessions.findSession(orgId, sessionId);
      return session ? this.events.listEvents(session, afterSequence, limit, maxBytes) : { records: [], more: false, bytes: 0 };
    });
  }
  insertAgent(agent: AgentRecord): Promise<void>;
  insertAgent(agent: AgentRecord, key: IdempotencyKey): Promise<KeyedInsert<AgentRecord>>;
  insertAgent(agent: AgentRecord, key?: IdempotencyKey): Promise<void | KeyedInsert<AgentRecord>> {
    return this.writes.run<void | KeyedInsert<AgentRecord>>(() =>
      key ? this.agents.insertKeyedAgent(agent, key) : this.agents.insertAgent(agent),
    );
  }
  findAgent(orgId: string, id: string) {
    return this.read("find_agent", () => this.agents.findAgent(orgId, id));
  }
  listAgents(orgId: string, cursor: ListCursor | undefined, limit: number, maxBytes = Infinity) {
    return this.read("list_agents", () => this.agents.listAgents(orgId, cursor, limit, maxBytes));
  }
  mutateAgent(orgId: string, id: string, mutation: Mutation<AgentRecord>) {
    return this.writes.run(() => this.agents.mutateAgent(orgId, id, mutation));
  }
  deleteAgent(orgId: string, id: string, check: DeleteCheck<AgentRecord>) {
    return this.writes.run(() => this.agents.deleteAgent(orgId, id, check));
  }

  // Keys are written by the keys command and, throttled, by authentication: rarely, so
  // each in its own autocommit rather than through the batcher.
  insertKey(key: ApiKeyRecord) {
    return this.guard(() => (this.refuseWritesAfterFault(), this.keys.insertKey(key)));
  }
  findKey(id: string) {
    return this.read("find_key", () => this.keys.findKey(id));
  }
  listKeys() {
    return this.guard(() => this.keys.listKeys());
  }
  revokeKey(id: string, at: number) {
    return this.guard(() => (this.refuseWritesAfterFault(), this.keys.revokeKey(id, at)));
  }
  touchKey(id: string, at: number) {
    return this.guard(() => (this.refuseWritesAfterFault(), this.keys.touchKey(id, at)));
  }
  hasKeys() {
    return this.guard(() => this.keys.hasKeys());
  }

  sweepIdempotencyKeys(expiredBefore: number, limit: number): Promise<number> {
    return this.writes.run(() => this.idempotencyKeys.sweep(expiredBefore, limit));
  }

  async ping(): Promise<void> {
    try {
      await this.guard(() => this.pingStatement.get());
      this.refuseWritesAfterFault();
      await this.writesWork();
    } catch (error) {
      // Readiness only asks whether the database answers: any failure (a damaged file, a
      // closed connection) means it does not, whatever SQLite calls it.
      throw error instanceof StoreUnavailableError ? error : new StoreUnavailableError("io", { cause: error });
    }
  }

  /**
   * Whether writes work: the latest write transaction's outcome while it is fresh (see
   * SQLITE_SETTINGS.writeOutcomeFreshMs), else one small write through the batcher — a real
   * page written to the WAL and fsynced, which fails as real writes would on a full disk, a
   * read-only or immutable file, or a lock held too long.
   */
  private writesWork(): Promise<void> {
    const last = this.writes.lastTransaction;
    if (last !== undefined) {
      const age = performance.now() - last.at;
      if (last.error === undefined && age < SQLITE_SETTINGS.writeOutcomeFreshMs) return Promise.resolve();
      if (last.error !== undefined && age < SQLITE_SETTINGS.writeRetryAfterFailureMs) return Promise.reject(last.error);
    }
    return (this.probing ??= this.writes
      .run(() => void this.writeProbeStatement.run(Date.now()))
      .finally(() => (this.probing = undefined)));
  }

  /** Throws once a file of the database has been deleted or replaced (checked if the last check is older than `maxAgeMs`). */
  private refuseWritesAfterFault(maxAgeMs = 0): void {
    const fault = this.files?.check(maxAgeMs);
    if (fault) {
      throw new StoreUnavailableError("replaced", { cause: new Error(`${fault.file} was ${fault.change} while the server had it open`) });
    }
  }

  /**
   * Tells the observers, then folds the WAL into the database file the connection holds and
   * empties it: the writes answered before the fault are then in the database file (when only
   * the WAL was removed, a restart finds them), and no stale WAL is left to be replayed onto
   * a file that replaced the database. Later, off the path of the write that found the fault.
   */
  private onFault(fault: StorageFault): void {
    for (const observer of this.observers) observer.fault?.(fault);
    setImmediate(() => {
      try {
        if (this.db.open && !this.db.inTransaction) this.db.pragma("wal_checkpoint(TRUNCATE)");
      } catch {
        // Busy or failing: close() tries again.
      }
    });
  }

  /**
   * Folds the WAL into the database file, then closes. After a stop the database is then
   * one self-contained file, safe to copy, even when another process (the keys command)
   * has it open and SQLite's own checkpoint at the last close would not run.
   */
  async close(): Promise<void> {
    if (!this.db.open) return;
    // Writes still queued are committed (and answered) before the connection goes.
    this.writes.flush();
    this.files?.stop();
    await this.checkpointer?.stop();
    try {
      this.db.pragma("wal_checkpoint(TRUNCATE)");
    } catch {
      // A full disk, say: the WAL stays beside the file and the next open replays it.
    }
    this.db.close();
  }

  observe(observer: StoreObserver): () => void {
    this.observers.add(observer);
    const fault = this.files?.fault;
    if (fault) observer.fault?.(fault);
    return () => void this.observers.delete(observer);
  }

  /**
   * A read through guard, timed for the observers. The statements run synchronously
   * within `call`, also where it returns a promise, so that is what the time covers.
   */
  private read<T>(operation: StoreRead, call: () => T | Promise<T>): Promise<T> {
    if (this.observers.size === 0) return this.guard(call);
    const started = performance.now();
    return this.guard(() => {
      try {
        return call();
      } finally {
        const seconds = (performance.now() - started) / 1000;
        for (const observer of this.observers) observer.read(operation, seconds);
      }
    });
  }

  /**
   * Runs a read, or a key call (which commits on its own). A SQLite error that means
   * storage is unavailable becomes a StoreUnavailableError, and a transaction a failure left
   * open is rolled back before and after, so that no later write runs inside it (and is
   * answered but never committed). The batcher does the same for queued writes.
   */
  private async guard<T>(call: () => T | Promise<T>): Promise<T> {
    try {
      rollBackLeftoverTransaction(this.db);
      return await call();
    } catch (error) {
      rollBackLeftoverTransaction(this.db, true);
      throw translateSqliteError(error);
    }
  }
}

function migrate(db: Database.Database): void {
  const applied = db.pragma("user_version", { simple: true }) as number;
  if (applied > MIGRATIONS.length) {
    throw new Error(`the database has schema version ${applied}, newer than this server's ${MIGRATIONS.length}`);
  }
  for (let version = applied; version < MIGRATIONS.length; version++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[version]!);
      db.pragma(`user_version = ${version + 1}`);
    })();
  }
}
