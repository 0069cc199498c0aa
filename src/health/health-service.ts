import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import {
  Health,
  HealthCheckResponseSchema,
  type HealthCheckRequest,
  type HealthCheckResponse,
} from "../../gen/health/v1/health_pb.js";
import { ServingStatus, type HealthStatus } from "./health-status.js";

/**
 * grpc.health.v1.Health over a HealthStatus. Check answers not_found for a service that
 * is not served; Watch answers SERVICE_UNKNOWN for one and keeps watching, as the
 * protocol asks. It needs no API key and touches no storage: a load balancer asks it
 * whether this process serves, not whether a caller may.
 */
export function createHealthService(health: HealthStatus): ServiceImpl<typeof Health> {
  return {
    check(request: HealthCheckRequest): HealthCheckResponse {
      const status = health.get(request.service);
      if (status === undefined) throw new ConnectError(`unknown service "${request.service}"`, Code.NotFound);
      return create(HealthCheckResponseSchema, { status });
    },
    list() {
      const statuses: Record<string, HealthCheckResponse> = {};
      for (const [service, status] of health.all()) statuses[service] = create(HealthCheckResponseSchema, { status });
      return { statuses };
    },
    watch(request: HealthCheckRequest, context: HandlerContext) {
      return watchHealth(health, request.service, context.signal);
    },
  };
}

/**
 * The current status, then each change, until `signal` aborts. The server stopping
 * marks every status NOT_SERVING before it aborts the signal, so a watcher always
 * receives NOT_SERVING; the stream then ends with the abort's reason when that is a
 * ConnectError (the stop's `unavailable`, a deadline), else quietly (the client left).
 * Only the latest status matters to a watcher, so a reader that falls behind skips
 * intermediate ones rather than queueing them.
 */
export async function* watchHealth(health: HealthStatus, service: string, signal: AbortSignal): AsyncGenerator<HealthCheckResponse> {
  let latest = health.get(service) ?? ServingStatus.SERVICE_UNKNOWN;
  let wake: (() => void) | undefined;
  const notify = () => {
    const resolve = wake;
    wake = undefined;
    resolve?.();
  };
  const unsubscribe = health.subscribe(service, (status) => {
    latest = status;
    notify();
  });
  signal.addEventListener("abort", notify);
  try {
    let sent: ServingStatus | undefined;
    for (;;) {
      // Read once the other side of an abort: shutdown() runs first, so `latest` is final.
      const stopped = signal.aborted;
      if (latest !== sent) {
        sent = latest;
        yield create(HealthCheckResponseSchema, { status: sent });
      }
      if (stopped) {
        if (signal.reason instanceof ConnectError) throw signal.reason;
        return;
      }
      await new Promise<void>((resolve) => (wake = resolve));
    }
  } finally {
    unsubscribe();
    signal.removeEventListener("abort", notify);
  }
}
