import { collectDefaultMetrics, Registry } from "prom-client";

let processRegistry: Registry | undefined;

/**
 * prom-client's default metrics (CPU, memory, heap, event-loop lag, GC, handles, open
 * files), collected once per process: each collection starts an event-loop monitor and a
 * GC observer that are never stopped, and tests start many servers in one process.
 * Every server's registry includes these same metrics.
 */
export function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}
