import type { ConnectNodeAdapterOptions } from "@connectrpc/connect-node";

/**
 * A Node request handler for both the HTTP/1.1 server and the HTTP/2 compatibility API:
 * the shape of connect-node's `fallback`, which is how REST plugs in beside Connect.
 */
export type NodeHandler = NonNullable<ConnectNodeAdapterOptions["fallback"]>;
export type NodeRequest = Parameters<NodeHandler>[0];
export type NodeResponse = Parameters<NodeHandler>[1];
