import { mergeFromJson, type JsonValue, type Message } from "@bufbuild/protobuf";
import type { HttpBinding } from "./http-rule.js";
import { FieldPathError, jsonFromText, nestJson, resolveFieldPath, textSettable, type FieldChain } from "./field-path.js";
import type { PathBindings } from "./path-template.js";
import { restErrors } from "./errors.js";
import { impliedUpdateMask, type UpdateMaskFiller } from "./implied-update-mask.js";

/**
 * Fills a request message from the three places REST puts fields, in http.proto's order
 * of precedence: the body, then query parameters, then path variables (which win).
 * Everything goes through `mergeFromJson`, so URL text is checked exactly as JSON is.
 * With `body: "*"` query parameters are still accepted (http.proto leaves none to set,
 * but `?update_mask=…` beside a body is what clients expect); they merge after the body.
 */
export class RequestFields {
  /** Query parameter name → resolved chain, or the reason the name is refused. */
  private readonly queryChains = new Map<string, FieldChain | string>();
  private readonly updateMaskFiller: UpdateMaskFiller | undefined;

  constructor(private readonly binding: HttpBinding) {
    this.updateMaskFiller = impliedUpdateMask(binding);
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

  /** Sets each captured path variable; a value of the wrong type is invalid_argument. */
  mergePath(message: Message, values: PathBindings): void {
    for (const [path, text] of values) {
      const chain = this.binding.pathFields.get(path)!;
      try {
        mergeFromJson(this.binding.method.input, message, nestJson(chain, jsonFromText(chain[chain.length - 1]!, text)));
      } catch (err) {
        throw restErrors.invalidPath(`${path}: ${reasonOf(err)}`);
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

function reasonOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
