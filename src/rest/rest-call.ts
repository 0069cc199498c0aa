import { createContextKey } from "@connectrpc/connect";

/**
 * What the transcoder tells a method it calls about the HTTP side of the call, for
 * request logs: the method itself cannot see the route or the status REST answers with.
 */
export interface RestCall {
  /** The binding's path template as written in the proto, e.g. `/v1/sessions/{id}:start`. */
  readonly pathTemplate: string;
  /** The HTTP status the transcoder answers the call with, given the method's error (undefined: it succeeded). */
  httpStatus(error: unknown): number;
}

/** Set in `context.values` of every call the transcoder makes; undefined on the RPC protocols. */
export const restCallKey = createContextKey<RestCall | undefined>(undefined, { description: "REST call" });
