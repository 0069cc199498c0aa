/**
 * Checks, on whichever Node runs it, the two facts the edge deadlines rest on, without the
 * store (so it runs on Node 24 without a better-sqlite3 build for it):
 * 1. an http.Server fed through emit("connection") never applies its own headersTimeout;
 * 2. EdgeDeadlines closes each kind of slow connection at its deadline.
 * Run: node --import tsx bench/attacks/node-deadlines-probe.ts
 */
import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import { createCleartextListener } from "../../src/net/cleartext-listener.js";
import { EdgeDeadlines } from "../../src/net/edge-deadlines.js";

const T = { handshakeMs: 500, headersMs: 700, h2SetupMs: 500, bodyMs: 700, keepAliveMs: 400, h2IdleMs: 500 };
const PREFACE = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve((server.address() as net.AddressInfo).port)));
}

/** Connects, writes `first`, then one byte of `trickle` every 100 ms; resolves with ms to close (or "open" at `waitMs`) and what came back. */
function attack(port: number, first: string, trickle: string, waitMs: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    const start = performance.now();
    let got = "";
    let i = 0;
    const timer = setInterval(() => i < trickle.length && !socket.destroyed && socket.write(trickle[i++]!), 100);
    socket.on("data", (d) => (got += d.toString("latin1")));
    socket.on("error", () => {});
    socket.once("connect", () => socket.write(first));
    const done = (what: string) => {
      clearInterval(timer);
      socket.destroy();
      resolve(`${what}; got ${JSON.stringify(got.split("\r\n")[0] ?? "")}`);
    };
    socket.once("close", () => done(`closed after ${Math.round(performance.now() - start)} ms`));
    setTimeout(() => done(`still open at ${waitMs} ms`), waitMs);
  });
}

const handler = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => {
  req.resume();
  req.on("end", () => res.end("ok"));
};

// 1. Node alone: headersTimeout set, socket handed over by emit("connection").
const bare = http.createServer({ headersTimeout: 500, requestTimeout: 500 }, handler);
const bareFront = net.createServer((socket) => bare.emit("connection", socket));
const barePort = await listen(bareFront);
console.log(`node ${process.version}`);
console.log(`bare http.Server (headersTimeout 500 ms) fed by emit, sent only "G": ${await attack(barePort, "G", "", 3000)}`);
bareFront.close();

// 2. The server's pipeline.
const deadlines = new EdgeDeadlines(T);
const h1 = http.createServer(deadlines.handler(handler as never));
const h2 = http2.createServer(deadlines.handler(handler as never));
let newest: http2.ServerHttp2Session | undefined;
h2.on("session", (s) => (newest = s));
const front = createCleartextListener(h1, h2, T.handshakeMs, (socket, protocol) => {
  if (protocol === "h1") deadlines.h1Socket(socket);
  if (protocol === "h2" && newest) deadlines.h2Session(newest, socket);
});
const port = await listen(front);
const rows: Array<[string, Promise<string>]> = [
  ["preface trickled (sniff 500 ms)", attack(port, "P", PREFACE.slice(1), 3000)],
  ['only "G" (headers 700 ms)', attack(port, "G", "", 3000)],
  ["slowloris (headers 700 ms)", attack(port, "GET / HTTP/1.1\r\nHost: x\r\n", "X-A: " + "a".repeat(100), 3000)],
  ["body trickled (body 700 ms)", attack(port, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n", "a".repeat(100), 3000)],
  ["keep-alive idle (400 ms)", attack(port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "", 3000)],
  ["h2 preface only (setup 500 ms)", attack(port, PREFACE, "", 3000)],
  ["h2 preface + SETTINGS, idle (idle 500 ms)", attack(port, PREFACE + "\x00\x00\x00\x04\x00\x00\x00\x00\x00", "", 3000)],
];
for (const [name, result] of rows) console.log(`${name}: ${await result}`);

// HTTP/2 stream whose body never comes: reset with CANCEL (8).
const session = http2.connect(`http://127.0.0.1:${port}`);
session.on("error", () => {});
const stream = session.request({ ":method": "POST", ":path": "/" });
stream.on("error", () => {});
stream.write("x");
const started = performance.now();
await new Promise((resolve) => stream.once("close", resolve));
console.log(`h2 body never sent (body 700 ms): stream closed after ${Math.round(performance.now() - started)} ms, rstCode ${stream.rstCode}`);
session.destroy();
front.close();
process.exit(0);
