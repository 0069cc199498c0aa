import { getOption, hasOption, ScalarType, type DescField, type DescMethod } from "@bufbuild/protobuf";
import { event_stream } from "../../gen/sessions/http/v1/event_stream_pb.js";

/**
 * The `(sessions.http.v1.event_stream)` option of a server-streaming method, checked
 * against its messages: which response field is each Server-Sent Event's `id:`, which its
 * `event:`, and which request field a `Last-Event-ID` header sets. Each is optional.
 */
export interface EventStreamFields {
  /** A singular integer or string field of the response. */
  readonly id: DescField | undefined;
  /** A singular enum or string field of the response (enum values by proto name). */
  readonly type: DescField | undefined;
  /** A singular integer or string field of the request. */
  readonly resume: DescField | undefined;
}

/**
 * Reads and checks the option of `method`; undefined when it has none. Throws
 * `problem(text)` for an option that names a missing or unsuitable field, or that sits on
 * a method that is not server-streaming, so that a bad annotation stops start-up.
 */
export function eventStreamFieldsOf(method: DescMethod, problem: (text: string) => Error): EventStreamFields | undefined {
  if (!hasOption(method, event_stream)) return undefined;
  if (method.methodKind !== "server_streaming") throw problem("is only for server-streaming methods");
  const rule = getOption(method, event_stream);
  const field = (name: string, of: "response" | "request", option: string, allowed: (f: DescField) => boolean, what: string) => {
    if (name === "") return undefined;
    const message = of === "response" ? method.output : method.input;
    const found = message.fields.find((f) => f.name === name);
    if (!found) throw problem(`${option} "${name}" is not a field of ${message.typeName}`);
    if (!allowed(found)) throw problem(`${option} "${name}" must be a singular ${what} field`);
    return found;
  };
  return {
    id: field(rule.idField, "response", "id_field", (f) => isScalar(f, INTEGER_OR_STRING), "integer or string"),
    type: field(rule.typeField, "response", "type_field", (f) => f.fieldKind === "enum" || isScalar(f, [ScalarType.STRING]), "enum or string"),
    resume: field(rule.resumeField, "request", "resume_field", (f) => isScalar(f, INTEGER_OR_STRING), "integer or string"),
  };
}

const INTEGER_OR_STRING: readonly ScalarType[] = [
  ScalarType.INT32, ScalarType.INT64, ScalarType.UINT32, ScalarType.UINT64, ScalarType.SINT32, ScalarType.SINT64,
  ScalarType.FIXED32, ScalarType.FIXED64, ScalarType.SFIXED32, ScalarType.SFIXED64, ScalarType.STRING,
];

function isScalar(field: DescField, types: readonly ScalarType[]): boolean {
  return field.fieldKind === "scalar" && types.includes(field.scalar);
}
