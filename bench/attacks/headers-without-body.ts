import * as http2 from "node:http2";
import { probe, startTarget } from "./memory-target.js";

/**
 * On a keyed server, CONNECTIONS HTTP/2 connections each open STREAMS streams without a
 * key that send headers (a Connect CreateSession, or a REST POST /v1/sessions with
 * REST=1) and never a body. Prints how many were answered 401 within HOLD_S seconds, and
 * the server's RSS.
 *   node --import tsx bench/attacks/headers-without-body.ts   (ATTACK_TREE=<checkout> for another tree)
 */
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 10);
const STREAMS = Number(process.env.STREAMS ?? 1000);
const HOLD_S = Number(process.env.HOLD_S ?? 6);
const path = process.env.REST === "1" ? "/v1/sessions" : "/sessions.v1.SessionService/CreateSession";

const target = await startTarget({ sessions: 0, sessionBytes: 0, keyed: true });
const baseline = target.rss().nowMb;
console.log(`keyed server up, RSS ${baseline} MB; ${CONNECTIONS} x ${STREAMS} streams to ${path} without a key or a body`);
const statuses = new Map<string, number>();
const sessions: http2.ClientHttp2Session[] = [];
try {
  for (let c = 0; c < CONNECTIONS; c++) {
    const session = http2.connect(target.url);
    session.on("error", () => {});
    sessions.push(session);
    for (let i = 0; i < STREAMS; i++) {
      const stream = session.request({ ":method": "POST", ":path": path, "content-type": "application/json" }, { endStream: false });
      stream.on("error", () => {});
      stream.on("response", (headers) => {
        const status = String(headers[":status"]);
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
      });
      stream.resume();
    }
  }
  for (let s = 1; s <= HOLD_S; s++) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    if (s % 2 === 0 || s === HOLD_S) {
      const rss = target.rss();
      console.log(
        `${s} s: answers ${JSON.stringify(Object.fromEntries(statuses))}; RSS ${rss.nowMb} MB (+${rss.nowMb - baseline}), ` +
          `peak ${rss.peakMb} MB; /healthz ${await probe(target.url)}`,
      );
    }
  }
} finally {
  for (const session of sessions) session.destroy();
  await target.close();
}
