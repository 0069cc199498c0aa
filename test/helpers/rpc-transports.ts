import type { Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
  type Http2SessionManager,
} from "@connectrpc/connect-node";

/** One way a client reaches the RPC paths: a protocol, a codec and an HTTP version. */
export interface RpcTransportCase {
  readonly name: string;
  readonly protocol: "connect" | "grpc" | "grpc-web";
  readonly codec: "json" | "binary";
  readonly httpVersion: "1.1" | "2";
  /** `sessionManager` is used for HTTP/2 only; it lets a test close the connection itself. */
  readonly create: (baseUrl: string, sessionManager?: Http2SessionManager) => Transport;
}

/**
 * Every protocol and codec connect-node's handler serves, over the HTTP versions clients
 * use for it. gRPC needs HTTP/2 (trailers); gRPC-Web exists for HTTP/1.1.
 */
export const RPC_TRANSPORTS: readonly RpcTransportCase[] = [
  {
    name: "Connect JSON over HTTP/1.1",
    protocol: "connect",
    codec: "json",
    httpVersion: "1.1",
    create: (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "1.1" }),
  },
  {
    name: "Connect binary over HTTP/1.1",
    protocol: "connect",
    codec: "binary",
    httpVersion: "1.1",
    create: (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: true }),
  },
  {
    name: "gRPC-Web binary over HTTP/1.1",
    protocol: "grpc-web",
    codec: "binary",
    httpVersion: "1.1",
    create: (baseUrl) => createGrpcWebTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: true }),
  },
  {
    name: "gRPC-Web JSON over HTTP/1.1",
    protocol: "grpc-web",
    codec: "json",
    httpVersion: "1.1",
    create: (baseUrl) => createGrpcWebTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: false }),
  },
  {
    name: "gRPC binary over HTTP/2",
    protocol: "grpc",
    codec: "binary",
    httpVersion: "2",
    create: (baseUrl, sessionManager) => createGrpcTransport({ baseUrl, sessionManager, useBinaryFormat: true }),
  },
  {
    name: "gRPC JSON over HTTP/2",
    protocol: "grpc",
    codec: "json",
    httpVersion: "2",
    create: (baseUrl, sessionManager) => createGrpcTransport({ baseUrl, sessionManager, useBinaryFormat: false }),
  },
  {
    name: "Connect JSON over HTTP/2",
    protocol: "connect",
    codec: "json",
    httpVersion: "2",
    create: (baseUrl, sessionManager) => createConnectTransport({ baseUrl, httpVersion: "2", sessionManager }),
  },
  {
    name: "Connect binary over HTTP/2",
    protocol: "connect",
    codec: "binary",
    httpVersion: "2",
    create: (baseUrl, sessionManager) =>
      createConnectTransport({ baseUrl, httpVersion: "2", sessionManager, useBinaryFormat: true }),
  },
];
