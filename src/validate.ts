import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema } from "../gen/google/rpc/error_details_pb.js";

/** One invalid field: its path in the request (proto names, `[i]` for list items) and why. */
export interface FieldViolation {
  readonly field: string;
  readonly description: string;
}

/**
 * Collects every violation of a request, so that a client learns all of them at once.
 * The error message joins the descriptions; each description names its field.
 */
export class Violations {
  private readonly list: FieldViolation[] = [];

  add(field: string, description: string): void {
    this.list.push({ field, description });
  }

  /** Throws invalid_argument with a google.rpc.BadRequest detail when anything was added. */
  throwIfAny(): void {
    if (this.list.length > 0) throw invalidArgument(this.list);
  }
}

/** invalid_argument carrying a google.rpc.BadRequest that lists each violation. */
export function invalidArgument(violations: readonly FieldViolation[]): ConnectError {
  return new ConnectError(
    violations.map((v) => v.description).join("; "),
    Code.InvalidArgument,
    undefined,
    [{ desc: BadRequestSchema, value: { fieldViolations: violations.map((v) => ({ ...v })) } }],
  );
}

/** Length in Unicode code points, as the API's limits count it. */
export function codePointLength(text: string): number {
  let length = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    // A high surrogate followed by a low one is one code point.
    if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) i++;
    }
    length++;
  }
  return length;
}

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** Whether the text contains a C0 or C1 control character (Unicode category Cc). */
export function hasControlCharacter(text: string): boolean {
  return CONTROL.test(text);
}

/**
 * The first `max` code points of the text: never ends inside a surrogate pair. (Grapheme
 * clusters such as flags or skin-tone sequences may still be cut between code points.)
 */
export function truncateCodePoints(text: string, max: number): string {
  if (text.length <= max) return text;
  let units = 0;
  for (let points = 0; points < max && units < text.length; points++) {
    const unit = text.charCodeAt(units);
    const pair = unit >= 0xd800 && unit <= 0xdbff && units + 1 < text.length;
    units += pair && (text.charCodeAt(units + 1) & 0xfc00) === 0xdc00 ? 2 : 1;
  }
  return text.slice(0, units);
}
