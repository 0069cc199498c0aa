import type { DescField, DescMessage, JsonObject, JsonValue } from "@bufbuild/protobuf";
import type { HttpBinding } from "./http-rule.js";

/**
 * Why a body is shaped like the whole request when the binding takes one field of it, or
 * undefined when it is not. Never throws.
 */
export type MisplacedBodyKey = (body: JsonValue) => string | undefined;

/**
 * The check for a binding whose body is one message field (`body: "book"`): a client that
 * sends the request instead (`{"book": {…}, "update_mask": "title"}`) is told that the body
 * is the field's message itself and which fields go in the query string, rather than only
 * that the message has no such key. Only the first top-level key that the body's message
 * lacks is looked at, and only when it is a field of the request (the body field, or one
 * of `queryFields`); any other unknown key is left to the JSON parser's message. Undefined
 * for other bindings, and for a well-known type as the body (a Struct takes any key).
 */
export function misplacedBodyKey(binding: HttpBinding, queryFields: readonly DescField[]): MisplacedBodyKey | undefined {
  const { body, method } = binding;
  if (body.kind !== "field" || body.field.fieldKind !== "message") return undefined;
  const resource = body.field.message;
  if (resource.typeName.startsWith("google.protobuf.")) return undefined;
  const bodyField = body.field;
  const names = queryFields.map((f) => f.name);
  const inQuery = names.length === 0 ? "" : `; ${listed(names)} ${names.length === 1 ? "goes" : "go"} in the query string`;

  return (json) => {
    if (!isObject(json)) return undefined;
    for (const key of Object.keys(json)) {
      if (fieldNamed(resource, key)) continue;
      const field = fieldNamed(method.input, key);
      if (field === bodyField) {
        return `unknown field "${key}": the body is the ${resource.typeName} itself, not wrapped in "${key}"${inQuery}`;
      }
      if (field && queryFields.includes(field)) {
        return `unknown field "${key}": the body is the ${resource.typeName}; ${field.name} goes in the query string`;
      }
      return undefined;
    }
    return undefined;
  };
}

function fieldNamed(message: DescMessage, key: string): DescField | undefined {
  return message.fields.find((f) => f.name === key || f.jsonName === key);
}

function listed(names: readonly string[]): string {
  return names.length === 1 ? names[0]! : `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]}`;
}

function isObject(value: JsonValue): value is JsonObject {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}
