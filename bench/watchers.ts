import { setMaxListeners } from "node:events";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { SessionService } from "../gen/sessions/v1/session_service_pb.js";

/**
 * Open WatchSession streams, as executors or dashboards would keep them: one per session,
 * spread over a few HTTP/2 connections (one connect-node gRPC transport each), each stream
 * confirmed open by its first message (the session's current state) before this returns.
 * The watched sessions are created here, so creates under load change none of them: what
 * is measured is the cost of holding the streams, not of feeding them.
 */
export interface Watchers {
  readonly open: number;
  readonly connections: number;
  /** Messages received beyond the first of each stream (0 unless a watched session changed). */
  readonly extraMessages: () => number;
  close(): Promise<void>;
}

export async function openWatchers(baseUrl: string, agentId: string, count: number, streamsPerConnection = 100): Promise<Watchers> {
  const connections = Math.ceil(count / streamsPerConnection);
  const clients = Array.from({ length: connections }, () =>
    createClient(SessionService, createGrpcTransport({ baseUrl })),
  );
  const abort = new AbortController();
  setMaxListeners(0, abort.signal); // one listener per stream, by design
  let extra = 0;
  const ended: Promise<void>[] = [];
  const firsts: Promise<void>[] = [];

  for (let i = 0; i < count; i++) {
    const client = clients[i % connections]!;
    const session = await client.createSession({ agentId, title: `watched ${i}` });
    let opened!: () => void;
    let failed!: (error: unknown) => void;
    firsts.push(new Promise<void>((resolve, reject) => ((opened = resolve), (failed = reject))));
    ended.push(
      (async () => {
        let first = true;
        try {
          for await (const _ of client.watchSession({ id: session.id }, { signal: abort.signal })) {
            if (first) opened();
            else extra++;
            first = false;
          }
          if (first) failed(new Error(`watch of ${session.id} ended before its first message`));
        } catch (error) {
          if (first) failed(error);
          // After close(): the abort ends every stream with canceled, as intended.
        }
      })(),
    );
  }
  await Promise.all(firsts);
  return {
    open: count,
    connections,
    extraMessages: () => extra,
    close: async () => {
      abort.abort();
      await Promise.all(ended);
    },
  };
}
