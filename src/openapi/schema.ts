import { getOption, ScalarType, type DescEnum, type DescField, type DescMessage } from "@bufbuild/protobuf";
import { FieldBehavior, field_behavior } from "../../gen/google/api/field_behavior_pb.js";
import type { ProtoComments } from "./proto-comments.js";

/** A JSON Schema (2020-12, as OpenAPI 3.1 uses it), as plain JSON. */
export type JsonSchema = { [keyword: string]: unknown };

const COMPONENT_PREFIX = "#/components/schemas/";

/** Said of a FieldMask wherever one appears: the transcoder converts proto names only in URLs. */
const FIELD_MASK_NOTE =
  "Comma-separated field paths: lowerCamelCase in a JSON body (`displayName`); a query parameter takes the proto names (`display_name`) too.";

/**
 * JSON Schemas of messages and enums in the proto3 JSON that REST speaks: proto field names
 * (what the server writes; it reads lowerCamelCase too), enums as their value names, 64-bit
 * integers as decimal strings, well-known types in their JSON forms (Timestamp an RFC 3339
 * string, FieldMask a string, Struct and Value free-form). Messages and enums become
 * components named by their full proto names, added the first time they are used.
 *
 * `required` lists the fields marked `(google.api.field_behavior) = REQUIRED`, except in
 * the messages of `partiallyUpdated` (the resources PATCH updates field by field, where a
 * client sends only what it changes); OUTPUT_ONLY fields are `readOnly`.
 */
export class MessageSchemas {
  private readonly schemas = new Map<string, JsonSchema>();

  constructor(
    private readonly comments: ProtoComments,
    private readonly partiallyUpdated: ReadonlySet<DescMessage> = new Set(),
  ) {}

  /** A message's JSON: a reference to its component, or a well-known type's schema inline. */
  message(desc: DescMessage): JsonSchema {
    const wellKnown = wellKnownSchema(desc);
    if (wellKnown) return wellKnown;
    if (!this.schemas.has(desc.typeName)) {
      // Taken before the fields are described, so that a message containing itself ends.
      this.schemas.set(desc.typeName, {});
      this.schemas.set(desc.typeName, this.object(desc, desc.fields));
    }
    return { $ref: COMPONENT_PREFIX + desc.typeName };
  }

  /** An enum's JSON: a reference to its component, a string with the value names. */
  enum(desc: DescEnum): JsonSchema {
    if (!this.schemas.has(desc.typeName)) {
      const values = desc.values.map((v) => {
        const comment = this.comments.of(v);
        return comment === undefined ? `- \`${v.name}\`` : `- \`${v.name}\`: ${comment.replace(/\n/g, " ")}`;
      });
      this.schemas.set(desc.typeName, {
        type: "string",
        enum: desc.values.map((v) => v.name),
        description: joinText(this.comments.of(desc), values.join("\n")),
      });
    }
    return { $ref: COMPONENT_PREFIX + desc.typeName };
  }

  /** The schema of a field's whole value (the array of a repeated field, the object of a map), without its description. */
  value(field: DescField): JsonSchema {
    switch (field.fieldKind) {
      case "scalar":
        return scalarSchema(field.scalar);
      case "enum":
        return this.enum(field.enum);
      case "message":
        return this.message(field.message);
      case "list":
        return {
          type: "array",
          items: field.listKind === "scalar" ? scalarSchema(field.scalar) : field.listKind === "enum" ? this.enum(field.enum) : this.message(field.message),
        };
      case "map":
        return {
          type: "object",
          additionalProperties:
            field.mapKind === "scalar" ? scalarSchema(field.scalar) : field.mapKind === "enum" ? this.enum(field.enum) : this.message(field.message),
        };
    }
  }

  /** A field as a property or parameter: its value's schema with the field's description. */
  field(field: DescField): JsonSchema {
    const value = this.value(field);
    const schema: JsonSchema = { ...value };
    const description = joinText(this.describeField(field), value.description as string | undefined);
    if (description !== undefined) schema.description = description;
    const behaviors = behaviorsOf(field);
    if (behaviors.includes(FieldBehavior.OUTPUT_ONLY)) schema.readOnly = true;
    if (field.deprecated) schema.deprecated = true;
    return schema;
  }

  /** An object of some of a message's fields (all of them for its component), keyed by proto field name. */
  object(desc: DescMessage, fields: readonly DescField[]): JsonSchema {
    const schema: JsonSchema = { type: "object" };
    const description = this.comments.of(desc);
    if (description !== undefined) schema.description = description;
    const properties: Record<string, JsonSchema> = {};
    for (const field of fields) properties[field.name] = this.field(field);
    schema.properties = properties;
    const required = fields.filter((f) => this.isRequired(f)).map((f) => f.name);
    if (required.length > 0) schema.required = required;
    return schema;
  }

  /** Whether the field is listed in `required` where it appears. */
  isRequired(field: DescField): boolean {
    return behaviorsOf(field).includes(FieldBehavior.REQUIRED) && !this.partiallyUpdated.has(field.parent);
  }

  /** The field's comment, with what its field_behavior adds. */
  describeField(field: DescField): string | undefined {
    const behaviors = behaviorsOf(field);
    const notes: string[] = [];
    if (behaviors.includes(FieldBehavior.REQUIRED) && this.partiallyUpdated.has(field.parent)) {
      notes.push("Required, except in an update, which sends only the fields it changes.");
    }
    if (behaviors.includes(FieldBehavior.IMMUTABLE)) notes.push("Set when created; it cannot be changed.");
    return joinText(this.comments.of(field), notes.join(" ") || undefined);
  }

  /** Every component used so far, by name. */
  components(): Record<string, JsonSchema> {
    return Object.fromEntries([...this.schemas].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }
}

function behaviorsOf(field: DescField): readonly FieldBehavior[] {
  return getOption(field, field_behavior);
}

/** Paragraphs joined with a blank line; undefined when there are none. */
function joinText(...parts: (string | undefined)[]): string | undefined {
  const present = parts.filter((p): p is string => p !== undefined && p !== "");
  return present.length > 0 ? present.join("\n\n") : undefined;
}

/** proto3 JSON of each scalar: 64-bit integers are strings, since JSON numbers cannot carry them exactly. */
function scalarSchema(type: ScalarType): JsonSchema {
  switch (type) {
    case ScalarType.STRING:
      return { type: "string" };
    case ScalarType.BOOL:
      return { type: "boolean" };
    case ScalarType.BYTES:
      return { type: "string", format: "byte" };
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return { type: "integer", format: "int32" };
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return { type: "integer", format: "uint32", minimum: 0, maximum: 4294967295 };
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      // The example stands in for the long random digits a UI would make up from the pattern.
      return { type: "string", format: "int64", pattern: "^-?[0-9]+$", examples: ["0"] };
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return { type: "string", format: "uint64", pattern: "^[0-9]+$", examples: ["0"] };
    case ScalarType.FLOAT:
      return { type: "number", format: "float" };
    case ScalarType.DOUBLE:
      return { type: "number", format: "double" };
  }
}

const WRAPPERS = new Set([
  "google.protobuf.DoubleValue", "google.protobuf.FloatValue", "google.protobuf.Int64Value",
  "google.protobuf.UInt64Value", "google.protobuf.Int32Value", "google.protobuf.UInt32Value",
  "google.protobuf.BoolValue", "google.protobuf.StringValue", "google.protobuf.BytesValue",
]);

/** The JSON form of a well-known type that has a special one (proto3 JSON mapping), else undefined. */
function wellKnownSchema(desc: DescMessage): JsonSchema | undefined {
  switch (desc.typeName) {
    case "google.protobuf.Timestamp":
      return { type: "string", format: "date-time" };
    case "google.protobuf.Duration":
      return { type: "string", pattern: "^-?[0-9]+(\\.[0-9]{1,9})?s$", description: "Seconds with an `s` suffix, e.g. `1.5s`." };
    case "google.protobuf.FieldMask":
      return { type: "string", description: FIELD_MASK_NOTE };
    case "google.protobuf.Struct":
      return { type: "object", additionalProperties: true };
    case "google.protobuf.Value":
      return {};
    case "google.protobuf.ListValue":
      return { type: "array" };
    case "google.protobuf.Empty":
      return { type: "object", maxProperties: 0 };
    case "google.protobuf.Any":
      return { type: "object", required: ["@type"], properties: { "@type": { type: "string" } }, additionalProperties: true };
  }
  if (WRAPPERS.has(desc.typeName)) return scalarSchema((desc.fields[0] as DescField & { fieldKind: "scalar" }).scalar);
  return undefined;
}
