import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { DescService } from "@bufbuild/protobuf";
import { routeTableOf } from "../rest/route-table.js";
import { openApiDocument, type DocumentOptions, type OpenApiDocument } from "./document.js";
import { ProtoComments } from "./proto-comments.js";

/**
 * The descriptor set `npm run generate` builds from proto/sessions with source info (buf
 * build), relative to the package root: where the comments come from.
 */
export const DESCRIPTOR_SET_PATH = "openapi/sessions.binpb";

const DESCRIPTION = `The REST JSON face of the Sessions API, generated from its protobuf descriptors and their \`google.api.http\` options: the ones the server's REST transcoder routes by. The same methods are served over gRPC, gRPC-Web and Connect on the same port.

- Responses use the proto field names and carry every field, including empty strings, zero numbers and empty lists; message fields that are not set (\`started_at\` before a session starts) are left out.
- 64-bit integers are JSON strings (\`"input_tokens": "0"\`); requests may send them as strings or numbers.
- Requests accept proto names and lowerCamelCase names (\`agent_id\` or \`agentId\`); an unknown field is a 400. A body needs \`Content-Type: application/json\`.
- Every error answers the JSON form of \`google.rpc.Status\`: \`{"code", "message", "details"}\`.
- A schema named for its message (\`sessions.v1.Session\`) is what the server writes; \`-Input\` is what a request may hold, \`-Patch\` the body of a PATCH, where nothing is required.`;

const OPTIONS: DocumentOptions = {
  info: { title: "Sessions API", version: "v1", description: DESCRIPTION },
  securitySchemes: {
    apiKey: {
      type: "http",
      scheme: "bearer",
      description:
        "An API key (`sk_…`), from `npm run keys -- create`. Until the database has held a key, the server runs in open mode " +
        "(on a loopback address) and needs none.",
    },
  },
  // `{}`: in open mode no key is needed.
  security: [{ apiKey: [] }, {}],
};

/**
 * The OpenAPI document of the REST routes of these services (the ones the server gives its
 * REST transcoder), with the proto comments as descriptions. Throws when the descriptor set
 * is missing (`npm run generate` writes it) or a route cannot be described.
 */
export function sessionsApiDocument(services: readonly DescService[]): OpenApiDocument {
  // Built once per process for a set of services: a test run starts hundreds of servers.
  const key = services.map((s) => s.typeName).sort().join(" ");
  let document = documents.get(key);
  if (!document) {
    comments ??= ProtoComments.fromDescriptorSet(readFileSync(join(packageRoot(), DESCRIPTOR_SET_PATH)));
    document = openApiDocument(routeTableOf(services), comments, OPTIONS);
    documents.set(key, document);
  }
  return document;
}

const documents = new Map<string, OpenApiDocument>();
let comments: ProtoComments | undefined;

/**
 * The folder of package.json above this module: src/openapi/ under tsx, dist/ in the
 * bundle that `npm start` runs, so a fixed relative path would fit only one of them.
 */
function packageRoot(): string {
  const start = dirname(fileURLToPath(import.meta.url));
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, "package.json"))) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json above ${start}: cannot find ${DESCRIPTOR_SET_PATH}`);
  }
}
