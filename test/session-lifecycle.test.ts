import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { SessionService } from "../gen/sessions/v1/session_service_pb.js";
import { SessionStatus } from "../gen/sessions/v1/session_pb.js";
import { AGENT_ID, requestJson, startTestServer, type TestServer } from "./helpers/server.js";

const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

describe("session lifecycle", () => {
  let server: TestServer;
  let grpc: Client<typeof SessionService>;
  beforeAll(async () => {
    server = await startTestServer();
    grpc = createClient(SessionService, createGrpcTransport({ baseUrl: server.url }));
  });
  afterAll(async () => {
    await server.close();
  });

  const create = async () => (await requestJson(`${server.url}/v1/sessions`, { body: { agent_id: AGENT_ID } })).body;
  const move = (id: string, verb: string, body: unknown = undefined) =>
    requestJson(`${server.url}/v1/sessions/${id}:${verb}`, { method: "POST", body });
  /** A session brought to a state by the RPCs themselves. */
  const sessionIn = async (state: "pending" | "running" | "completed" | "failed" | "cancelled") => {
    const { id } = await create();
    if (state === "running" || state === "completed" || state === "failed") expect((await move(id, "start")).status).toBe(200);
    if (state === "completed") expect((await move(id, "complete")).status).toBe(200);
    if (state === "failed") expect((await move(id, "fail", { error: "boom" })).status).toBe(200);
    if (state === "cancelled") expect((await move(id, "cancel")).status).toBe(200);
    return id as string;
  };

  it("start: PENDING → RUNNING with started_at, a new updated_at and etag; 200, not 201", async () => {
    const created = await create();
    const res = await move(created.id, "start");
    expect(res.status).toBe(200);
    expect(res.headers.get("location")).toBeNull();
    expect(res.body.status).toBe("SESSION_STATUS_RUNNING");
    expect(res.body.started_at).toMatch(ISO_MS);
    expect(res.body.updated_at).toBe(res.body.started_at);
    expect(Date.parse(res.body.started_at)).toBeGreaterThanOrEqual(Date.parse(created.created_at));
    expect(res.body.finished_at).toBeUndefined();
    expect(res.body.etag).toBe("session-v2");
    expect(res.body.created_at).toBe(created.created_at);
  });

  it("complete: RUNNING → COMPLETED with finished_at", async () => {
    const id = await sessionIn("running");
    const res = await move(id, "complete");
    expect(res.status).toBe(200);
    expect(res.body.status).toBe("SESSION_STATUS_COMPLETED");
    expect(res.body.finished_at).toMatch(ISO_MS);
    expect(res.body.updated_at).toBe(res.body.finished_at);
    expect(res.body.error).toBe("");
  });

  it("fail: RUNNING → FAILED, storing the error", async () => {
    const id = await sessionIn("running");
    const res = await move(id, "fail", { error: "tool call timed out after 30 s" });
    expect(res.status).toBe(200);
    expect(res.body.status).toBe("SESSION_STATUS_FAILED");
    expect(res.body.error).toBe("tool call timed out after 30 s");
    expect(res.body.finished_at).toMatch(ISO_MS);
    expect((await requestJson(`${server.url}/v1/sessions/${id}`)).body).toEqual(res.body);
  });

  it("fail without an error message is 400 naming the field, and changes nothing", async () => {
    const id = await sessionIn("running");
    const res = await move(id, "fail", {});
    expect(res.status).toBe(400);
    expect(res.body.message).toBe("error is required: say why the session failed");
    expect(res.body.details[0].field_violations).toEqual([{ field: "error", description: "error is required: say why the session failed" }]);
    expect((await requestJson(`${server.url}/v1/sessions/${id}`)).body.status).toBe("SESSION_STATUS_RUNNING");
  });

  it("fail with an error over 4096 characters is 400", async () => {
    const id = await sessionIn("running");
    const res = await move(id, "fail", { error: "é".repeat(4097) });
    expect(res.status).toBe(400);
    expect(res.body.message).toBe("error must be at most 4096 characters, got 4097");
  });

  it.each(["pending", "running"] as const)("cancel: %s → CANCELLED with finished_at", async (state) => {
    const id = await sessionIn(state);
    const res = await move(id, "cancel");
    expect(res.status).toBe(200);
    expect(res.body.status).toBe("SESSION_STATUS_CANCELLED");
    expect(res.body.finished_at).toMatch(ISO_MS);
  });

  const refused: Array<[string, string, string]> = [
    ["pending", "complete", "SESSION_STATUS_RUNNING"],
    ["pending", "fail", "SESSION_STATUS_RUNNING"],
    ["running", "start", "SESSION_STATUS_PENDING"],
    ["completed", "start", "SESSION_STATUS_PENDING"],
    ["completed", "complete", "SESSION_STATUS_RUNNING"],
    ["completed", "fail", "SESSION_STATUS_RUNNING"],
    ["completed", "cancel", "SESSION_STATUS_PENDING or SESSION_STATUS_RUNNING"],
    ["failed", "start", "SESSION_STATUS_PENDING"],
    ["failed", "cancel", "SESSION_STATUS_PENDING or SESSION_STATUS_RUNNING"],
    ["cancelled", "start", "SESSION_STATUS_PENDING"],
    ["cancelled", "complete", "SESSION_STATUS_RUNNING"],
    ["cancelled", "cancel", "SESSION_STATUS_PENDING or SESSION_STATUS_RUNNING"],
  ];
  it.each(refused)("a %s session cannot %s: 400, code 9, naming the current status; nothing changes", async (state, verb, allowed) => {
    const id = await sessionIn(state as never);
    const before = (await requestJson(`${server.url}/v1/sessions/${id}`)).body;
    const res = await move(id, verb, verb === "fail" ? { error: "x" } : undefined);
    expect(res.status).toBe(400);
    expect(res.body).toEqual({
      code: 9,
      message: `cannot ${verb} session ${id}: it is SESSION_STATUS_${state.toUpperCase()}, and only a session that is ${allowed} can ${verb}`,
      details: [],
    });
    expect((await requestJson(`${server.url}/v1/sessions/${id}`)).body).toEqual(before);
  });

  it("answers failed_precondition over gRPC too", async () => {
    const id = await sessionIn("completed");
    const error = await grpc.startSession({ id }).then(() => undefined, (e: unknown) => ConnectError.from(e));
    expect(error?.code).toBe(Code.FailedPrecondition);
    expect(error?.rawMessage).toBe(
      `cannot start session ${id}: it is SESSION_STATUS_COMPLETED, and only a session that is SESSION_STATUS_PENDING can start`,
    );
  });

  it("walks the whole lifecycle over gRPC", async () => {
    const created = await grpc.createSession({ agentId: AGENT_ID });
    const started = await grpc.startSession({ id: created.id });
    expect(started.status).toBe(SessionStatus.RUNNING);
    expect(started.startedAt).toBeDefined();
    const failed = await grpc.failSession({ id: created.id, error: "model refused" });
    expect(failed.status).toBe(SessionStatus.FAILED);
    expect(failed.error).toBe("model refused");
    expect(failed.finishedAt).toBeDefined();
    expect(failed.etag).toBe("session-v3");
  });

  it("answers 404 for an unknown session and 400 for a malformed id", async () => {
    const unknown = await move("session_0123456789abcdef0123456789abcdef", "start");
    expect(unknown.status).toBe(404);
    expect(unknown.body.message).toBe("session session_0123456789abcdef0123456789abcdef not found");
    const malformed = await move("session_1", "start");
    expect(malformed.status).toBe(400);
    expect(malformed.body.message).toBe('Invalid session ID: id must be "session_" followed by 32 lowercase hex digits');
  });

  it("lets exactly one of many concurrent conflicting moves win", async () => {
    const id = await sessionIn("running");
    const verbs = Array.from({ length: 30 }, (_, i) => ["complete", "cancel", "fail"][i % 3]!);
    const results = await Promise.all(verbs.map((verb) => move(id, verb, verb === "fail" ? { error: "e" } : undefined)));
    const winners = results.filter((r) => r.status === 200);
    expect(winners).toHaveLength(1);
    const losers = results.filter((r) => r.status !== 200);
    expect(losers).toHaveLength(29);
    for (const loser of losers) {
      expect(loser.status).toBe(400);
      expect(loser.body.code).toBe(9);
    }
    const final = (await requestJson(`${server.url}/v1/sessions/${id}`)).body;
    expect(final.status).toBe(winners[0]!.body.status);
    expect(final.etag).toBe("session-v3");
  });

  it("lets exactly one of many concurrent starts win, over REST and gRPC at once", async () => {
    const { id } = await create();
    const rest = Array.from({ length: 10 }, () => move(id, "start").then((r) => r.status === 200));
    const rpc = Array.from({ length: 10 }, () => grpc.startSession({ id }).then(() => true, () => false));
    const outcomes = await Promise.all([...rest, ...rpc]);
    expect(outcomes.filter(Boolean)).toHaveLength(1);
  });
});
