import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { AGENT_ID, floorArgs, openFloorStore } from "./floor-store.js";

/**
 * The REST floor: `POST /v1/sessions` written by hand on node:http — read the body, parse
 * the JSON, validate the agent id, insert one row, answer 201 with the row as Session JSON.
 * Nothing else (no auth, no routing table, no limits beyond a body cap): the least code
 * that does the same durable work, so our REST figure divided by this one is the price
 * of everything else we do.
 */

const { port, db } = floorArgs();
const store = openFloorStore(db);
const MAX_BODY = 1024 * 1024;

const server = http.createServer((req, res) => {
  if (req.method !== "POST" || req.url !== "/v1/sessions") {
    res.writeHead(404).end();
    return;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  req.on("data", (chunk: Buffer) => {
    size += chunk.length;
    if (size <= MAX_BODY) chunks.push(chunk);
  });
  req.on("end", () => {
    if (size > MAX_BODY) return answer(res, 413, { message: "body too large" });
    let body: { agent_id?: unknown; title?: unknown; tags?: unknown };
    try {
      body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as typeof body;
    } catch {
      return answer(res, 400, { message: "malformed JSON" });
    }
    if (typeof body.agent_id !== "string" || !AGENT_ID.test(body.agent_id)) return answer(res, 400, { message: "invalid agent_id" });
    const title = typeof body.title === "string" ? body.title : "";
    const tags = Array.isArray(body.tags) ? body.tags.filter((t): t is string => typeof t === "string") : [];
    const session = store.insert(body.agent_id, title, tags);
    res.setHeader("Location", `/v1/sessions/${session.id}`);
    // The timestamp as proto JSON writes it, so the answer is a valid Session in JSON.
    answer(res, 201, { ...session, created_at: new Date(session.created_at).toISOString() });
  });
});

function answer(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text) }).end(text);
}

server.listen(port, "127.0.0.1", () => {
  process.stdout.write(`listening on http://127.0.0.1:${(server.address() as AddressInfo).port}\n`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)).closeAllConnections());
