import fc from "fast-check";
import { fromJson, toBinary, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import { CreateSessionRequestSchema } from "../../gen/sessions/v1/session_service_pb.js";

/**
 * The agent that near-valid bodies name. Seed it so that some of them are created; it is
 * not the fixtures' agent, because a body that names it is, on the wire, also a valid
 * GetAgent, UpdateAgent or DeleteAgent request.
 */
export const FUZZ_AGENT_ID = "agent_f0220000000000000000000000000001";

/**
 * fast-check arbitraries for hostile input: strings, JSON shapes and bytes that a careless
 * parser, validator or store would mishandle. Shared by the fuzz test; nothing here knows
 * the expected answers.
 */

/** Strings that have broken servers before, or that a store must keep byte for byte. */
const NASTY_STRINGS = [
  "",
  " ",
  "\u0000",
  "a\u0000b",
  "\uD800", // a lone high surrogate
  "\uDFFF", // a lone low surrogate
  "\uFFFD",
  "\u202E", // right-to-left override
  "\r\n",
  "'; DROP TABLE sessions; --",
  "\" OR 1=1 --",
  "%' OR '1'='1",
  "../../etc/passwd",
  "%00",
  "%zz",
  "${jndi:ldap://x}",
  "{{7*7}}",
  "<script>alert(1)</script>",
  "NaN",
  "-0",
  "1e400",
  "🚀".repeat(300),
  "session_0123456789abcdef0123456789abcdef",
];

export const hostileString: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.string({ unit: "binary", maxLength: 40 }) },
  { weight: 3, arbitrary: fc.constantFrom(...NASTY_STRINGS) },
  { weight: 1, arbitrary: fc.constantFrom(255, 257, 4097, 70_000).map((n) => "x".repeat(n)) },
);

/** Objects and arrays nested `depth` levels deep, built without recursion. */
export function nested(depth: number, shape: "object" | "array" | "mixed", leaf: JsonValue = 1): JsonValue {
  let value: JsonValue = leaf;
  for (let i = 0; i < depth; i++) {
    const asArray = shape === "array" || (shape === "mixed" && i % 2 === 1);
    value = asArray ? [value] : { k: value };
  }
  return value;
}

const deepValue: fc.Arbitrary<JsonValue> = fc
  .record({ depth: fc.integer({ min: 20, max: 1000 }), shape: fc.constantFrom("object", "array", "mixed") })
  .map(({ depth, shape }) => nested(depth, shape as "object" | "array" | "mixed"));

export const hostileJson: fc.Arbitrary<JsonValue> = fc.oneof(
  { weight: 4, arbitrary: fc.jsonValue({ maxDepth: 4 }) as fc.Arbitrary<JsonValue> },
  { weight: 3, arbitrary: hostileString },
  { weight: 1, arbitrary: fc.constantFrom<JsonValue>(null, true, false, 0, -1, 1.5, 1e308, -1e308, 2 ** 63, [], {}) },
  { weight: 1, arbitrary: deepValue },
);

/** Field names of the API in both spellings, plus names that exist nowhere. */
const FIELD_NAMES = [
  "agent_id", "agentId", "model_id", "modelId", "title", "tags", "capabilities", "id", "etag", "session", "agent",
  "update_mask", "updateMask", "error", "input_tokens", "inputTokens", "prompt_preview", "response_preview",
  "page_size", "pageSize", "page_token", "status", "tag", "created_after", "name", "default_model_id",
  "request_id", "__proto__", "constructor", "", "x".repeat(300),
];

const fieldName = fc.oneof(fc.constantFrom(...FIELD_NAMES), fc.string({ unit: "binary", maxLength: 12 }));

/** A CreateSession body close to valid, with any field replaced by something hostile. */
export const nearValidSession: fc.Arbitrary<JsonObject> = fc.record(
  {
    agent_id: fc.oneof({ weight: 4, arbitrary: fc.constant(FUZZ_AGENT_ID) }, { weight: 1, arbitrary: hostileJson }),
    title: fc.oneof(hostileString, hostileJson),
    tags: fc.oneof(fc.array(hostileString, { maxLength: 40 }), hostileJson),
    capabilities: fc.oneof(
      fc.array(
        fc.record(
          {
            capability_id: fc.oneof(fc.constantFrom("web.search", "code:run"), hostileString),
            config: fc.oneof(fc.dictionary(fieldName, hostileJson, { maxKeys: 5 }), deepValue, hostileJson),
          },
          { requiredKeys: ["capability_id"] },
        ),
        { maxLength: 3 },
      ),
      hostileJson,
    ),
    model_id: fc.oneof(fc.constant(""), hostileString),
  },
  { requiredKeys: ["agent_id"] },
);

/** Any object: known and unknown names, any values. */
export const randomObject: fc.Arbitrary<JsonObject> = fc.dictionary(fieldName, hostileJson, { maxKeys: 8 });

/** JSON text that JSON.parse refuses, or that only a lenient reader would take. */
const MALFORMED_JSON = [
  "", "{", "}", "{\"title\":", "{\"title\":\"a\",}", "{'title':'a'}", "{\"a\":1}{\"b\":2}", "[1,2", "nul", "tru",
  "{\"title\":\"\\ud800\"}", "{\"title\":\"\\u00\"}", "\u0000", "{\"title\":\"a\",\"title\":\"b\"}", "NaN", "Infinity",
  "{\"input_tokens\":\"9223372036854775808\"}", "{\"page_size\":1e400}", "{\"tags\":[1,2,3]}", "\uFEFF{}",
];

/** Byte sequences that are not UTF-8: a lone continuation, overlong forms, encoded surrogates, a cut character. */
const BAD_UTF8 = [[0xff], [0xfe, 0xff], [0x80], [0xc0, 0xaf], [0xe0, 0x80, 0xaf], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0xf8, 0x88, 0x80, 0x80, 0x80]];

/** A body as bytes: JSON in many shapes, deep text, malformed text, invalid UTF-8, random bytes. */
export const hostileJsonBody: fc.Arbitrary<Buffer> = fc.oneof(
  { weight: 4, arbitrary: nearValidSession.map(jsonBytes) },
  { weight: 3, arbitrary: randomObject.map(jsonBytes) },
  { weight: 2, arbitrary: hostileJson.map(jsonBytes) },
  { weight: 2, arbitrary: fc.constantFrom(...MALFORMED_JSON).map((text) => Buffer.from(text)) },
  { weight: 2, arbitrary: deepJsonText() },
  { weight: 2, arbitrary: invalidUtf8Json() },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 512 }).map((b) => Buffer.from(b)) },
  { weight: 1, arbitrary: fc.constantFrom(1024 * 1024 - 100, 1024 * 1024 + 100).map(hugeTitle) },
);

function jsonBytes(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

function hugeTitle(bytes: number): Buffer {
  const frame = JSON.stringify({ agent_id: FUZZ_AGENT_ID, title: "" });
  return Buffer.from(frame.replace('"title":""', `"title":"${"t".repeat(bytes - frame.length)}"`));
}

/** Nesting as text, up to 100,000 deep: too deep to build as objects and stringify. */
function deepJsonText(): fc.Arbitrary<Buffer> {
  return fc
    .record({
      depth: fc.constantFrom(99, 100, 101, 1000, 100_000),
      where: fc.constantFrom("root-array", "root-object", "struct-config"),
    })
    .map(({ depth, where }) => {
      if (where === "root-array") return Buffer.from("[".repeat(depth) + "]".repeat(depth));
      const inner = '{"k":'.repeat(depth) + "1" + "}".repeat(depth);
      if (where === "root-object") return Buffer.from(inner);
      return Buffer.from(`{"agent_id":"${FUZZ_AGENT_ID}","capabilities":[{"capability_id":"x","config":${inner}}]}`);
    });
}

function invalidUtf8Json(): fc.Arbitrary<Buffer> {
  return fc
    .record({ bad: fc.constantFrom(...BAD_UTF8), field: fc.constantFrom("title", "agent_id", "agentId", "tags", "id", "error", "name") })
    .map(({ bad, field }) => {
      const [before, after] = field === "tags" ? ['{"tags":["', '"]}'] : [`{"agent_id":"${FUZZ_AGENT_ID}","${field}":"`, '"}'];
      return Buffer.concat([Buffer.from(before), Buffer.from(bad), Buffer.from(after)]);
    });
}

/** Varint of a field tag. */
function tag(field: number, wireType: number): Buffer {
  const bytes: number[] = [];
  let v = (field << 3) | wireType;
  while (v > 0x7f) {
    bytes.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  bytes.push(v);
  return Buffer.from(bytes);
}

/** Protobuf bytes a decoder must refuse: truncation, bad lengths, deep groups, bad UTF-8, long varints. */
const CRAFTED_PROTO: readonly Buffer[] = [
  Buffer.from([0x0a, 0x05, 0x61]), // a string promising 5 bytes, giving 1
  Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]), // a 4 GiB length
  Buffer.from([0x0a, 0x02, 0xff, 0xfe]), // invalid UTF-8 in a string
  Buffer.from([0x0a, 0x03, 0xed, 0xa0, 0x80]), // an encoded surrogate
  Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), // an 11-byte varint
  Buffer.from([0x0f]), // wire type 7 does not exist
  Buffer.from([0x00]), // field number 0
  Buffer.from([0x0c]), // an end-group without a start
  Buffer.concat([tag(99, 3), tag(98, 4)]), // a group closed by another field's end
  ...[99, 100, 101, 2000].map((depth) => Buffer.concat([...Array(depth).fill(tag(99, 3)), ...Array(depth).fill(tag(99, 4))])),
];

/** Protobuf-shaped bytes: well-formed requests, mutated; crafted faults; random bytes; deep Structs. */
export const hostileProtoBody: fc.Arbitrary<Buffer> = fc.oneof(
  { weight: 3, arbitrary: fc.tuple(nearValidSession, mutation()).map(([json, mutate]) => mutate(sessionBinary(json))) },
  { weight: 2, arbitrary: fc.constantFrom(...CRAFTED_PROTO) },
  { weight: 2, arbitrary: fc.uint8Array({ maxLength: 512 }).map((b) => Buffer.from(b)) },
  {
    weight: 2,
    arbitrary: fc.integer({ min: 10, max: 300 }).map((depth) =>
      Buffer.from(
        // JSON parsing stops at 100 nested messages unless told otherwise; toBinary never does.
        toBinary(
          CreateSessionRequestSchema,
          fromJson(
            CreateSessionRequestSchema,
            { agentId: FUZZ_AGENT_ID, capabilities: [{ capabilityId: "x", config: { k: nested(depth, "mixed") } }] },
            { recursionLimit: 1000 },
          ),
        ),
      ),
    ),
  },
);

/** The request as protobuf when it is representable; its JSON text otherwise (also hostile as proto). */
function sessionBinary(json: JsonObject): Buffer {
  try {
    return Buffer.from(toBinary(CreateSessionRequestSchema, fromJson(CreateSessionRequestSchema, json)));
  } catch {
    return jsonBytes(json);
  }
}

function mutation(): fc.Arbitrary<(bytes: Buffer) => Buffer> {
  return fc.oneof(
    fc.constant((b: Buffer) => b),
    fc.nat().map((n) => (b: Buffer) => b.subarray(0, b.length === 0 ? 0 : n % b.length)),
    fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })).map(([n, byte]) => (b: Buffer) => {
      const copy = Buffer.from(b);
      if (copy.length > 0) copy[n % copy.length] = byte;
      return copy;
    }),
    fc.uint8Array({ minLength: 1, maxLength: 16 }).map((tail) => (b: Buffer) => Buffer.concat([b, tail])),
  );
}
