import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MODEL_ID, startTestServer, type TestServer } from "./helpers/server.js";

/**
 * A REST body is read as it is sent: one with a Content-Encoding other than identity
 * (which the transcoder does not decode) is 415 naming the encoding, before any byte of
 * it is read. Before, the compressed bytes were parsed as JSON (400 "malformed JSON").
 */

let server: TestServer;
beforeAll(async () => (server = await startTestServer()));
afterAll(() => server.close());

const AGENT = JSON.stringify({ name: "encoded", default_model_id: MODEL_ID });

async function post(body: Uint8Array | string, encoding: string | undefined) {
  const res = await fetch(`${server.url}/v1/agents`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(encoding === undefined ? {} : { "content-encoding": encoding }) },
    body,
  });
  return { status: res.status, body: await res.json() };
}

describe("REST Content-Encoding", () => {
  it.each([
    ["gzip", gzipSync(AGENT)],
    ["br", Buffer.from(AGENT)],
    ["GZIP, identity", gzipSync(AGENT)],
  ])("answers 415 naming %j", async (encoding, body) => {
    expect(await post(body, encoding)).toEqual({
      status: 415,
      body: {
        code: 3,
        message: `unsupported Content-Encoding "${encoding}": send the body uncompressed (Content-Encoding identity or none)`,
        details: [],
      },
    });
  });

  it("serves identity and no Content-Encoding alike", async () => {
    expect((await post(AGENT, "identity")).status).toBe(201);
    expect((await post(AGENT, "Identity")).status).toBe(201);
    expect((await post(AGENT, undefined)).status).toBe(201);
  });
});
