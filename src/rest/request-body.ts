import type { JsonValue } from "@bufbuild/protobuf";
import type { NodeRequest } from "./node-types.js";
import { restErrors } from "./errors.js";

/** JSON nesting allowed in a body; protobuf's binary decoder stops at the same depth. */
export const MAX_JSON_DEPTH = 100;

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Reads and parses a JSON request body. An empty body is undefined whatever its
 * Content-Type, so `curl -X POST` works on methods whose fields are all optional.
 * Throws: resource_exhausted past `limit` bytes (checked against Content-Length before
 * reading), 415 for a Content-Encoding other than identity (bodies are not decoded;
 * checked before reading), invalid_argument for a non-JSON Content-Type, bad UTF-8, bad JSON or nesting
 * deeper than MAX_JSON_DEPTH.
 */
export async function readJsonBody(req: NodeRequest, limit: number): Promise<JsonValue | undefined> {
  const declared = Number(req.headers["content-length"] ?? 0);
  if (declared > limit) throw restErrors.payloadTooLarge(limit);
  const encoding = req.headers["content-encoding"];
  if (encoding !== undefined && encoding.trim().toLowerCase() !== "identity") throw restErrors.unsupportedContentEncoding(encoding);
  const bytes = await readLimited(req, limit);
  if (bytes.length === 0) return undefined;
  const contentType = req.headers["content-type"] ?? "";
  if (!isJsonContentType(contentType)) throw restErrors.unsupportedMediaType(contentType);
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw restErrors.malformedJson("body is not valid UTF-8");
  }
  let json: JsonValue;
  try {
    json = JSON.parse(text) as JsonValue;
  } catch (err) {
    throw restErrors.malformedJson((err as Error).message);
  }
  if (bytes.length > MAX_JSON_DEPTH && depthExceeds(json, MAX_JSON_DEPTH)) {
    throw restErrors.malformedJson(`nesting is deeper than ${MAX_JSON_DEPTH} levels`);
  }
  return json;
}

/** application/json, with parameters such as charset=utf-8. */
export function isJsonContentType(contentType: string): boolean {
  const mediaType = contentType.split(";", 1)[0]!.trim().toLowerCase();
  return mediaType === "application/json";
}

function readLimited(req: NodeRequest, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        reject(restErrors.payloadTooLarge(limit));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const cleanup = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
  });
}

/** Iterative, so that a hostile body cannot overflow the stack while being measured. */
function depthExceeds(root: JsonValue, max: number): boolean {
  const stack: Array<[JsonValue, number]> = [[root, 0]];
  while (stack.length > 0) {
    const [value, depth] = stack.pop()!;
    if (value === null || typeof value !== "object") continue;
    if (depth >= max) return true;
    for (const child of Array.isArray(value) ? value : Object.values(value)) {
      if (child !== null && typeof child === "object") stack.push([child, depth + 1]);
    }
  }
  return false;
}
