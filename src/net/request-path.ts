import type { NodeRequest } from "../rest/node-types.js";

/** The request's path without its query string, as routing by path needs it. */
export function pathOf(req: NodeRequest): string {
  const url = req.url ?? "/";
  const queryStart = url.indexOf("?");
  return queryStart === -1 ? url : url.slice(0, queryStart);
}
