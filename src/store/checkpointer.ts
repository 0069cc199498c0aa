import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";

/**
 * The worker's code, CommonJS evaluated in a worker thread: it stays plain JavaScript so that
 * it runs the same under `npm start` (tsx) and in the tests (vitest), neither of which hands
 * its TypeScript loader to a worker.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.driver);
const db = new Database(workerData.path, { fileMustExist: true });
db.pragma("synchronous = " + workerData.synchronous);
// Never wait for a lock: a checkpoint that cannot run now runs at the next tick.
db.pragma("busy_timeout = 0");
const checkpoint = db.prepare("PRAGMA wal_checkpoint(PASSIVE)");
const commits = new Int32Array(workerData.commits);
let checkpointed = 0;
const timer = setInterval(() => {
  const seen = Atomics.load(commits, 0);
  if (seen === checkpointed) return;
  try {
    checkpoint.run();
    checkpointed = seen;
  } catch { /* busy or failing storage: the next tick tries again */ }
}, workerData.intervalMs);
parentPort.once("message", () => {
  clearInterval(timer);
  db.close();
  parentPort.close();
});
`;

export interface CheckpointerOptions {
  readonly path: string;
  /** The synchronous level of the serving connection; a checkpoint fsyncs at this level too. */
  readonly synchronous: string;
  readonly intervalMs: number;
}

/**
 * Folds the WAL back into the database file from a worker thread, on its own connection.
 * A checkpoint writes and fsyncs the database file: on the serving connection it stalled the
 * event loop 30–45 ms at a time under write load (SQLite checkpoints on the connection whose
 * commit crossed wal_autocheckpoint), which set the p99 of every request in flight. PASSIVE
 * never takes the write lock or waits for readers, so the serving connection keeps
 * committing meanwhile; durability is unchanged, since a commit is durable once its WAL
 * frames are fsynced, before it is answered.
 */
export class Checkpointer {
  private readonly worker: Worker;
  private readonly exited: Promise<void>;
  /** Commits so far, counted by the serving thread; the worker checkpoints only after new ones. */
  private readonly commits = new Int32Array(new SharedArrayBuffer(4));

  constructor(options: CheckpointerOptions) {
    const driver = createRequire(import.meta.url).resolve("better-sqlite3");
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: {
        driver,
        path: options.path,
        synchronous: options.synchronous,
        intervalMs: options.intervalMs,
        commits: this.commits.buffer,
      },
      // Its own small heap: it holds one connection and one statement.
      resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 4 },
    });
    // A worker that failed leaves the serving connection's own autocheckpoint as the backstop.
    this.worker.on("error", () => {});
    this.worker.unref();
    this.exited = new Promise((resolve) => this.worker.once("exit", () => resolve()));
  }

  /** Tells the worker that the WAL has grown. */
  noteCommit(): void {
    Atomics.add(this.commits, 0, 1);
  }

  /** Stops checkpointing and closes the worker's connection; resolves once it has exited. */
  async stop(): Promise<void> {
    // Held while it stops: unreferenced, a process with nothing else to do would exit first.
    this.worker.ref();
    this.worker.postMessage("stop");
    await this.exited;
  }
}
