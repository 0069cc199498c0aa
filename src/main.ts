import { readFileSync } from "node:fs";
import { ConfigError, helpText, parseConfig } from "./config.js";
import { createLogger } from "./log.js";
import { SqliteStore } from "./store/sqlite.js";
import { startServer } from "./server.js";

/** Flags and environment → config → a running server; SIGTERM/SIGINT stop it cleanly. */
async function main(): Promise<void> {
  let parsed;
  try {
    parsed = parseConfig(process.argv.slice(2), process.env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`error: ${err.message}\n(see --help)\n`);
    process.exit(2);
  }
  if (parsed.help) {
    process.stdout.write(helpText());
    return;
  }
  const { config } = parsed;
  const logger = createLogger(config.logLevel);
  const tls = config.tlsCertPath && config.tlsKeyPath
    ? { cert: readFileSync(config.tlsCertPath), key: readFileSync(config.tlsKeyPath) }
    : undefined;
  const store = new SqliteStore(config.dbPath);
  const server = await startServer({
    host: config.host,
    port: config.port,
    store,
    logger,
    tls,
    shutdownTimeoutMs: config.shutdownTimeoutMs,
  });
  process.stdout.write(`listening on ${server.url}\n`);
  logger.info({ url: server.url, db: config.dbPath }, "started");

  // `on`, not `once`: a signal sent to the process group of `npm start` reaches the server
  // twice (directly, and forwarded by npm); a second one must not kill it mid-drain.
  let stopping = false;
  const shutdown = async (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "stopping");
    await server.stop();
    await store.close();
    logger.info("stopped");
    process.exit(0);
  };
  process.on("SIGTERM", (signal) => void shutdown(signal));
  process.on("SIGINT", (signal) => void shutdown(signal));
}

main().catch((err: unknown) => {
  process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
