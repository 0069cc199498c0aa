import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { SessionService } from "../gen/sessions/v1/session_service_pb.js";
import { AGENT_ID, requestJson, startTestServer, type TestServer } from "./helpers/server.js";

describe("UpdateSession and DeleteSession", () => {
  let server: TestServer;
  let connect: Client<typeof SessionService>;
  beforeAll(async () => {
    server = await startTestServer();
    connect = createClient(SessionService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }));
  });
  afterAll(async () => {
    await server.close();
  });

  const create = async (body: Record<string, unknown> = {}) =>
    (await requestJson(`${server.url}/v1/sessions`, { body: { agent_id: AGENT_ID, title: "old", tags: ["a"], ...body } })).body;
  const patch = (id: string, body: unknown, query = "") =>
    requestJson(`${server.url}/v1/sessions/${id}${query}`, { method: "PATCH", body });

  it("updates the title named by update_mask in the body", async () => {
    const s = await create();
    const res = await patch(s.id, { session: { title: "new", tags: ["ignored"] }, update_mask: "title" });
    expect(res.status).toBe(200);
    expect(res.body.title).toBe("new");
    expect(res.body.tags).toEqual(["a"]);
    expect(res.body.etag).toBe("session-v2");
    expect(Date.parse(res.body.updated_at)).toBeGreaterThanOrEqual(Date.parse(s.updated_at));
  });

  it("updates tags named by update_mask in the query string", async () => {
    const s = await create();
    const res = await patch(s.id, { session: { title: "ignored", tags: ["x", "y"] } }, "?update_mask=tags");
    expect(res.status).toBe(200);
    expect(res.body.tags).toEqual(["x", "y"]);
    expect(res.body.title).toBe("old");
  });

  it("with an empty mask, updates the fields present in the body, so a title can be cleared", async () => {
    const s = await create();
    const res = await patch(s.id, { session: { title: "" } });
    expect(res.status).toBe(200);
    expect(res.body.title).toBe("");
    expect(res.body.tags).toEqual(["a"]);
    const tags = await patch(s.id, { session: { tags: [] } });
    expect(tags.body.tags).toEqual([]);
  });

  it("refuses a mask naming a field that cannot be updated", async () => {
    const s = await create();
    const res = await patch(s.id, { session: { status: "SESSION_STATUS_RUNNING" }, update_mask: "title,status" });
    expect(res.status).toBe(400);
    expect(res.body.message).toBe('update_mask: "status" cannot be updated; only title and tags can');
    const implied = await patch(s.id, { session: { agent_id: AGENT_ID } });
    expect(implied.status).toBe(400);
    expect(implied.body.message).toBe('update_mask: "agent_id" cannot be updated; only title and tags can');
  });

  it("validates the new values with the create limits, naming the request field", async () => {
    const s = await create();
    const res = await patch(s.id, { session: { title: "t".repeat(257), tags: ["dup", "dup"] } });
    expect(res.status).toBe(400);
    expect(res.body.details[0].field_violations).toEqual([
      { field: "session.title", description: "session.title must be at most 256 characters, got 257" },
      { field: "session.tags[1]", description: "session.tags[1] duplicates session.tags[0]" },
    ]);
  });

  it("refuses a stale etag with aborted (409, code 10) and accepts the current one", async () => {
    const s = await create();
    await patch(s.id, { session: { title: "first" } });
    const stale = await patch(s.id, { session: { title: "second", etag: s.etag } });
    expect(stale.status).toBe(409);
    expect(stale.body).toEqual({
      code: 10,
      message: `session ${s.id} has changed since it was read: etag session-v1 is not the current session-v2`,
      details: [],
    });
    const current = await patch(s.id, { session: { title: "second", etag: "session-v2" } });
    expect(current.status).toBe(200);
    expect(current.body.title).toBe("second");
  });

  it("answers 404 for an unknown session", async () => {
    const res = await patch("session_0123456789abcdef0123456789abcdef", { session: { title: "x" } });
    expect(res.status).toBe(404);
  });

  it("over Connect, an empty mask updates the populated fields (AIP-134) and ignores output-only ones", async () => {
    const s = await create();
    const got = await connect.getSession({ id: s.id });
    got.title = "via connect";
    const updated = await connect.updateSession({ session: got });
    expect(updated.title).toBe("via connect");
    expect(updated.tags).toEqual(["a"]);
    const masked = await connect.updateSession({ session: { id: s.id, tags: ["b"] }, updateMask: { paths: ["tags"] } });
    expect(masked.tags).toEqual(["b"]);
    const stale = await connect.updateSession({ session: got }).then(() => undefined, (e: unknown) => ConnectError.from(e));
    expect(stale?.code).toBe(Code.Aborted);
  });

  it("deletes: 200 with {}, then get and a second delete are 404", async () => {
    const s = await create();
    const res = await requestJson(`${server.url}/v1/sessions/${s.id}`, { method: "DELETE" });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({});
    expect((await requestJson(`${server.url}/v1/sessions/${s.id}`)).status).toBe(404);
    const again = await requestJson(`${server.url}/v1/sessions/${s.id}`, { method: "DELETE" });
    expect(again.status).toBe(404);
    expect(again.body).toEqual({ code: 5, message: `session ${s.id} not found`, details: [] });
  });

  it("deletes only with the current etag when one is given", async () => {
    const s = await create();
    await patch(s.id, { session: { title: "changed" } });
    const stale = await requestJson(`${server.url}/v1/sessions/${s.id}?etag=session-v1`, { method: "DELETE" });
    expect(stale.status).toBe(409);
    expect((await requestJson(`${server.url}/v1/sessions/${s.id}`)).status).toBe(200);
    const current = await requestJson(`${server.url}/v1/sessions/${s.id}?etag=session-v2`, { method: "DELETE" });
    expect(current.status).toBe(200);
  });

  it("deletes over Connect", async () => {
    const s = await create();
    await connect.deleteSession({ id: s.id });
    const error = await connect.getSession({ id: s.id }).then(() => undefined, (e: unknown) => ConnectError.from(e));
    expect(error?.code).toBe(Code.NotFound);
  });
});
