import { ScalarType, type Message } from "@bufbuild/protobuf";
import type { HttpBinding } from "./http-rule.js";
import { expandPathTemplate, type TemplateSegment } from "./path-template.js";
import { resolveFieldPath, FieldPathError, type FieldChain } from "./field-path.js";

/** Computes the Location of a resource a binding created, or undefined when it has none. */
export type LocationOf = (response: Message) => string | undefined;

/**
 * Finds the bindings that create a resource, in the AIP-133 shape: a POST without a custom
 * verb on a collection, whose sibling GET — the same path plus one more segment captured
 * by a variable, also without a verb — returns the same message. Such a POST answers 201
 * with a Location built from that GET's template filled with the response's fields.
 * Nothing here knows of any particular resource.
 */
export function createdLocations(bindings: readonly HttpBinding[]): Map<HttpBinding, LocationOf> {
  const result = new Map<HttpBinding, LocationOf>();
  for (const [post, { get, chains }] of createdResources(bindings)) {
    result.set(post, (response) =>
      expandPathTemplate(get.template, (fieldPath) => stringAt(response, chains.get(fieldPath.join("."))!)),
    );
  }
  return result;
}

/** The bindings that answer 201 (see createdLocations), each with the GET its Location names. */
export function createdResourceReaders(bindings: readonly HttpBinding[]): Map<HttpBinding, HttpBinding> {
  return new Map([...createdResources(bindings)].map(([post, { get }]) => [post, get]));
}

function createdResources(bindings: readonly HttpBinding[]): Map<HttpBinding, { get: HttpBinding; chains: Map<string, FieldChain> }> {
  const result = new Map<HttpBinding, { get: HttpBinding; chains: Map<string, FieldChain> }>();
  for (const post of bindings) {
    if (post.httpMethod !== "POST" || post.template.verb !== undefined || post.body.kind === "none") continue;
    const output = post.method.output;
    for (const get of bindings) {
      if (get.httpMethod !== "GET" || get.template.verb !== undefined || get.method.output !== output) continue;
      if (!isItemOf(get.template.segments, post.template.segments)) continue;
      const chains = responseChains(get);
      if (!chains) continue;
      result.set(post, { get, chains });
      break;
    }
  }
  return result;
}

/** Whether `item` is `collection` plus one trailing `*` segment (variables flattened). */
function isItemOf(item: readonly TemplateSegment[], collection: readonly TemplateSegment[]): boolean {
  if (item.length !== collection.length + 1 || item[item.length - 1]!.kind !== "wildcard") return false;
  return collection.every((segment, i) => {
    const other = item[i]!;
    return segment.kind === other.kind && (segment.kind !== "literal" || other.kind === "literal" && segment.value === other.value);
  });
}

/** The GET's variables resolved on the response message; undefined unless all are strings. */
function responseChains(get: HttpBinding): Map<string, FieldChain> | undefined {
  const chains = new Map<string, FieldChain>();
  for (const variable of get.template.variables) {
    let chain: FieldChain;
    try {
      chain = resolveFieldPath(get.method.output, variable.fieldPath, false);
    } catch (err) {
      if (err instanceof FieldPathError) return undefined;
      throw err;
    }
    const leaf = chain[chain.length - 1]!;
    if (leaf.fieldKind !== "scalar" || leaf.scalar !== ScalarType.STRING) return undefined;
    chains.set(variable.fieldPath.join("."), chain);
  }
  return chains;
}

function stringAt(message: Message, chain: FieldChain): string | undefined {
  let value: unknown = message;
  for (const field of chain) {
    if (value === undefined) return undefined;
    value = (value as Record<string, unknown>)[field.localName];
  }
  return typeof value === "string" ? value : undefined;
}
