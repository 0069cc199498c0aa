/**
 * Path templates of google.api.HttpRule (google/api/http.proto):
 *
 *     Template = "/" Segments [ Verb ] ;
 *     Segments = Segment { "/" Segment } ;
 *     Segment  = "*" | "**" | LITERAL | Variable ;
 *     Variable = "{" FieldPath [ "=" Segments ] "}" ;
 *     FieldPath = IDENT { "." IDENT } ;
 *     Verb     = ":" LITERAL ;
 *
 * A template is parsed once, at start-up, into flat segments plus the variables that
 * capture ranges of them; matching a request path then never re-reads the template.
 */

/** One path segment of a parsed template. `**` matches zero or more segments. */
export type TemplateSegment =
  | { readonly kind: "literal"; readonly value: string }
  | { readonly kind: "wildcard" }
  | { readonly kind: "deep-wildcard" };

/** A variable capturing segments [start, end) of the path; end is undefined for a trailing `**`. */
export interface TemplateVariable {
  readonly fieldPath: readonly string[];
  readonly start: number;
  readonly end: number | undefined;
}

export interface PathTemplate {
  /** The template as written in the proto. */
  readonly source: string;
  readonly segments: readonly TemplateSegment[];
  readonly variables: readonly TemplateVariable[];
  /** The custom verb without its colon, or undefined. */
  readonly verb: string | undefined;
}

export class PathTemplateSyntaxError extends Error {
  constructor(source: string, column: number, expected: string) {
    super(`syntax error in path template "${source}" at column ${column}: ${expected}`);
    this.name = "PathTemplateSyntaxError";
  }
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*/;
// LITERAL in http.proto is any run of URL path characters other than the template's own
// punctuation; percent-encoded octets are allowed.
const LITERAL = /^(?:[A-Za-z0-9\-._~!$&'()+,;@]|%[0-9A-Fa-f]{2})+/;

/**
 * Parses a path template. Throws PathTemplateSyntaxError naming the column of the first
 * problem; never returns a template that `**` appears in other than as the last segment.
 */
export function parsePathTemplate(source: string): PathTemplate {
  let pos = 0;
  const segments: TemplateSegment[] = [];
  const variables: TemplateVariable[] = [];
  const fail = (expected: string): never => {
    throw new PathTemplateSyntaxError(source, pos + 1, expected);
  };

  const parseSegments = (inVariable: boolean): void => {
    for (;;) {
      parseSegment(inVariable);
      if (source[pos] !== "/") return;
      pos++;
    }
  };

  const parseSegment = (inVariable: boolean): void => {
    if (source.startsWith("**", pos)) {
      segments.push({ kind: "deep-wildcard" });
      pos += 2;
      return;
    }
    if (source[pos] === "*") {
      segments.push({ kind: "wildcard" });
      pos += 1;
      return;
    }
    if (source[pos] === "{") {
      if (inVariable) fail("variables cannot be nested");
      parseVariable();
      return;
    }
    const literal = LITERAL.exec(source.slice(pos));
    if (!literal) fail("expected a literal, '*', '**' or '{'");
    segments.push({ kind: "literal", value: literal![0] });
    pos += literal![0].length;
  };

  const parseVariable = (): void => {
    const column = pos + 1;
    pos++; // "{"
    const fieldPath: string[] = [];
    for (;;) {
      const ident = IDENT.exec(source.slice(pos));
      if (!ident) fail("expected a field name");
      fieldPath.push(ident![0]);
      pos += ident![0].length;
      if (source[pos] !== ".") break;
      pos++;
    }
    // Checked here rather than after parsing so that the column is this variable's, not
    // the first place its name happens to occur in the template.
    const name = fieldPath.join(".");
    if (variables.some((v) => v.fieldPath.join(".") === name)) {
      throw new PathTemplateSyntaxError(source, column, `variable "${name}" appears twice`);
    }
    const start = segments.length;
    if (source[pos] === "=") {
      pos++;
      parseSegments(true);
    } else {
      segments.push({ kind: "wildcard" });
    }
    if (source[pos] !== "}") fail("expected '}'");
    pos++;
    const last = segments[segments.length - 1];
    const end = last?.kind === "deep-wildcard" ? undefined : segments.length;
    variables.push({ fieldPath, start, end });
  };

  if (source[pos] !== "/") fail("expected '/'");
  pos++;
  parseSegments(false);
  let verb: string | undefined;
  if (source[pos] === ":") {
    pos++;
    const literal = LITERAL.exec(source.slice(pos));
    if (!literal) fail("expected a verb after ':'");
    verb = literal![0];
    pos += verb.length;
  }
  if (pos !== source.length) fail("expected '/', ':' or the end of the template");

  const deep = segments.findIndex((s) => s.kind === "deep-wildcard");
  if (deep !== -1 && deep !== segments.length - 1) {
    // A literal cannot contain "*", so the first "**" in the source is this segment.
    throw new PathTemplateSyntaxError(source, source.indexOf("**") + 1, "'**' must be the last segment");
  }
  return { source, segments, variables, verb };
}

/** Values captured by a match, keyed by dotted field path, already percent-decoded. */
export type PathBindings = Map<string, string>;

/** Raised when a captured value has malformed percent-encoding. */
export class PathDecodeError extends Error {
  constructor(readonly segment: string) {
    super(`malformed percent-encoding in path segment "${segment}"`);
    this.name = "PathDecodeError";
  }
}

/**
 * Matches request path segments (split on "/", still percent-encoded, without the verb)
 * against the template. Returns undefined when they do not match. `*` and a variable
 * never match an empty segment.
 */
export function matchPathTemplate(template: PathTemplate, parts: readonly string[]): PathBindings | undefined {
  const { segments } = template;
  const deep = segments.length > 0 && segments[segments.length - 1]!.kind === "deep-wildcard";
  if (deep ? parts.length < segments.length - 1 : parts.length !== segments.length) return undefined;
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i]!;
    if (segment.kind === "deep-wildcard") break;
    const part = parts[i]!;
    if (segment.kind === "literal" ? part !== segment.value : part === "") return undefined;
  }
  const bindings: PathBindings = new Map();
  for (const variable of template.variables) {
    const captured = parts.slice(variable.start, variable.end ?? parts.length);
    bindings.set(variable.fieldPath.join("."), decodeCaptured(captured, isSingleSegment(variable)));
  }
  return bindings;
}

/**
 * Whether a variable has the single-segment form (`{var}` or `{var=*}`). http.proto
 * chooses the decoding and encoding rules by this form, not by how many segments a
 * particular path happens to give a `**`.
 */
function isSingleSegment(variable: TemplateVariable): boolean {
  return variable.end !== undefined && variable.end - variable.start === 1;
}

/**
 * http.proto: a single-segment variable is fully percent-decoded; a multi-segment one
 * keeps "%2F" encoded so that a decoded slash cannot be mistaken for a separator.
 */
function decodeCaptured(parts: readonly string[], single: boolean): string {
  return parts
    .map((part) => {
      try {
        return decodeURIComponent(single ? part : part.replace(/%2F/gi, "%252F"));
      } catch {
        throw new PathDecodeError(part);
      }
    })
    .join("/");
}

/**
 * Fills a template's variables with values, encoding them as http.proto says for each
 * form. Returns undefined when a variable has no value or an empty one.
 */
export function expandPathTemplate(
  template: PathTemplate,
  valueOf: (fieldPath: readonly string[]) => string | undefined,
): string | undefined {
  const out: string[] = [];
  let next = 0;
  for (const variable of template.variables) {
    for (; next < variable.start; next++) out.push(literalOf(template.segments[next]!));
    const value = valueOf(variable.fieldPath);
    if (value === undefined || value === "") return undefined;
    const end = variable.end ?? template.segments.length;
    out.push(isSingleSegment(variable) ? encodeSegment(value) : value.split("/").map(encodeSegment).join("/"));
    next = end;
  }
  for (; next < template.segments.length; next++) out.push(literalOf(template.segments[next]!));
  return "/" + out.join("/") + (template.verb !== undefined ? ":" + template.verb : "");
}

/**
 * http.proto: every character except [-_.~0-9a-zA-Z] is percent-encoded (a multi-segment
 * value keeps its "/"). encodeURIComponent alone would leave !'()* as they are.
 */
function encodeSegment(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
}

function literalOf(segment: TemplateSegment): string {
  if (segment.kind !== "literal") throw new Error("a wildcard outside a variable cannot be expanded");
  return segment.value;
}
