import { execFile } from "node:child_process";
import { chmodSync, chownSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** Debian's PostgreSQL 15 (scripts/test-prerequisites.sh installs it when missing). */
export const POSTGRES_BIN = process.env.POSTGRES_BIN ?? "/usr/lib/postgresql/15/bin";

export interface PostgresCluster {
  /** The port it listens on, on 127.0.0.1. */
  readonly port: number;
  /** A URL of the cluster's `postgres` database, as the superuser `postgres`. */
  readonly adminUrl: string;
  /** Its data folder (owned by the `postgres` user). */
  readonly dataDir: string;
  /** Starts it again after stop({ keep: true }), on the same port. */
  start(): Promise<void>;
  /** Stops it (fast shutdown); unless `keep`, removes its folder too. */
  stop(options?: { keep?: boolean }): Promise<void>;
}

/**
 * A throwaway PostgreSQL cluster: `initdb` into a temporary folder and `pg_ctl start` on a
 * free port of 127.0.0.1, as the `postgres` user the Debian package creates (PostgreSQL
 * refuses to run as root). About a second here. Trust authentication, loopback only.
 *
 * `fsync=off`: the tests prove what the server does when its own process dies, or when
 * PostgreSQL stops cleanly; none needs PostgreSQL's data to survive a power cut, and with
 * fsync on every CREATE DATABASE and commit waits for the disk.
 */
export async function startPostgresCluster(options: { maxConnections?: number } = {}): Promise<PostgresCluster> {
  const dir = mkdtempSync(join(tmpdir(), "sessions-pg-"));
  chmodSync(dir, 0o755);
  const { uid, gid } = await postgresUser();
  chownSync(dir, uid, gid);
  const dataDir = join(dir, "data");
  await asPostgres([`${POSTGRES_BIN}/initdb`, "-D", dataDir, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C.UTF-8"]);
  const port = await freePort();
  const settings = [
    `-p ${port}`,
    `-k ${dir}`,
    "-c listen_addresses=127.0.0.1",
    `-c max_connections=${options.maxConnections ?? 400}`,
    "-c fsync=off",
    "-c full_page_writes=off",
    "-c synchronous_commit=off",
    "-c shared_buffers=128MB",
  ].join(" ");
  const start = () => asPostgres([`${POSTGRES_BIN}/pg_ctl`, "-D", dataDir, "-o", settings, "-l", join(dir, "postgres.log"), "-w", "-t", "30", "start"]);
  await start();
  let stopped = false;
  return {
    port,
    adminUrl: `postgres://postgres@127.0.0.1:${port}/postgres`,
    dataDir,
    start: async () => {
      await start();
      stopped = false;
    },
    async stop({ keep = false } = {}) {
      if (!stopped) {
        stopped = true;
        await asPostgres([`${POSTGRES_BIN}/pg_ctl`, "-D", dataDir, "-m", "fast", "-w", "-t", "30", "stop"]).catch(() => undefined);
      }
      if (!keep) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The URL of database `name` on the cluster that `adminUrl` names. */
export function databaseUrl(adminUrl: string, name: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

async function asPostgres(command: string[]): Promise<void> {
  const [file, ...args] = process.getuid?.() === 0 ? ["runuser", "-u", "postgres", "--", ...command] : command;
  try {
    await run(file!, args, { cwd: "/" });
  } catch (error) {
    const { stderr = "", stdout = "" } = error as { stderr?: string; stdout?: string };
    throw new Error(`${command.join(" ")} failed: ${stderr || stdout}`);
  }
}

async function postgresUser(): Promise<{ uid: number; gid: number }> {
  if (process.getuid?.() !== 0) return { uid: process.getuid!(), gid: process.getgid!() };
  const { stdout } = await run("id", ["-u", "postgres"]);
  const { stdout: group } = await run("id", ["-g", "postgres"]);
  return { uid: Number(stdout.trim()), gid: Number(group.trim()) };
}

/** A port nobody listens on now (the cluster binds it a moment later). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
