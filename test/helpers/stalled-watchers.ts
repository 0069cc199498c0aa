/**
 * `node --import tsx test/helpers/stalled-watchers.ts URL SESSION_ID COUNT`: opens COUNT
 * gRPC WatchSession streams of one session, 100 per HTTP/2 connection, and never reads
 * them; prints `open` once every stream has its response headers (the server sent the
 * current state), then holds them until its standard input closes. A process of its own,
 * so that what its streams cost to receive is not charged to the server under test, as
 * with a real client elsewhere.
 */
import * as http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { WatchSessionRequestSchema } from "../../gen/sessions/v1/session_service_pb.js";

const [url, id, countText] = process.argv.slice(2);
const count = Number(countText);
const message = toBinary(WatchSessionRequestSchema, create(WatchSessionRequestSchema, { id: id! }));
const envelope = Buffer.alloc(5 + message.length);
envelope.writeUInt32BE(message.length, 1);
envelope.set(message, 5);
const sessions: http2.ClientHttp2Session[] = [];
let responses = 0;
for (let i = 0; i < count; i++) {
  if (i % 100 === 0) {
    const session = http2.connect(url!);
    session.on("error", () => {});
    sessions.push(session);
  }
  const stream = sessions.at(-1)!.request({
    ":method": "POST",
    ":path": "/sessions.v1.SessionService/WatchSession",
    "content-type": "application/grpc+proto",
    te: "trailers",
  });
  stream.end(envelope);
  stream.pause();
  stream.on("error", () => {});
  stream.once("response", () => {
    if (++responses === count) process.stdout.write("open\n");
  });
}
process.stdin.resume();
process.stdin.on("end", () => {
  for (const session of sessions) session.destroy();
  process.exit(0);
});
