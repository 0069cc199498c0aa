import { getOption, ScalarType, type DescEnum, type DescField, type DescMessage } from "@bufbuild/protobuf";
import { FieldBehavior, field_behavior } from "../../gen/google/api/field_behavior_pb.js";
import type { ProtoComments } from "./proto-comments.js";

/** A JSON Schema (2020-12, as OpenAPI 3.1 uses it), as plain JSON. */
export type JsonSchema = { [keyword: string]: unknown };

/**
 * Which JSON a schema describes. The server writes one canonical proto3 JSON and reads a
 * wider one, so the two get different schemas:
 * - `response`: what REST writes (protobuf-es `toJson` with proto field names): 64-bit
 *   integers as decimal strings, enums by name, NaN and ±Infinity as strings;
 * - `request`: what a body may hold (`fromJson`): integers as numbers or decimal strings,
 *   enums by name or number, `null` for any field (its default), proto or lowerCamelCase
 *   field names, Timestamps with any offset, base64 standard or URL-safe;
 * - `parameter`: a path or query parameter's value, which the transcoder turns into the
 *   same JSON (request forms without `null`; FieldMask paths in either case).
 */
export type JsonForm = "response" | "request" | "parameter";

/** How REST writes messages: with `alwaysEmitImplicit`, every field without presence is in every answer. */
export interface WriteOptions {
  readonly alwaysEmitImplicit: boolean;
}

const COMPONENT_PREFIX = "#/components/schemas/";
/** Component name suffixes: a hyphen cannot occur in a proto name, so none clashes with a message. */
const INPUT_SUFFIX = "-Input";
const PATCH_SUFFIX = "-Patch";
const IMPLICIT_PRESENCE = 2;
const LEGACY_REQUIRED = 3;

/** Said of a FieldMask wherever one appears: the transcoder converts proto names only in URLs. */
const FIELD_MASK_NOTE =
  "Comma-separated field paths: lowerCamelCase in a JSON body (`displayName`); a query parameter takes the proto names (`display_name`) too.";

/**
 * JSON Schemas of messages and enums in the proto3 JSON that REST speaks, each in the
 * form it takes where it appears (JsonForm). Messages and enums become components named by
 * their full proto names, added the first time they are used: `sessions.v1.Session` as the
 * server writes it, `sessions.v1.Session-Input` as a request body may hold it, and
 * `sessions.v1.Session-Patch` as the body of a PATCH, which sends only the fields it
 * changes. Well-known types with a JSON form of their own (Timestamp a string, Struct an
 * object, wrappers their value) are inline.
 *
 * In a response form `required` lists the fields every answer carries (those without
 * presence, when the server writes them always); in a request form, the fields marked
 * `(google.api.field_behavior) = REQUIRED` (by either name), none in a Patch form.
 * OUTPUT_ONLY fields are `readOnly`. Request objects stay open although the server refuses
 * unknown fields: validators (Prism) drop `readOnly` properties from request schemas, so a
 * closed object would refuse an OUTPUT_ONLY field (the `id` of a resource sent back as
 * read) that the server takes.
 */
export class MessageSchemas {
  private readonly schemas = new Map<string, JsonSchema>();

  constructor(
    private readonly comments: ProtoComments,
    private readonly writeOptions: WriteOptions,
  ) {}

  /** A message's JSON in a form: a reference to its component, or a well-known type's schema inline. */
  message(desc: DescMessage, form: JsonForm): JsonSchema {
    const wellKnown = wellKnownSchema(desc, form);
    if (wellKnown) return wellKnown;
    const request = form !== "response";
    return this.component(desc.typeName + (request ? INPUT_SUFFIX : ""), () =>
      this.object(desc, desc.fields, request ? "request" : "response"),
    );
  }

  /** A message as the body of a PATCH reads it: the request form with nothing required. */
  partialMessage(desc: DescMessage): JsonSchema {
    return (
      wellKnownSchema(desc, "request") ??
      this.component(desc.typeName + PATCH_SUFFIX, () => this.object(desc, desc.fields, "request", { partial: true }))
    );
  }

  /** An enum's JSON: its value names in a response; a name or a number in a request. */
  enum(desc: DescEnum, form: JsonForm): JsonSchema {
    const names = desc.values.map((v) => v.name);
    if (form === "response") {
      return this.component(desc.typeName, () => ({ type: "string", enum: names, description: this.describeEnum(desc, false) }));
    }
    return this.component(desc.typeName + INPUT_SUFFIX, () => ({
      anyOf: [
        { type: "string", enum: names },
        { type: "integer", enum: desc.values.map((v) => v.number) },
      ],
      description: joinText(this.describeEnum(desc, true), "Given by name or by number."),
    }));
  }

  /** The schema of a field's whole value (the array of a repeated field, the object of a map), without its description. */
  value(field: DescField, form: JsonForm): JsonSchema {
    const item = (kind: "scalar" | "enum" | "message"): JsonSchema =>
      kind === "scalar"
        ? scalarSchema(field.scalar!, form)
        : kind === "enum"
          ? this.enum(field.enum!, form)
          : this.message(field.message!, form);
    switch (field.fieldKind) {
      case "scalar":
      case "enum":
      case "message":
        return item(field.fieldKind);
      case "list":
        return { type: "array", items: item(field.listKind) };
      case "map":
        return { type: "object", additionalProperties: item(field.mapKind) };
    }
  }

  /**
   * A field as a property or parameter: its value's schema with the field's description.
   * In a request body a field may also be `null`, which proto3 JSON reads as its default.
   */
  field(field: DescField, form: JsonForm, options: { partial?: boolean; partialValue?: boolean } = {}): JsonSchema {
    const value = options.partialValue && field.fieldKind === "message" ? this.partialMessage(field.message) : this.value(field, form);
    const schema: JsonSchema = form === "request" && field.message?.typeName !== "google.protobuf.Value" ? nullable(value) : { ...value };
    const description = joinText(this.describeField(field, options.partial ? "patch" : form), value.description as string | undefined);
    if (description !== undefined) schema.description = description;
    const behaviors = behaviorsOf(field);
    if (behaviors.includes(FieldBehavior.OUTPUT_ONLY)) schema.readOnly = true;
    if (field.deprecated) schema.deprecated = true;
    return schema;
  }

  /**
   * An object of some of a message's fields (all of them for its component), keyed by proto
   * field name. In the request form, `partial` leaves every field optional (a PATCH body)
   * and `partialField` names a field holding a PATCH's resource.
   */
  object(
    desc: DescMessage,
    fields: readonly DescField[],
    form: "response" | "request",
    options: { partial?: boolean; partialField?: DescField } = {},
  ): JsonSchema {
    const schema: JsonSchema = { type: "object" };
    const description = this.comments.of(desc);
    if (description !== undefined) schema.description = description;
    const properties: Record<string, JsonSchema> = {};
    for (const field of fields) {
      properties[field.name] = this.field(field, form, { partial: options.partial, partialValue: field === options.partialField });
    }
    schema.properties = properties;
    if (form === "response") {
      const required = fields.filter((f) => this.alwaysWritten(f)).map((f) => f.name);
      if (required.length > 0) schema.required = required;
      return schema;
    }
    if (options.partial) return schema;
    const required = fields.filter((f) => this.isRequired(f));
    // A field read by either name is required as one or the other.
    const byOneName = required.filter((f) => f.jsonName === f.name).map((f) => f.name);
    const eitherName = required
      .filter((f) => f.jsonName !== f.name)
      .map((f) => ({ anyOf: [{ required: [f.name] }, { required: [f.jsonName] }] }));
    if (byOneName.length > 0) schema.required = byOneName;
    if (eitherName.length === 1) Object.assign(schema, eitherName[0]);
    else if (eitherName.length > 1) schema.allOf = eitherName;
    return schema;
  }

  /** Whether a request must set the field: `(google.api.field_behavior) = REQUIRED`. */
  isRequired(field: DescField): boolean {
    return behaviorsOf(field).includes(FieldBehavior.REQUIRED);
  }

  /** Whether every answer carries the field, set or not. */
  alwaysWritten(field: DescField): boolean {
    return field.presence === LEGACY_REQUIRED || (this.writeOptions.alwaysEmitImplicit && field.presence === IMPLICIT_PRESENCE);
  }

  /**
   * The field's comment, with what its field_behavior adds: in a request (not a PATCH body,
   * where nothing is required), under which names a REQUIRED field that has two may go.
   */
  describeField(field: DescField, form: JsonForm | "patch"): string | undefined {
    const behaviors = behaviorsOf(field);
    const notes: string[] = [];
    if (form === "request" && behaviors.includes(FieldBehavior.REQUIRED) && field.jsonName !== field.name) {
      notes.push(`Required, as \`${field.name}\` or \`${field.jsonName}\`.`);
    }
    if (behaviors.includes(FieldBehavior.IMMUTABLE)) notes.push("Set when created; it cannot be changed.");
    return joinText(this.comments.of(field), notes.join(" ") || undefined);
  }

  /** Every component used so far, by name. */
  components(): Record<string, JsonSchema> {
    return Object.fromEntries([...this.schemas].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }

  private component(name: string, build: () => JsonSchema): JsonSchema {
    if (!this.schemas.has(name)) {
      // Taken before the fields are described, so that a message containing itself ends.
      this.schemas.set(name, {});
      this.schemas.set(name, build());
    }
    return { $ref: COMPONENT_PREFIX + name };
  }

  /** The enum's comment and a list of its values, with their numbers where a request may use them. */
  private describeEnum(desc: DescEnum, withNumbers: boolean): string | undefined {
    const values = desc.values.map((v) => {
      const value = withNumbers ? `\`${v.name}\` (${v.number})` : `\`${v.name}\``;
      const comment = this.comments.of(v);
      return comment === undefined ? `- ${value}` : `- ${value}: ${comment.replace(/\n/g, " ")}`;
    });
    return joinText(this.comments.of(desc), values.join("\n"));
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

/** The schema, or `null`. */
function nullable(schema: JsonSchema): JsonSchema {
  const { description: _, ...rest } = schema;
  if (typeof rest.type === "string") return { ...rest, type: [rest.type, "null"] };
  if (Array.isArray(rest.type)) return { ...rest, type: [...rest.type, "null"] };
  return { anyOf: [rest, { type: "null" }] };
}

const INT_PATTERN = "^-?[0-9]+$";
const UINT_PATTERN = "^[0-9]+$";
/** What proto3 JSON reads as a float besides a number: a decimal string, NaN or ±Infinity. */
const FLOAT_TEXT_PATTERN = "^(NaN|-?Infinity|-?([0-9]+\\.?[0-9]*|\\.[0-9]+)([eE][+-]?[0-9]+)?)$";

/**
 * proto3 JSON of each scalar. Written: 64-bit integers as decimal strings (JSON numbers
 * cannot carry them exactly), 32-bit ones as numbers, NaN and ±Infinity as strings. Read:
 * any integer as a number or a decimal string, floats as numbers or strings, bytes in
 * standard or URL-safe base64 with or without padding. `pattern` constrains only strings.
 */
function scalarSchema(type: ScalarType, form: JsonForm): JsonSchema {
  const request = form !== "response";
  switch (type) {
    case ScalarType.STRING:
      return { type: "string" };
    case ScalarType.BOOL:
      return { type: "boolean" };
    case ScalarType.BYTES:
      return request
        ? { type: "string", contentEncoding: "base64", pattern: "^[A-Za-z0-9+/_-]*={0,2}$" }
        : { type: "string", format: "byte" };
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return request ? { type: ["integer", "string"], format: "int32", pattern: INT_PATTERN } : { type: "integer", format: "int32" };
    case ScalarType.UINT32:
    case ScalarType.FIXED32: {
      const range = { minimum: 0, maximum: 4294967295 };
      return request
        ? { type: ["integer", "string"], format: "uint32", ...range, pattern: UINT_PATTERN }
        : { type: "integer", format: "uint32", ...range };
    }
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      // The example stands in for the long random digits a UI would make up from the pattern.
      return { type: request ? ["integer", "string"] : "string", format: "int64", pattern: INT_PATTERN, examples: ["0"] };
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return {
        type: request ? ["integer", "string"] : "string",
        format: "uint64",
        ...(request ? { minimum: 0 } : {}),
        pattern: UINT_PATTERN,
        examples: ["0"],
      };
    case ScalarType.FLOAT:
      return { type: ["number", "string"], format: "float", pattern: request ? FLOAT_TEXT_PATTERN : "^(NaN|-?Infinity)$" };
    case ScalarType.DOUBLE:
      return { type: ["number", "string"], format: "double", pattern: request ? FLOAT_TEXT_PATTERN : "^(NaN|-?Infinity)$" };
  }
}

const WRAPPERS = new Set([
  "google.protobuf.DoubleValue", "google.protobuf.FloatValue", "google.protobuf.Int64Value",
  "google.protobuf.UInt64Value", "google.protobuf.Int32Value", "google.protobuf.UInt32Value",
  "google.protobuf.BoolValue", "google.protobuf.StringValue", "google.protobuf.BytesValue",
]);

/** RFC 3339 as protobuf-es reads it: `T` and `Z` in upper case, up to 9 fractional digits, any offset. */
const TIMESTAMP_READ_PATTERN = "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$";

/** The JSON form of a well-known type that has a special one (proto3 JSON mapping), else undefined. */
function wellKnownSchema(desc: DescMessage, form: JsonForm): JsonSchema | undefined {
  switch (desc.typeName) {
    case "google.protobuf.Timestamp":
      // Written in UTC (`Z`), with 0, 3, 6 or 9 fractional digits.
      return form === "response"
        ? { type: "string", format: "date-time" }
        : { type: "string", format: "date-time", pattern: TIMESTAMP_READ_PATTERN };
    case "google.protobuf.Duration":
      return { type: "string", pattern: "^-?[0-9]+(\\.[0-9]{1,9})?s$", description: "Seconds with an `s` suffix, e.g. `1.5s`." };
    case "google.protobuf.FieldMask":
      // A body's paths must be lowerCamelCase; the transcoder converts a URL's.
      return form === "request"
        ? { type: "string", pattern: "^[^_]*$", description: FIELD_MASK_NOTE }
        : { type: "string", description: FIELD_MASK_NOTE };
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
  if (WRAPPERS.has(desc.typeName)) return scalarSchema((desc.fields[0] as DescField & { fieldKind: "scalar" }).scalar, form);
  return undefined;
}
