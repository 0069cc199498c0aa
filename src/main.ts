import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { ConfigError, helpText, parseConfig } from "./config.js";
import { createLogger } from "./log.js";
import { SqliteStore } from "./store/sqlite.js";
import { startServer } from "./server.js";
import { isLoopbackHost, openModeRefusal } from "./auth/open-mode.js";

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

  // Handlers go in before anything else runs: until a listener exists, SIGTERM's default
  // action kills the process outright. `on`, not `once`: a signal sent to the process
  // group of `npm start` reaches the server twice (directly, and forwarded by npm).
  let stopSignal: NodeJS.Signals | undefined;
  let onStopSignal = (signal: NodeJS.Signals) => void (stopSignal ??= signal);
  process.on("SIGTERM", (signal) => onStopSignal(signal));
  process.on("SIGINT", (signal) => onStopSignal(signal));

  const tls = config.tlsCertPath && config.tlsKeyPath
    ? { cert: readFileSync(config.tlsCertPath), key: readFileSync(config.tlsKeyPath) }
    : undefined;
  const store = new SqliteStore(config.dbPath, { idempotencyKeysPerOrg: config.idempotencyKeysPerOrg });
  const hasKeys = await store.hasKeys();
  const refusal = openModeRefusal(config.host, hasKeys, config.insecureOpen);
  if (refusal) {
    await store.close();
    process.stderr.write(`error: ${refusal}\n`);
    process.exit(2);
  }
  if (!hasKeys) {
    const loud = config.insecureOpen && !isLoopbackHost(config.host);
    logger[loud ? "warn" : "info"](
      { host: config.host },
      loud
        ? "OPEN MODE ON A NETWORK ADDRESS (--insecure-open): no API keys, every caller acts as the default organisation"
        : "open mode: no API keys yet, every caller acts as the default organisation (loopback only)",
    );
    if (loud) process.stderr.write("warning: --insecure-open: serving without API keys on a network address\n");
  }
  const server = await startServer({
    host: config.host,
    port: config.port,
    store,
    logger,
    tls,
    shutdownTimeoutMs: config.shutdownTimeoutMs,
    // dist/main.js and src/main.ts (under tsx) both sit one folder below the package root.
    webRoot: fileURLToPath(new URL("../dist/web", import.meta.url)),
    corsOrigins: config.corsOrigins,
    reflectionAuth: config.reflectionAuth,
    timeouts: config.timeouts,
    maxConnections: config.maxConnections,
    listPageBytes: config.listPageBytes,
    maxSessionMessages: config.maxSessionMessages,
    connectionWriteBudget: config.connectionWriteBudget,
    h2MaxConcurrentStreams: config.h2MaxConcurrentStreams,
    h2ResetBurst: config.h2ResetBurst,
    streamLimits: config.streamLimits,
    keyRecheckIntervalMs: config.keyRecheckIntervalMs,
  });
  process.stdout.write(`listening on ${server.url}\n`);
  logger.info({ url: server.url, db: config.dbPath }, "started");

  let stopping = false;
  const stop = async (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "stopping");
    // The stop cuts every connection at its timeout; should anything still hold it, end anyway.
    const forced = setTimeout(() => {
      logger.error("stop did not finish within the shutdown timeout; exiting");
      process.exit(1);
    }, config.shutdownTimeoutMs + 900);
    await server.stop();
    clearTimeout(forced);
    await store.close();
    logger.info("stopped");
    process.exit(0);
  };
  onStopSignal = (signal) => void stop(signal);
  if (stopSignal) await stop(stopSignal); // asked to stop while starting
}

main().catch((err: unknown) => {
  process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
