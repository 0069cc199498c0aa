import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { toJson } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { SessionService } from "../gen/sessions/v1/session_service_pb.js";
import { SessionSchema, type Session } from "../gen/sessions/v1/session_pb.js";
import { GrpcJsSessionService } from "./helpers/grpc-js.js";
import { AGENT_ID, requestJson, startTestServer, type TestServer } from "./helpers/server.js";

type Unary = (request: object, callback: (error: grpc.ServiceError | null, response: any) => void) => grpc.ClientUnaryCall;

/** UpdateSession over grpc-js: the response, or the ServiceError. */
function grpcUpdate(client: grpc.Client, request: object): Promise<any> {
  const fn = (client as unknown as Record<string, Unary>)["UpdateSession"]!.bind(client);
  return new Promise((resolve) => fn(request, (error, response) => resolve(error ?? response)));
}

/** What an update decides, in the proto names that REST JSON and grpc-js share. */
function outcome(session: Record<string, any>): Record<string, unknown> {
  const { title, tags, status, etag, agent_id, usage } = session;
  return { title, tags, status, etag, agent_id, usage };
}

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

  it("updates the title named by update_mask in the query, ignoring the body's other fields", async () => {
    const s = await create();
    const res = await patch(s.id, { title: "new", tags: ["ignored"] }, "?update_mask=title");
    expect(res.status).toBe(200);
    expect(res.body.title).toBe("new");
    expect(res.body.tags).toEqual(["a"]);
    expect(res.body.etag).toBe("session-v2");
    expect(Date.parse(res.body.updated_at)).toBeGreaterThanOrEqual(Date.parse(s.updated_at));
  });

  it("updates tags named by update_mask in the query string", async () => {
    const s = await create();
    const res = await patch(s.id, { title: "ignored", tags: ["x", "y"] }, "?update_mask=tags");
    expect(res.status).toBe(200);
    expect(res.body.tags).toEqual(["x", "y"]);
    expect(res.body.title).toBe("old");
  });

  it("answers the curl user's PATCH ?update_mask=title with {\"title\": \"x\"}: 200, only the title changed", async () => {
    const s = await create();
    const res = await patch(s.id, { title: "x" }, "?update_mask=title");
    expect(res.status).toBe(200);
    const { title, etag, updated_at, ...rest } = res.body;
    const { title: _oldTitle, etag: _oldEtag, updated_at: _oldUpdatedAt, ...unchanged } = s;
    expect({ title, etag }).toEqual({ title: "x", etag: "session-v2" });
    expect(rest).toEqual(unchanged);
    expect((await requestJson(`${server.url}/v1/sessions/${s.id}`)).body).toEqual(res.body);
  });

  it("with an empty mask, updates the fields present in the body, so a title can be cleared", async () => {
    const s = await create();
    const res = await patch(s.id, { title: "" });
    expect(res.status).toBe(200);
    expect(res.body.title).toBe("");
    expect(res.body.tags).toEqual(["a"]);
  });

  it('clears the tags with {"tags": []} and no mask, leaving the title', async () => {
    const s = await create();
    const res = await patch(s.id, { tags: [] });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ title: "old", tags: [], etag: "session-v2" });
    expect((await requestJson(`${server.url}/v1/sessions/${s.id}`)).body.tags).toEqual([]);
  });

  it("refuses a mask naming a field that cannot be updated", async () => {
    const s = await create();
    const res = await patch(s.id, { status: "SESSION_STATUS_RUNNING" }, "?update_mask=title,status");
    expect(res.status).toBe(400);
    expect(res.body.message).toBe('update_mask: "status" cannot be updated; only title and tags can');
  });

  it.each([
    ["status", { status: "SESSION_STATUS_RUNNING" }],
    ["usage", { usage: { input_tokens: "5" } }],
    ["agent_id", { agent_id: AGENT_ID }],
  ])("answers 400 naming %s when the body sends it without a mask, and changes nothing", async (field, body) => {
    const s = await create();
    const res = await patch(s.id, { title: "new", ...body });
    const message = `update_mask: "${field}" cannot be updated; only title and tags can`;
    expect(res.status).toBe(400);
    expect(res.body).toEqual({
      code: 3,
      message,
      details: [{ "@type": "type.googleapis.com/google.rpc.BadRequest", field_violations: [{ field: "update_mask", description: message }] }],
    });
    expect((await requestJson(`${server.url}/v1/sessions/${s.id}`)).body).toEqual(s);
  });

  it("accepts the id of the path in the body, so a session read can be sent back", async () => {
    const s = await create();
    const res = await patch(s.id, { ...s, title: "round trip", etag: s.etag }, "?update_mask=title");
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: s.id, title: "round trip", etag: "session-v2" });
  });

  it("answers 400 naming session.id when the body's id is not the path's, and changes nothing", async () => {
    const s = await create();
    const other = await create();
    const res = await patch(s.id, { id: other.id, title: "x" }, "?update_mask=title");
    expect(res.status).toBe(400);
    expect(res.body).toEqual({
      code: 3,
      message: `invalid request body: "session.id" is "${other.id}" but the path says "${s.id}": leave it out of the body or send the same value`,
      details: [],
    });
    expect((await requestJson(`${server.url}/v1/sessions/${s.id}`)).body).toEqual(s);
    expect((await requestJson(`${server.url}/v1/sessions/${other.id}`)).body).toEqual(other);
  });

  it("answers 400 for the old request-shaped body, saying the body is the Session and the mask goes in the query", async () => {
    const s = await create();
    const wrapped = await patch(s.id, { session: { title: "x" }, update_mask: "title" });
    expect(wrapped.status).toBe(400);
    expect(wrapped.body).toEqual({
      code: 3,
      message:
        'invalid request body: unknown field "session": the body is the sessions.v1.Session itself, not wrapped in "session"; update_mask goes in the query string',
      details: [],
    });
    const maskInBody = await patch(s.id, { title: "x", updateMask: "title" });
    expect(maskInBody.status).toBe(400);
    expect(maskInBody.body).toEqual({
      code: 3,
      message: 'invalid request body: unknown field "updateMask": the body is the sessions.v1.Session; update_mask goes in the query string',
      details: [],
    });
    expect((await requestJson(`${server.url}/v1/sessions/${s.id}`)).body).toEqual(s);
  });

  it("validates the new values with the create limits, naming the request field", async () => {
    const s = await create();
    const res = await patch(s.id, { title: "t".repeat(257), tags: ["dup", "dup"] });
    expect(res.status).toBe(400);
    expect(res.body.details[0].field_violations).toEqual([
      { field: "session.title", description: "session.title must be at most 256 characters, got 257" },
      { field: "session.tags[1]", description: "session.tags[1] duplicates session.tags[0]" },
    ]);
  });

  it("refuses a stale etag with aborted (409, code 10) and accepts the current one", async () => {
    const s = await create();
    await patch(s.id, { title: "first" });
    const stale = await patch(s.id, { title: "second", etag: s.etag });
    expect(stale.status).toBe(409);
    expect(stale.body).toEqual({
      code: 10,
      message: `session ${s.id} has changed since it was read: etag session-v1 is not the current session-v2`,
      details: [],
    });
    const current = await patch(s.id, { title: "second", etag: "session-v2" });
    expect(current.status).toBe(200);
    expect(current.body.title).toBe("second");
  });

  it('refuses {"title":"x","etag":"session-v3"} once the session is at v4: 409, code 10, with or without a mask', async () => {
    const s = await create();
    for (const title of ["v2", "v3", "v4"]) await patch(s.id, { title });
    const message = `session ${s.id} has changed since it was read: etag session-v3 is not the current session-v4`;
    const stale = await patch(s.id, { title: "x", etag: "session-v3" });
    expect(stale.status).toBe(409);
    expect(stale.body).toEqual({ code: 10, message, details: [] });
    const masked = await patch(s.id, { title: "x", etag: "session-v3" }, "?update_mask=title");
    expect(masked.status).toBe(409);
    expect(masked.body).toEqual({ code: 10, message, details: [] });
    expect((await requestJson(`${server.url}/v1/sessions/${s.id}`)).body.title).toBe("v4");
  });

  it("answers 404 for an unknown session", async () => {
    const res = await patch("session_0123456789abcdef0123456789abcdef", { title: "x" });
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

  it("PATCH over REST, UpdateSession over gRPC (grpc-js) and over Connect give the same sessions and the same stale-etag error", async () => {
    const grpcJs = new GrpcJsSessionService(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
    try {
      const [a, b, c] = [await create(), await create(), await create()];
      const connectJson = (session: Session) => toJson(SessionSchema, session, { useProtoFieldName: true, alwaysEmitImplicit: true }) as Record<string, any>;
      const connectError = (e: unknown) => ConnectError.from(e);

      // A masked title with the current etag; the body's other fields are ignored.
      const rest1 = await patch(a.id, { title: "new", tags: ["ignored"], etag: "session-v1" }, "?update_mask=title");
      const grpc1 = await grpcUpdate(grpcJs, { session: { id: b.id, title: "new", tags: ["ignored"], etag: "session-v1" }, update_mask: { paths: ["title"] } });
      const connect1 = await connect.updateSession({ session: { id: c.id, title: "new", tags: ["ignored"], etag: "session-v1" }, updateMask: { paths: ["title"] } });
      const first = { title: "new", tags: ["a"], status: "SESSION_STATUS_PENDING", etag: "session-v2", agent_id: AGENT_ID, usage: a.usage };
      expect(rest1.status).toBe(200);
      expect([outcome(rest1.body), outcome(grpc1), outcome(connectJson(connect1))]).toEqual([first, first, first]);

      // Clearing the tags: REST names them by sending them; RPC clients name them in the mask.
      const rest2 = await patch(a.id, { tags: [] });
      const grpc2 = await grpcUpdate(grpcJs, { session: { id: b.id, tags: [] }, update_mask: { paths: ["tags"] } });
      const connect2 = await connect.updateSession({ session: { id: c.id, tags: [] }, updateMask: { paths: ["tags"] } });
      const second = { ...first, tags: [], etag: "session-v3" };
      expect([outcome(rest2.body), outcome(grpc2), outcome(connectJson(connect2))]).toEqual([second, second, second]);

      // A stale etag: aborted everywhere, with the same message.
      const stale = (id: string) => `session ${id} has changed since it was read: etag session-v1 is not the current session-v3`;
      const rest3 = await patch(a.id, { title: "late", etag: "session-v1" });
      const grpc3 = (await grpcUpdate(grpcJs, { session: { id: b.id, title: "late", etag: "session-v1" } })) as grpc.ServiceError;
      const connect3 = await connect.updateSession({ session: { id: c.id, title: "late", etag: "session-v1" } }).then(() => undefined, connectError);
      expect(rest3.status).toBe(409);
      expect(rest3.body).toEqual({ code: 10, message: stale(a.id), details: [] });
      // connect-node percent-encodes grpc-message with encodeURIComponent and grpc-js decodes it
      // with decodeURI, which leaves ":" encoded (test/grpc-js.test.ts checks the exact text in
      // grpc-status-details-bin).
      expect([grpc3.code, grpc3.details]).toEqual([grpc.status.ABORTED, stale(b.id).replaceAll(":", "%3A")]);
      expect([connect3?.code, connect3?.rawMessage]).toEqual([Code.Aborted, stale(c.id)]);
    } finally {
      grpcJs.close();
    }
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
    await patch(s.id, { title: "changed" });
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
