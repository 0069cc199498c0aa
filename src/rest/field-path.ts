import { ScalarType, type DescField, type DescMessage, type JsonObject, type JsonValue } from "@bufbuild/protobuf";

/**
 * Field paths (`book.name`) as path variables and query parameters name them, resolved
 * against message descriptors, and the conversion of their text values to proto3 JSON so
 * that `mergeFromJson` does all the type checking the JSON body gets too.
 */

/** A resolved field path: every field but the last is a singular message field. */
export type FieldChain = readonly DescField[];

export class FieldPathError extends Error {}

/**
 * Resolves a dotted path of field names. With `acceptJsonNames`, each part may be the proto
 * name or the lowerCamelCase JSON name (as query parameters may be); template variables
 * use proto names only.
 */
export function resolveFieldPath(message: DescMessage, path: readonly string[], acceptJsonNames: boolean): FieldChain {
  const chain: DescField[] = [];
  let current: DescMessage | undefined = message;
  for (const [i, part] of path.entries()) {
    if (!current) {
      throw new FieldPathError(`"${path.slice(0, i).join(".")}" is not a singular message field, so it has no field "${part}"`);
    }
    const field: DescField | undefined =
      current.fields.find((f) => f.name === part) ??
      (acceptJsonNames ? current.fields.find((f) => f.jsonName === part) : undefined);
    if (!field) throw new FieldPathError(`${current.typeName} has no field "${part}"`);
    chain.push(field);
    current = field.fieldKind === "message" && !isTextValuedMessage(field.message) ? field.message : undefined;
  }
  return chain;
}

/** Whether the last field of a chain can take its value from URL text. */
export function textSettable(chain: FieldChain, allowRepeated: boolean): boolean {
  const leaf = chain[chain.length - 1]!;
  switch (leaf.fieldKind) {
    case "scalar":
    case "enum":
      return true;
    case "message":
      return isTextValuedMessage(leaf.message);
    case "list":
      return allowRepeated && (leaf.listKind !== "message" || isTextValuedMessage(leaf.message));
    case "map":
      return false;
  }
}

const WRAPPERS = new Set([
  "google.protobuf.DoubleValue", "google.protobuf.FloatValue", "google.protobuf.Int64Value",
  "google.protobuf.UInt64Value", "google.protobuf.Int32Value", "google.protobuf.UInt32Value",
  "google.protobuf.BoolValue", "google.protobuf.StringValue", "google.protobuf.BytesValue",
]);
const TEXT_WKT = new Set(["google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask"]);

/** Well-known types whose JSON form is a single string or scalar. */
function isTextValuedMessage(message: DescMessage): boolean {
  return TEXT_WKT.has(message.typeName) || WRAPPERS.has(message.typeName);
}

/**
 * Converts one URL text value into the JSON that proto3 JSON parsing accepts for the leaf
 * field. Numbers stay strings (proto3 JSON accepts them so); enums take a name or a number;
 * FieldMask paths may be snake_case as in the proto. Throws FieldPathError for text that
 * cannot be JSON of the field's type.
 */
export function jsonFromText(leaf: DescField, text: string): JsonValue {
  switch (leaf.fieldKind) {
    case "scalar":
      return scalarFromText(leaf.scalar, text);
    case "enum":
      return enumFromText(text);
    case "message":
      return messageFromText(leaf.message, text);
    case "list":
      if (leaf.listKind === "scalar") return scalarFromText(leaf.scalar, text);
      if (leaf.listKind === "enum") return enumFromText(text);
      return messageFromText(leaf.message, text);
    case "map":
      throw new FieldPathError("a map field cannot be set from the URL");
  }
}

function scalarFromText(type: ScalarType, text: string): JsonValue {
  if (type !== ScalarType.BOOL) return text;
  if (text === "true") return true;
  if (text === "false") return false;
  throw new FieldPathError(`expected true or false, got "${text}"`);
}

function enumFromText(text: string): JsonValue {
  return /^-?\d+$/.test(text) ? Number(text) : text;
}

function messageFromText(message: DescMessage, text: string): JsonValue {
  if (message.typeName === "google.protobuf.FieldMask") {
    return text.split(",").map((path) => path.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase())).join(",");
  }
  if (WRAPPERS.has(message.typeName)) return jsonFromText(message.fields[0]!, text);
  if (TEXT_WKT.has(message.typeName)) return text;
  throw new FieldPathError(`${message.typeName} cannot be set from the URL`);
}

/** Builds `{a: {b: value}}` for the chain a.b, with proto field names as keys. */
export function nestJson(chain: FieldChain, value: JsonValue): JsonObject {
  let json: JsonValue = value;
  for (let i = chain.length - 1; i >= 0; i--) json = { [chain[i]!.name]: json };
  return json as JsonObject;
}
