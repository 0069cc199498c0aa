import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AGENT_ID, requestJson, startTestServer, type TestServer } from "./helpers/server.js";

describe("smoke", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server.close();
  });
  it("creates and gets over REST", async () => {
    const created = await requestJson(`${server.url}/v1/sessions`, { body: { agent_id: AGENT_ID } });
    expect(created.status).toBe(201);
    const got = await requestJson(`${server.url}/v1/sessions/${created.body.id}`);
    expect(got.body).toEqual(created.body);
  });
});
