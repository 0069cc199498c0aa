import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { fileURLToPath } from "node:url";
import { AGENT_ID, floorArgs, openFloorStore, type FloorSession } from "./floor-store.js";

/**
 * The gRPC floor: a plain @grpc/grpc-js server loading our .proto with proto-loader (the
 * way most Node gRPC services are written), implementing only CreateSession with the same
 * durable work as the node:http floor. Every other method answers unimplemented.
 */

const { port, db } = floorArgs();
const store = openFloorStore(db);
const root = (path: string) => fileURLToPath(new URL(`../../${path}`, import.meta.url));

const definition = protoLoader.loadSync("sessions/v1/session_service.proto", {
  includeDirs: [root("proto"), root("node_modules/google-proto-files")],
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
});
type Constructor = grpc.ServiceClientConstructor;
const loaded = grpc.loadPackageDefinition(definition) as unknown as { sessions: { v1: { SessionService: Constructor } } };

interface CreateSessionRequest {
  agent_id: string;
  title: string;
  tags: string[];
}

function sessionMessage(s: FloorSession) {
  const time = { seconds: String(Math.floor(s.created_at / 1000)), nanos: (s.created_at % 1000) * 1e6 };
  return {
    id: s.id,
    org_id: s.org_id,
    agent_id: s.agent_id,
    title: s.title,
    tags: s.tags,
    status: "SESSION_STATUS_PENDING",
    usage: {},
    created_at: time,
    updated_at: time,
    etag: "session-v1",
  };
}

const server = new grpc.Server();
server.addService(loaded.sessions.v1.SessionService.service, {
  CreateSession(call: grpc.ServerUnaryCall<CreateSessionRequest, unknown>, callback: grpc.sendUnaryData<unknown>) {
    const { agent_id, title, tags } = call.request;
    if (!AGENT_ID.test(agent_id)) {
      callback({ code: grpc.status.INVALID_ARGUMENT, details: "invalid agent_id" });
      return;
    }
    callback(null, sessionMessage(store.insert(agent_id, title, tags)));
  },
});
server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, boundPort) => {
  if (err) throw err;
  process.stdout.write(`listening on http://127.0.0.1:${boundPort}\n`);
});
process.on("SIGTERM", () => server.tryShutdown(() => process.exit(0)));
