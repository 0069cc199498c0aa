import * as net from "node:net";
import { probe, startTarget } from "./memory-target.js";

/**
 * Large list pages: SESSIONS sessions of SESSION_KB KiB each, then
 * 1. one `GET /v1/sessions?page_size=1000` read to the end (status, bytes, time);
 * 2. one Connect ListSessions of the same;
 * 3. CLIENTS HTTP/1.1 clients that ask for it and never read, held for HOLD_S seconds.
 * Prints the server's peak RSS after each step.
 *   node --import tsx bench/attacks/large-pages.ts          (ATTACK_TREE=<checkout> for another tree)
 */
const SESSIONS = Number(process.env.SESSIONS ?? 300);
const SESSION_KB = Number(process.env.SESSION_KB ?? 600);
const CLIENTS = Number(process.env.CLIENTS ?? 12);
const HOLD_S = Number(process.env.HOLD_S ?? 8);

const target = await startTarget({ sessions: SESSIONS, sessionBytes: SESSION_KB * 1024 });
console.log(`${SESSIONS} sessions of ${SESSION_KB} KiB; server up, RSS ${JSON.stringify(target.rss())}`);
try {
  let start = performance.now();
  const rest = await fetch(`${target.url}/v1/sessions?page_size=1000`);
  const restBody = await rest.text();
  const restJson = rest.status === 200 ? (JSON.parse(restBody) as { sessions: unknown[]; next_page_token: string }) : undefined;
  console.log(
    `REST page_size=1000: ${rest.status}, ${(restBody.length / 1e6).toFixed(1)} MB, ` +
      `${restJson ? `${restJson.sessions.length} sessions, token ${restJson.next_page_token ? "yes" : "no"}` : restBody.slice(0, 200)}, ` +
      `${Math.round(performance.now() - start)} ms; peak RSS ${target.rss().peakMb} MB`,
  );
  start = performance.now();
  const connect = await fetch(`${target.url}/sessions.v1.SessionService/ListSessions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ pageSize: 1000 }),
  });
  const connectBody = await connect.text();
  console.log(
    `Connect ListSessions pageSize=1000: ${connect.status}, ${(connectBody.length / 1e6).toFixed(1)} MB` +
      `${connect.status === 200 ? "" : ` ${connectBody.slice(0, 200)}`}, ${Math.round(performance.now() - start)} ms; peak RSS ${target.rss().peakMb} MB`,
  );

  const sockets: net.Socket[] = [];
  for (let i = 0; i < CLIENTS; i++) {
    const socket = net.connect(target.port, "127.0.0.1");
    socket.on("error", () => {});
    socket.pause();
    socket.write(`GET /v1/sessions?page_size=1000 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    sockets.push(socket);
  }
  for (let s = 1; s <= HOLD_S; s++) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    if (s % 2 === 0 || s === HOLD_S) console.log(`${CLIENTS} non-reading clients, ${s} s: RSS ${JSON.stringify(target.rss())}; /healthz ${await probe(target.url)}`);
  }
  for (const socket of sockets) socket.destroy();
} finally {
  console.log(`final peak RSS ${target.rss().peakMb} MB`);
  await target.close();
}
