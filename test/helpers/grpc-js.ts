import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";

type ClientConstructor = new (address: string, credentials: grpc.ChannelCredentials) => grpc.Client;

const definition = loadSync("sessions/v1/session_service.proto", {
  includeDirs: [
    fileURLToPath(new URL("../../proto", import.meta.url)),
    fileURLToPath(new URL("../../node_modules/google-proto-files", import.meta.url)),
  ],
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
});

/**
 * sessions.v1.SessionService as a third-party gRPC user builds its client: @grpc/grpc-js
 * with proto-loader reading our .proto at run time (proto field names, int64 and enums as
 * strings, defaults filled in), so none of our generated code encodes or decodes anything.
 */
export const GrpcJsSessionService = (grpc.loadPackageDefinition(definition) as unknown as {
  sessions: { v1: { SessionService: ClientConstructor } };
}).sessions.v1.SessionService;
