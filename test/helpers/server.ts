import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import { startServer, type RunningServer } from "../../src/server.js";
import { SqliteStore } from "../../src/store/sqlite.js";
import type { Store } from "../../src/store/store.js";
import type { ReflectionAuth } from "../../src/config.js";
import type { EdgeTimeouts } from "../../src/net/edge-deadlines.js";
import { SessionEvents } from "../../src/service/session-events.js";
import { StreamCaps, type StreamLimits } from "../../src/service/stream-caps.js";

export interface TestServer extends RunningServer {
  readonly dbPath: string;
  readonly store: Store;
  /** The server's publisher of session changes, to count watchers. */
  readonly events: SessionEvents;
  /** The server's long-lived streams and their caps, to count open streams. */
  readonly streams: StreamCaps;
  /** Lines the server logged (JSON objects), for asserting what reached the log. */
  readonly logs: Record<string, unknown>[];
  /** Stops the server, closes the store and removes the temporary folder. */
  close(): Promise<void>;
}

/**
 * A real server on 127.0.0.1 port 0 with a temporary SQLite database (or the store
 * given), serving every protocol exactly as `npm start` does.
 */
export async function startTestServer(
  options: {
    store?: Store;
    dbPath?: string;
    /** The port to listen on; 0 (a free one) unless given, e.g. to restart a server where its clients expect it. */
    port?: number;
    seedAgent?: boolean;
    corsOrigins?: readonly string[];
    reflectionAuth?: ReflectionAuth;
    timeouts?: Partial<EdgeTimeouts>;
    maxConnections?: number;
    listPageBytes?: number;
    maxSessionMessages?: number;
    connectionWriteBudget?: number;
    h2MaxConcurrentStreams?: number;
    /** Caps on long-lived streams; the defaults where not given. */
    streamLimits?: Partial<StreamLimits>;
    /** How often the keys of open streams are looked up again. */
    keyRecheckIntervalMs?: number;
    /** TLS with the test certificate (test/fixtures/tls-cert.pem, for localhost; TEST_TLS_CA trusts it). */
    tls?: boolean;
    shutdownTimeoutMs?: number;
    /** Longest a REST server stream goes without writing (its heartbeat). */
    streamHeartbeatMs?: number;
  } = {},
): Promise<TestServer> {
  const dir = mkdtempSync(join(tmpdir(), "sessions-test-"));
  const dbPath = options.dbPath ?? join(dir, "sessions.db");
  const store = options.store ?? new SqliteStore(dbPath);
  if (options.seedAgent ?? !options.store) await seedTestAgent(store);
  const logs: Record<string, unknown>[] = [];
  const logger = pino({ level: "info" }, { write: (line: string) => void logs.push(JSON.parse(line)) });
  const events = new SessionEvents();
  const streams = new StreamCaps(options.streamLimits);
  const server = await startServer({
    host: "127.0.0.1",
    port: options.port ?? 0,
    store,
    logger,
    shutdownTimeoutMs: options.shutdownTimeoutMs ?? 2000,
    tls: options.tls ? { cert: TEST_TLS_CA, key: readFileSync(new URL("../fixtures/tls-key.pem", import.meta.url)) } : undefined,
    events,
    webRoot: CONSOLE_ROOT,
    corsOrigins: options.corsOrigins,
    reflectionAuth: options.reflectionAuth,
    timeouts: options.timeouts,
    maxConnections: options.maxConnections,
    listPageBytes: options.listPageBytes,
    maxSessionMessages: options.maxSessionMessages,
    connectionWriteBudget: options.connectionWriteBudget,
    h2MaxConcurrentStreams: options.h2MaxConcurrentStreams,
    streams,
    keyRecheckIntervalMs: options.keyRecheckIntervalMs,
    streamHeartbeatMs: options.streamHeartbeatMs,
  });
  return {
    ...server,
    dbPath,
    store,
    events,
    streams,
    logs,
    async close() {
      await server.stop();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The self-signed certificate of startTestServer({ tls: true }), for localhost: a client's CA. */
export const TEST_TLS_CA = readFileSync(new URL("../fixtures/tls-cert.pem", import.meta.url));

/** The console as scripts/build.mjs builds it (test/global-setup.ts runs the build before the tests). */
export const CONSOLE_ROOT = fileURLToPath(new URL("../../dist/web", import.meta.url));

export const AGENT_ID = "agent_0123456789abcdef0123456789abcdef";
export const MODEL_ID = "model_fedcba9876543210fedcba9876543210";
export const DEFAULT_ORG_ID = "org_00000000000000000000000000000001";
export const SESSION_ID_PATTERN = /^session_[0-9a-f]{32}$/;

/**
 * Stores the agent AGENT_ID in the default organisation, straight through the store, so
 * that tests of sessions can create them without going through the agent API first.
 */
export async function seedTestAgent(store: Store, id = AGENT_ID, orgId = DEFAULT_ORG_ID): Promise<void> {
  if (await store.findAgent(orgId, id)) return;
  await store.insertAgent({
    id,
    orgId,
    name: "test agent",
    defaultModelId: MODEL_ID,
    capabilities: [],
    createdAt: Date.now(),
    updatedAt: Date.now(),
    version: 1,
  });
}

/** Creates an agent over REST, as a user of a fresh server must before creating sessions; returns its id. */
export async function createAgentOverRest(baseUrl: string, name = "test agent"): Promise<string> {
  const res = await requestJson(`${baseUrl}/v1/agents`, { body: { name, default_model_id: MODEL_ID } });
  if (res.status !== 201) throw new Error(`creating an agent answered ${res.status}: ${JSON.stringify(res.body)}`);
  return res.body.id as string;
}

/** fetch with a JSON body; returns status, headers and the parsed body. */
export async function requestJson(
  url: string,
  init: { method?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<{ status: number; headers: Headers; body: any }> {
  const hasBody = init.body !== undefined;
  const response = await fetch(url, {
    method: init.method ?? (hasBody ? "POST" : "GET"),
    headers: { ...(hasBody ? { "content-type": "application/json" } : {}), ...init.headers },
    body: hasBody ? (typeof init.body === "string" ? init.body : JSON.stringify(init.body)) : undefined,
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text === "" ? undefined : JSON.parse(text) };
}
