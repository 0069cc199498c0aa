import type { DescService } from "@bufbuild/protobuf";
import type { HttpBinding } from "./http-rule.js";
import { HttpRuleError, httpBindingsOf } from "./http-rule.js";
import { matchPathTemplate, type PathBindings, type PathTemplate } from "./path-template.js";

export type RouteMatch =
  | { readonly kind: "found"; readonly binding: HttpBinding; readonly pathValues: PathBindings }
  | { readonly kind: "method-not-allowed"; readonly allow: readonly string[] }
  | { readonly kind: "not-found" };

/**
 * The routes of every google.api.http binding of the services: what the REST transcoder
 * serves, and what the OpenAPI document describes. Throws HttpRuleError as RouteTable does.
 */
export function routeTableOf(services: readonly DescService[]): RouteTable {
  return new RouteTable(services.flatMap((service) => httpBindingsOf(service)));
}

/**
 * Every HTTP binding, ordered most specific first: custom verbs before plain paths, then
 * literal segments before `*` before `**`, compared left to right. A request takes the
 * first binding whose template and method match; a path that matches only with other
 * methods is 405 with those methods.
 */
export class RouteTable {
  private readonly bindings: readonly HttpBinding[];

  /** Throws HttpRuleError when two bindings have the same method and the same path shape. */
  constructor(bindings: readonly HttpBinding[]) {
    const seen = new Map<string, HttpBinding>();
    for (const binding of bindings) {
      const key = `${binding.httpMethod} ${shapeOf(binding.template)}`;
      const other = seen.get(key);
      if (other) {
        throw new HttpRuleError(
          binding.method,
          `binding ${binding.httpMethod} ${binding.template.source} conflicts with ` +
            `${other.method.parent.typeName}.${other.method.name} (${other.template.source})`,
        );
      }
      seen.set(key, binding);
    }
    this.bindings = [...bindings].sort((a, b) => compareSpecificity(a.template, b.template));
  }

  /** All bindings, most specific first. */
  all(): readonly HttpBinding[] {
    return this.bindings;
  }

  /**
   * Finds the binding for a request. `path` is the URL path as sent, still
   * percent-encoded; throws PathDecodeError when a captured value is badly encoded.
   */
  match(httpMethod: string, path: string): RouteMatch {
    if (!path.startsWith("/")) return { kind: "not-found" };
    const parts = path.slice(1).split("/");
    const last = parts[parts.length - 1]!;
    const allow = new Set<string>();
    for (const binding of this.bindings) {
      const { verb } = binding.template;
      let candidate = parts;
      if (verb !== undefined) {
        const suffix = ":" + verb;
        if (!last.endsWith(suffix) || last.length === suffix.length) continue;
        candidate = [...parts.slice(0, -1), last.slice(0, -suffix.length)];
      }
      if (binding.httpMethod !== httpMethod) {
        if (!allow.has(binding.httpMethod) && matchesShape(binding.template, candidate)) allow.add(binding.httpMethod);
        continue;
      }
      const pathValues = matchPathTemplate(binding.template, candidate);
      if (pathValues) return { kind: "found", binding, pathValues };
    }
    if (allow.size > 0) return { kind: "method-not-allowed", allow: [...allow].sort() };
    return { kind: "not-found" };
  }
}

/** Matching without decoding: a bad escape in a path of another method is not its error. */
function matchesShape(template: PathTemplate, parts: readonly string[]): boolean {
  try {
    return matchPathTemplate(template, parts) !== undefined;
  } catch {
    return true;
  }
}

/**
 * A template with its variables' names left out (`/v1/sessions/*:start`): two templates of
 * one shape match the same paths.
 */
export function shapeOf(template: PathTemplate): string {
  const segments = template.segments.map((s) => (s.kind === "literal" ? s.value : s.kind === "wildcard" ? "*" : "**"));
  return "/" + segments.join("/") + (template.verb !== undefined ? ":" + template.verb : "");
}

const RANK = { literal: 0, wildcard: 1, "deep-wildcard": 2 } as const;

function compareSpecificity(a: PathTemplate, b: PathTemplate): number {
  if ((a.verb === undefined) !== (b.verb === undefined)) return a.verb === undefined ? 1 : -1;
  const n = Math.min(a.segments.length, b.segments.length);
  for (let i = 0; i < n; i++) {
    const diff = RANK[a.segments[i]!.kind] - RANK[b.segments[i]!.kind];
    if (diff !== 0) return diff;
  }
  return b.segments.length - a.segments.length;
}
