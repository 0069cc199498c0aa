import { setMaxListeners } from "node:events";
import * as http from "node:http";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { SessionService } from "../gen/sessions/v1/session_service_pb.js";

/**
 * Open StreamSessionEvents streams, as dashboards and log shippers keep them, over
 * - "grpc": a few HTTP/2 connections (one connect-node gRPC transport each, 100 streams on
 *   each: the server's per-connection cap), or
 * - "sse": `GET /v1/sessions/{id}/events:stream` with `Accept: text/event-stream`, one
 *   HTTP/1.1 connection each, as curl -N or a browser's EventSource follows.
 * Two shapes:
 * - "per-session": one follower per session, N sessions (a fleet of runs, each watched);
 * - "one-session": N followers of one session (one run on a shared screen).
 * Each stream is confirmed open by its first event (the session's CREATED, sequence 1,
 * from after_sequence 0) before this returns. The followed sessions are made by
 * createFollowedSessions beforehand (so the server's memory can be read in between), and
 * creates under load change none of them: what is measured is the cost of holding the
 * streams, not of feeding them.
 */
export type FollowerShape = "per-session" | "one-session";
export type FollowerProtocol = "grpc" | "sse";

export interface Followers {
  readonly over: FollowerProtocol;
  readonly shape: FollowerShape;
  readonly open: number;
  readonly sessions: number;
  readonly connections: number;
  /** Events received beyond the first of each stream (0 unless a followed session changed). */
  readonly extraEvents: () => number;
  close(): Promise<void>;
}

/** The sessions `count` followers of `shape` follow, one id per follower. */
export async function createFollowedSessions(baseUrl: string, agentId: string, count: number, shape: FollowerShape): Promise<string[]> {
  const client = createClient(SessionService, createGrpcTransport({ baseUrl }));
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    ids.push(shape === "one-session" && i > 0 ? ids[0]! : (await client.createSession({ agentId, title: `followed ${i}` })).id);
  }
  return ids;
}

export async function openFollowers(
  baseUrl: string,
  sessionIds: readonly string[],
  shape: FollowerShape,
  over: FollowerProtocol,
  streamsPerConnection = 100,
): Promise<Followers> {
  const count = sessionIds.length;
  const connections = over === "sse" ? count : Math.ceil(count / streamsPerConnection);
  const clients = over === "sse" ? [] : Array.from({ length: connections }, () => createClient(SessionService, createGrpcTransport({ baseUrl })));
  const abort = new AbortController();
  setMaxListeners(0, abort.signal); // one listener per stream, by design
  let extra = 0;
  const ended: Promise<void>[] = [];
  const firsts: Promise<void>[] = [];
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });

  for (let i = 0; i < count; i++) {
    const sessionId = sessionIds[i]!;
    let opened!: () => void;
    let failed!: (error: unknown) => void;
    firsts.push(new Promise<void>((resolve, reject) => ((opened = resolve), (failed = reject))));
    if (over === "sse") {
      ended.push(
        followOverSse(baseUrl, sessionId, agent, abort.signal, {
          opened, failed, extra: () => void extra++,
        }),
      );
      continue;
    }
    const client = clients[i % connections]!;
    ended.push(
      (async () => {
        let first = true;
        try {
          for await (const event of client.streamSessionEvents({ sessionId, afterSequence: 0n }, { signal: abort.signal })) {
            if (first && event.sequence !== 1n) failed(new Error(`the follower of ${sessionId} began at sequence ${event.sequence}, not 1`));
            else if (first) opened();
            else extra++;
            first = false;
          }
          if (first) failed(new Error(`the follower of ${sessionId} ended before its first event`));
        } catch (error) {
          if (first) failed(error);
          // After close(): the abort ends every stream with canceled, as intended.
        }
      })(),
    );
  }
  try {
    await Promise.all(firsts);
  } catch (error) {
    abort.abort();
    await Promise.all(ended);
    throw error;
  }
  return {
    over,
    shape,
    open: count,
    sessions: new Set(sessionIds).size,
    connections,
    extraEvents: () => extra,
    close: async () => {
      abort.abort();
      await Promise.all(ended);
    },
  };
}

/**
 * One SSE follower: opened by its first event (`id: 1`), every later `id:` line counted as
 * an extra event; ends quietly when `signal` aborts (the connection is destroyed).
 */
function followOverSse(
  baseUrl: string,
  sessionId: string,
  agent: http.Agent,
  signal: AbortSignal,
  on: { opened: () => void; failed: (error: unknown) => void; extra: () => void },
): Promise<void> {
  return new Promise<void>((resolve) => {
    let first = true;
    const fail = (error: unknown) => {
      if (first) on.failed(error);
      first = false;
      resolve();
    };
    const request = http.get(
      `${baseUrl}/v1/sessions/${sessionId}/events:stream`,
      { agent, headers: { accept: "text/event-stream" }, signal },
      (response) => {
        if (response.statusCode !== 200 || !String(response.headers["content-type"]).startsWith("text/event-stream")) {
          fail(new Error(`SSE follower of ${sessionId}: ${response.statusCode} ${response.headers["content-type"]}`));
          response.resume();
          return;
        }
        let buffered = "";
        response.setEncoding("utf8");
        response.on("data", (chunk: string) => {
          buffered += chunk;
          const lines = buffered.split("\n");
          buffered = lines.pop()!;
          for (const line of lines) {
            if (!line.startsWith("id:")) continue;
            if (first && line.slice(3).trim() !== "1") fail(new Error(`the SSE follower of ${sessionId} began at ${line}, not id: 1`));
            else if (first) (first = false), on.opened();
            else on.extra();
          }
        });
        response.on("end", () => fail(new Error(`the SSE follower of ${sessionId} ended before its first event`)));
        response.on("error", () => fail(new Error(`the SSE follower of ${sessionId} failed`)));
      },
    );
    request.on("error", (error) => fail(error)); // after close(): the abort, as intended
  });
}
