import { HealthCheckResponse_ServingStatus as ServingStatus } from "../../gen/health/v1/health_pb.js";

export { ServingStatus };

type Listener = (status: ServingStatus) => void;

/**
 * The serving status of the whole server (the empty name) and of each service it serves,
 * as the gRPC health protocol reports them: SERVING from the start, NOT_SERVING for good
 * once the server begins to shut down. A name not given at construction is unknown.
 */
export class HealthStatus {
  private readonly statuses: Map<string, ServingStatus>;
  private readonly listeners = new Map<string, Set<Listener>>();
  private stopping = false;

  /** `services`: fully-qualified names, e.g. "sessions.v1.SessionService". */
  constructor(services: readonly string[]) {
    this.statuses = new Map(["", ...services].map((name) => [name, ServingStatus.SERVING]));
  }

  /** The status of a service ("" for the whole server); undefined when it is not served. */
  get(service: string): ServingStatus | undefined {
    return this.statuses.get(service);
  }

  /** Every service's status, the whole server's ("") included. */
  all(): ReadonlyMap<string, ServingStatus> {
    return this.statuses;
  }

  /** Whether shutdown() was called. */
  get shuttingDown(): boolean {
    return this.stopping;
  }

  /**
   * Marks every service NOT_SERVING, telling subscribers synchronously, before anything
   * else of the stop happens: watchers then see NOT_SERVING before their streams end.
   */
  shutdown(): void {
    if (this.stopping) return;
    this.stopping = true;
    for (const name of this.statuses.keys()) {
      this.statuses.set(name, ServingStatus.NOT_SERVING);
      for (const listener of this.listeners.get(name) ?? []) listener(ServingStatus.NOT_SERVING);
    }
  }

  /** Calls `listener` with each new status of `service` until the returned function is called. */
  subscribe(service: string, listener: Listener): () => void {
    let set = this.listeners.get(service);
    if (!set) this.listeners.set(service, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.listeners.get(service) === set) this.listeners.delete(service);
    };
  }
}
