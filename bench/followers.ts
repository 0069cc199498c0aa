import { setMaxListeners } from "node:events";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { SessionService } from "../gen/sessions/v1/session_service_pb.js";

/**
 * Open StreamSessionEvents streams, as dashboards and log shippers keep them, spread over
 * a few HTTP/2 connections (one connect-node gRPC transport each, 100 streams on each: the
 * server's per-connection cap). Two shapes:
 * - "per-session": one follower per session, N sessions (a fleet of runs, each watched);
 * - "one-session": N followers of one session (one run on a shared screen).
 * Each stream is confirmed open by its first event (the session's CREATED, sequence 1,
 * from after_sequence 0) before this returns. The followed sessions are created here, so
 * creates under load change none of them: what is measured is the cost of holding the
 * streams, not of feeding them.
 */
export type FollowerShape = "per-session" | "one-session";

export interface Followers {
  readonly shape: FollowerShape;
  readonly open: number;
  readonly sessions: number;
  readonly connections: number;
  /** Events received beyond the first of each stream (0 unless a followed session changed). */
  readonly extraEvents: () => number;
  close(): Promise<void>;
}

export async function openFollowers(
  baseUrl: string,
  agentId: string,
  count: number,
  shape: FollowerShape,
  streamsPerConnection = 100,
): Promise<Followers> {
  const connections = Math.ceil(count / streamsPerConnection);
  const clients = Array.from({ length: connections }, () => createClient(SessionService, createGrpcTransport({ baseUrl })));
  const abort = new AbortController();
  setMaxListeners(0, abort.signal); // one listener per stream, by design
  let extra = 0;
  const ended: Promise<void>[] = [];
  const firsts: Promise<void>[] = [];
  let shared: string | undefined;

  for (let i = 0; i < count; i++) {
    const client = clients[i % connections]!;
    const sessionId =
      shape === "one-session" && shared !== undefined
        ? shared
        : (await client.createSession({ agentId, title: `followed ${i}` })).id;
    shared ??= sessionId;
    let opened!: () => void;
    let failed!: (error: unknown) => void;
    firsts.push(new Promise<void>((resolve, reject) => ((opened = resolve), (failed = reject))));
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
    shape,
    open: count,
    sessions: shape === "one-session" ? 1 : count,
    connections,
    extraEvents: () => extra,
    close: async () => {
      abort.abort();
      await Promise.all(ended);
    },
  };
}
