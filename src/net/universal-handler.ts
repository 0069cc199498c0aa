import type { UniversalHandler } from "@connectrpc/connect/protocol";

/**
 * `wrapped` serving in place of `handler`: the router and the Node adapter read a
 * handler's method, path, protocols and content types from the function itself.
 */
export function replacing(handler: UniversalHandler, wrapped: (...args: Parameters<UniversalHandler>) => ReturnType<UniversalHandler>): UniversalHandler {
  return Object.assign(wrapped, {
    protocolNames: handler.protocolNames,
    service: handler.service,
    method: handler.method,
    requestPath: handler.requestPath,
    allowedMethods: handler.allowedMethods,
    supportedContentType: handler.supportedContentType,
  });
}
