import type { HandlerContext } from "@connectrpc/connect";

/** Until API keys exist, every caller belongs to this organisation. */
export const DEFAULT_ORG_ID = "org_00000000000000000000000000000001";

/** The organisation a request acts for. */
export function callerOrgId(_context: HandlerContext): string {
  return DEFAULT_ORG_ID;
}
