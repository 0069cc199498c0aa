import { mergeFromJson, type JsonValue, type Message } from "@bufbuild/protobuf";
import { reflect, type ReflectMessage } from "@bufbuild/protobuf/reflect";
import type { HttpBinding } from "./http-rule.js";
import { FieldPathError, jsonFromText, nestJson, resolveFieldPath, textSettable, type FieldChain } from "./field-path.js";
import type { PathBindings } from "./path-template.js";
import { restErrors } from "./errors.js";
import { impliedUpdateMask, type UpdateMaskFiller } from "./implied-update-mask.js";
import { misplacedBodyKey, type MisplacedBodyKey } from "./misplaced-body-key.js";

/**
 * Fills a request message from the three places REST puts fields, in http.proto's order:
 * the body, then query parameters, then path variables. A path variable's field may also
 * come in the body (a client sends back the resource it read), but only with the path's
 * value: a different one is invalid_argument rather than silently overwritten.
 * Everything goes through `mergeFromJson`, so URL text is checked exactly as JSON is.
 * With `body: "*"` query parameters are still accepted (http.proto leaves none to set,
 * but `?update_mask=…` beside a body is what clients expect); they merge after the body.
 */
export class RequestFields {
  /** Query parameter name → resolved chain, or the reason the name is refused. */
  private readonly queryChains = new Map<string, FieldChain | string>();
  private readonly updateMaskFiller: UpdateMaskFiller | undefined;
  private readonly misplacedBodyKey: MisplacedBodyKey | undefined;

  constructor(private readonly binding: HttpBinding) {
    this.updateMaskFiller = impliedUpdateMask(binding);
    const queryFields = binding.method.input.fields.filter((f) => typeof queryParameterChain(binding, f.name) !== "string");
    this.misplacedBodyKey = misplacedBodyKey(binding, queryFields);
  }

  /** For a PATCH with an empty update_mask: the fields present in the body (see implied-update-mask.ts). */
  fillImpliedUpdateMask(message: Message, body: JsonValue | undefined): void {
    this.updateMaskFiller?.(message, body);
  }

  /** Merges the parsed JSON body as the binding's `body` says. Throws invalid_argument. */
  mergeBody(message: Message, body: JsonValue | undefined): void {
    const mapping = this.binding.body;
    if (mapping.kind === "none" || body === undefined) return;
    if (mapping.kind === "whole" && (body === null || typeof body !== "object" || Array.isArray(body))) {
      throw restErrors.invalidBody(`expected a JSON object, got ${body === null ? "null" : Array.isArray(body) ? "an array" : typeof body}`);
    }
    const misplaced = this.misplacedBodyKey?.(body);
    if (misplaced !== undefined) throw restErrors.invalidBody(misplaced);
    const json = mapping.kind === "whole" ? body : { [mapping.field.name]: body };
    try {
      mergeFromJson(this.binding.method.input, message, json);
    } catch (err) {
      throw restErrors.invalidBody(reasonOf(err));
    }
  }

  /** Merges every query parameter; a name that is unknown, repeated wrongly or bound elsewhere is invalid_argument. */
  mergeQuery(message: Message, params: URLSearchParams): void {
    // Grouped by field rather than by name: `min_pages=1&minPages=2` gives one singular
    // field twice, and must be refused like `min_pages=1&min_pages=2`, not merged twice.
    const byField = new Map<string, { name: string; chain: FieldChain; texts: string[] }>();
    for (const [name, text] of params) {
      const chain = this.queryChain(name);
      if (typeof chain === "string") throw restErrors.invalidQuery(name, chain);
      const key = chain.map((f) => f.name).join(".");
      const group = byField.get(key);
      if (group) group.texts.push(text);
      else byField.set(key, { name, chain, texts: [text] });
    }
    for (const { name, chain, texts } of byField.values()) {
      const leaf = chain[chain.length - 1]!;
      if (leaf.fieldKind !== "list" && texts.length > 1) {
        throw restErrors.invalidQuery(name, "given more than once but the field is not repeated");
      }
      try {
        const values = texts.map((text) => jsonFromText(leaf, text));
        const json = nestJson(chain, leaf.fieldKind === "list" ? values : values[0]!);
        mergeFromJson(this.binding.method.input, message, json);
      } catch (err) {
        throw restErrors.invalidQuery(name, reasonOf(err));
      }
    }
  }

  /**
   * Sets the event_stream option's resume_field from a Last-Event-ID header (after the
   * query, so that it wins); nothing without the header or the field. Invalid_argument
   * naming the header for a value the field cannot take.
   */
  mergeLastEventId(message: Message, text: string | undefined): void {
    const field = this.binding.eventStream?.resume;
    if (field === undefined || text === undefined) return;
    try {
      mergeFromJson(this.binding.method.input, message, nestJson([field], jsonFromText(field, text)));
    } catch (err) {
      throw restErrors.invalidHeader("Last-Event-ID", reasonOf(err));
    }
  }

  /**
   * Sets each captured path variable. Invalid_argument for a value of the wrong type, and
   * for a field the body already set to another value (`{"id": "b"}` on `/things/a`).
   */
  mergePath(message: Message, values: PathBindings): void {
    const input = this.binding.method.input;
    for (const [path, text] of values) {
      const chain = this.binding.pathFields.get(path)!;
      const fromBody = valueAt(reflect(input, message), chain);
      try {
        mergeFromJson(input, message, nestJson(chain, jsonFromText(chain[chain.length - 1]!, text)));
      } catch (err) {
        throw restErrors.invalidPath(`${path}: ${reasonOf(err)}`);
      }
      if (fromBody !== undefined && !sameValue(fromBody, valueAt(reflect(input, message), chain))) {
        throw restErrors.invalidBody(
          `"${path}" is ${shown(fromBody)} but the path says ${JSON.stringify(text)}: leave it out of the body or send the same value`,
        );
      }
    }
  }

  private queryChain(name: string): FieldChain | string {
    let chain = this.queryChains.get(name);
    if (chain === undefined) {
      chain = queryParameterChain(this.binding, name);
      // Unknown names are not cached: a client could otherwise grow the map without bound.
      if (typeof chain !== "string") this.queryChains.set(name, chain);
    }
    return chain;
  }
}

/**
 * The field chain a query parameter name sets on a binding's request, or the reason the
 * transcoder refuses the name: unknown, bound to the body or the path, or not settable
 * from text (a map, a repeated message).
 */
export function queryParameterChain(binding: HttpBinding, name: string): FieldChain | string {
  const { body, method, pathFields } = binding;
  let chain: FieldChain;
  try {
    chain = resolveFieldPath(method.input, name.split("."), true);
  } catch (err) {
    if (err instanceof FieldPathError) return `unknown field: ${err.message}`;
    throw err;
  }
  if (body.kind === "field" && chain[0] === body.field) return `"${body.field.name}" comes from the body`;
  const protoPath = chain.map((f) => f.name).join(".");
  for (const bound of pathFields.keys()) {
    if (bound === protoPath || bound.startsWith(protoPath + ".") || protoPath.startsWith(bound + ".")) {
      return `"${bound}" comes from the path`;
    }
  }
  if (!textSettable(chain, true)) return "this field cannot be set from a query parameter";
  return chain;
}

/** The value at the end of a chain, or undefined when any field along it is unset. */
function valueAt(message: ReflectMessage, chain: FieldChain): unknown {
  let current = message;
  for (const [i, field] of chain.entries()) {
    if (!current.isSet(field)) return undefined;
    const value: unknown = current.get(field);
    if (i === chain.length - 1) return value;
    current = value as ReflectMessage;
  }
  return undefined;
}

/** Path variables are singular scalars and enums: `===` compares all but bytes. */
function sameValue(a: unknown, b: unknown): boolean {
  if (a instanceof Uint8Array && b instanceof Uint8Array) return Buffer.from(a).equals(b);
  return a === b;
}

function shown(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (value instanceof Uint8Array) return JSON.stringify(Buffer.from(value).toString("base64"));
  return String(value);
}

function reasonOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
