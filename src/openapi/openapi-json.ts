import type { OpenApiDocument } from "./document.js";

/**
 * The document as the committed openapi/openapi.json holds it and /openapi.json serves it:
 * two-space indentation and a final newline, keys in the order the generator set them
 * (which depends only on the descriptors), so that regenerating is byte-for-byte stable.
 */
export function openApiJson(document: OpenApiDocument): string {
  return JSON.stringify(document, null, 2) + "\n";
}
