// Writes openapi/openapi.json, the committed copy of the OpenAPI document the server serves
// at /openapi.json, from the same generator and the services the server gives its REST
// transcoder. `npm run generate` runs it after buf (which writes the descriptor set it reads
// the comments from); test/openapi.test.ts checks that the server serves exactly this file.
import { mkdirSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { AgentService } from "../gen/sessions/v1/agent_service_pb.js";
import { SessionService } from "../gen/sessions/v1/session_service_pb.js";
import { sessionsApiDocument } from "../src/openapi/sessions-api.js";
import { openApiJson } from "../src/openapi/openapi-json.js";

const folder = fileURLToPath(new URL("../openapi/", import.meta.url));
mkdirSync(folder, { recursive: true });
writeFileSync(`${folder}openapi.json`, openApiJson(sessionsApiDocument([SessionService, AgentService])));
