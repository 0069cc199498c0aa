import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SessionService } from "../gen/sessions/v1/session_service_pb.js";
import { SqliteStore } from "../src/store/sqlite.js";
import type { SessionRecord } from "../src/store/store.js";
import { AGENT_ID, DEFAULT_ORG_ID, startTestServer, type TestServer } from "./helpers/server.js";
import { RPC_TRANSPORTS } from "./helpers/rpc-transports.js";

/**
 * No protocol returns an internal message to a client: a failure connect-es meets after
 * the handler returned (encoding the answer) reached Connect, gRPC and gRPC-Web clients
 * with its own text ("google.protobuf.Value must have a value"; with a large enough page,
 * "Invalid string length"), and nothing was logged. Now it is "internal error" on every
 * protocol, and the log has the cause.
 */

const SESSION_ID = "session_0123456789abcdef0123456789abcdef";
/** What protobuf-es says when it cannot encode the stored value below. */
const CAUSE = "google.protobuf.Value must have a value";

let server: TestServer;
let dir: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "internal-messages-"));
  const store = new SqliteStore(join(dir, "sessions.db"));
  // A stored config no protobuf encoder accepts, as a corrupted row might hold.
  store.findSession = async () => unencodable;
  server = await startTestServer({ store, seedAgent: true });
});
afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

// Connect's cases in RPC_TRANSPORTS leave the codec to connect-node's default (binary),
// whose encoder writes the value as null instead of failing.
const json = [
  ...RPC_TRANSPORTS.filter((t) => t.codec === "json" && t.protocol !== "connect"),
  { name: "Connect JSON (explicitly) over HTTP/1.1", create: (baseUrl: string) => createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: false }) },
  { name: "Connect JSON (explicitly) over HTTP/2", create: (baseUrl: string) => createConnectTransport({ baseUrl, httpVersion: "2", useBinaryFormat: false }) },
];

describe.each(json)("$name", (transport) => {
  it("answers internal with the message \"internal error\" and logs the cause", async () => {
    const client = createClient(SessionService, transport.create(server.url));
    const logged = server.logs.length;
    const error = await client.getSession({ id: SESSION_ID }).then(
      () => undefined,
      (err: unknown) => ConnectError.from(err),
    );
    expect([error?.code, error?.rawMessage]).toEqual([Code.Internal, "internal error"]);
    const lines = server.logs.slice(logged).filter((l) => l.level === 50);
    expect(lines.map((l) => [l.procedure, l.error])).toEqual([["/sessions.v1.SessionService/GetSession", CAUSE]]);
  });
});

it("REST answers 500 internal error, as before", async () => {
  const res = await fetch(`${server.url}/v1/sessions/${SESSION_ID}`);
  expect([res.status, await res.json()]).toEqual([500, { code: 13, message: "internal error", details: [] }]);
});

const unencodable: SessionRecord = {
  id: SESSION_ID,
  orgId: DEFAULT_ORG_ID,
  agentId: AGENT_ID,
  modelId: "",
  capabilities: [{ capabilityId: "c", config: { bad: Symbol("not JSON") } }],
  title: "t",
  tags: [],
  state: "pending",
  usage: { inputTokens: 0n, outputTokens: 0n, cacheReadTokens: 0n, cacheCreationTokens: 0n },
  promptPreview: "",
  responsePreview: "",
  error: "",
  createdAt: 1,
  updatedAt: 1,
  startedAt: undefined,
  finishedAt: undefined,
  version: 1,
  messageCount: 0,
  lastSequence: 1,
};
