import type { DescMethod } from "@bufbuild/protobuf";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { StoreObserver, StoreRead } from "../store/store-observer.js";
import { processMetrics } from "./process-metrics.js";

/** Unary call latency, seconds: from half a millisecond (a cached read) to 5 s. */
export const RPC_DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
/** Group commits, seconds: an fsync here is ~0.2 ms median, a full batch of 256 ~10 ms. */
const WRITE_BATCH_DURATION_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];
/** Writes per group commit, up to GROUP_COMMIT_MAX_WRITES (256). */
const WRITE_BATCH_SIZE_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256];
/** SQLite reads, seconds: an indexed lookup takes tens of microseconds. */
const READ_DURATION_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1];

type CallLabel = "procedure" | "protocol" | "code";

/** The metrics of one procedure on one protocol, made once and reused by all its calls. */
export class CallMetrics {
  private readonly byCode = new Map<string, Counter.Internal>();

  constructor(
    private readonly requests: Counter<CallLabel>,
    /** `/sessions.v1.SessionService/CreateSession`, whatever the protocol. */
    readonly procedure: string,
    readonly protocol: string,
    /** Unary calls only: a stream's lifetime is no latency. */
    readonly duration: Histogram.Internal<"procedure" | "protocol">,
  ) {}

  /** Counts one call that ended with this code (`ok`, or a Connect code name). */
  count(code: string): void {
    let counter = this.byCode.get(code);
    if (!counter) {
      counter = this.requests.labels(this.procedure, this.protocol, code);
      this.byCode.set(code, counter);
    }
    counter.inc();
  }
}

/**
 * One server's metrics, in its own registry (tests run many servers in one process),
 * with the process's default metrics included. Label sets are made once per procedure
 * and protocol, so that a call costs a few increments.
 */
export class ServerMetrics {
  /** What GET /metrics serves: this server's metrics and the process's. */
  readonly registry: Registry;
  /** Unary calls being served. */
  readonly inFlight: Gauge;
  /** WatchSession streams open on the wire (see open-streams.ts). */
  readonly watchStreamsOpen: Gauge;
  /** HTTP/2 connections closed because their client reset too many streams (rapid reset). */
  readonly h2ResetLimited: Counter;
  /** Storage timings, to give the store (see Store.observe). */
  readonly store: StoreObserver;
  /** Connections closed on arrival because --max-connections were open. */
  readonly connectionsRefused: Counter;
  /** Connections (or HTTP/2 streams, for the body) closed because a deadline passed, by deadline. */
  readonly deadlinesExpired: Counter<"deadline">;
  private readonly requests: Counter<CallLabel>;
  private readonly durations: Histogram<"procedure" | "protocol">;
  private readonly calls = new Map<DescMethod, Map<string, CallMetrics>>();

  constructor() {
    const own = new Registry();
    const registers = [own];
    this.requests = new Counter({
      name: "sessions_rpc_requests_total",
      help: "Calls that reached a method, by procedure, protocol (grpc, grpc-web, connect, rest) and code (ok or a Connect code name); streams count when they end.",
      labelNames: ["procedure", "protocol", "code"],
      registers,
    });
    this.durations = new Histogram({
      name: "sessions_rpc_request_duration_seconds",
      help: "Time to answer a unary call, from the method's start to its answer, by procedure and protocol.",
      labelNames: ["procedure", "protocol"],
      buckets: RPC_DURATION_BUCKETS,
      registers,
    });
    this.inFlight = new Gauge({
      name: "sessions_rpc_in_flight_requests",
      help: "Unary calls being served (streams are counted by sessions_watch_streams_open).",
      registers,
    });
    this.h2ResetLimited = new Counter({
      name: "sessions_h2_reset_limited_connections_total",
      help: "HTTP/2 connections closed with GOAWAY (ENHANCE_YOUR_CALM) because their client reset more streams than --h2-reset-burst allows.",
      registers,
    });
    this.watchStreamsOpen = new Gauge({
      name: "sessions_watch_streams_open",
      help: "WatchSession streams open, from their start until they close on the wire (also while one waits to write to a client that does not read).",
      registers,
    });
    this.connectionsRefused = new Counter({
      name: "sessions_connections_refused_total",
      help: "Connections closed at once on arrival because --max-connections connections were open.",
      registers,
    });
    this.deadlinesExpired = new Counter({
      name: "sessions_connection_deadlines_expired_total",
      help: "Connections closed, or HTTP/2 streams reset (body), because a deadline passed: handshake, headers, h2_setup, body or h2_idle.",
      labelNames: ["deadline"],
      registers,
    });
    const batchDuration = new Histogram({
      name: "sessions_sqlite_write_batch_duration_seconds",
      help: "Time of each SQLite group commit, from BEGIN to COMMIT (fsync included) or to the failure that rolled it back.",
      buckets: WRITE_BATCH_DURATION_BUCKETS,
      registers,
    });
    const batchSize = new Histogram({
      name: "sessions_sqlite_write_batch_size",
      help: "Writes sharing each SQLite group commit.",
      buckets: WRITE_BATCH_SIZE_BUCKETS,
      registers,
    });
    const readDuration = new Histogram({
      name: "sessions_sqlite_read_duration_seconds",
      help: "Time of each SQLite read, by operation.",
      labelNames: ["operation"],
      buckets: READ_DURATION_BUCKETS,
      registers,
    });
    const reads = new Map<StoreRead, Histogram.Internal<"operation">>();
    this.store = {
      writeBatch(writes, seconds) {
        batchDuration.observe(seconds);
        batchSize.observe(writes);
      },
      read(operation, seconds) {
        let child = reads.get(operation);
        if (!child) {
          child = readDuration.labels(operation);
          reads.set(operation, child);
        }
        child.observe(seconds);
      },
    };
    this.registry = Registry.merge([own, processMetrics()]);
  }

  /** The metrics of calls of `method` over `protocol` (Connect's protocolName, or "rest"). */
  call(method: DescMethod, protocol: string): CallMetrics {
    let byProtocol = this.calls.get(method);
    if (!byProtocol) {
      byProtocol = new Map();
      this.calls.set(method, byProtocol);
    }
    let metrics = byProtocol.get(protocol);
    if (!metrics) {
      const procedure = procedureOf(method);
      metrics = new CallMetrics(this.requests, procedure, protocol, this.durations.labels(procedure, protocol));
      byProtocol.set(protocol, metrics);
    }
    return metrics;
  }
}

/** The procedure as its RPC path names it, `/sessions.v1.SessionService/CreateSession`, whatever the protocol. */
export function procedureOf(method: DescMethod): string {
  return `/${method.parent.typeName}/${method.name}`;
}
