import { create, type DescField, type JsonObject, type JsonValue, type Message } from "@bufbuild/protobuf";
import { FieldMaskSchema } from "@bufbuild/protobuf/wkt";
import type { HttpBinding } from "./http-rule.js";

/**
 * Fills an empty `update_mask` of a PATCH from the fields present in the body, as
 * grpc-gateway does: proto3 cannot tell an empty string from an absent one, but a JSON
 * body can, so a REST client may clear a field just by sending it empty.
 */
export type UpdateMaskFiller = (request: Message, body: JsonValue | undefined) => void;

/**
 * The filler for a binding, or undefined when it does not apply: the binding must be a
 * PATCH whose request has a `google.protobuf.FieldMask update_mask` field and whose body
 * carries one resource message — `body: "<field>"`, or `body: "*"` with the resource named
 * by the first segment of a nested path variable (`{session.id}` → `session`).
 */
export function impliedUpdateMask(binding: HttpBinding): UpdateMaskFiller | undefined {
  const update = updateOf(binding);
  if (!update) return undefined;
  const { mask, resource } = update;
  const resourceFields = resource.message.fields;
  const viaWholeBody = binding.body.kind === "whole";

  return (request, body) => {
    const current = (request as Record<string, unknown>)[mask.localName] as { paths: string[] } | undefined;
    if (current && current.paths.length > 0) return;
    const json = viaWholeBody ? objectAt(body, resource) : body;
    if (!isObject(json)) return;
    const paths: string[] = [];
    for (const key of Object.keys(json)) {
      const field = resourceFields.find((f) => f.name === key || f.jsonName === key);
      if (field) paths.push(field.name);
    }
    if (current) current.paths = paths;
    else (request as Record<string, unknown>)[mask.localName] = create(FieldMaskSchema, { paths });
  };
}

/**
 * The resource field a PATCH updates field by field (see impliedUpdateMask for the shape),
 * or undefined for any other binding. A client sends only the resource fields it changes.
 */
export function updatedResource(binding: HttpBinding): (DescField & { fieldKind: "message" }) | undefined {
  return updateOf(binding)?.resource;
}

function updateOf(binding: HttpBinding): { mask: DescField; resource: DescField & { fieldKind: "message" } } | undefined {
  if (binding.httpMethod !== "PATCH") return undefined;
  const mask = binding.method.input.fields.find((f) => f.name === "update_mask");
  if (mask?.fieldKind !== "message" || mask.message.typeName !== "google.protobuf.FieldMask") return undefined;
  const resource = resourceField(binding);
  if (resource?.fieldKind !== "message") return undefined;
  return { mask, resource };
}

function resourceField(binding: HttpBinding): DescField | undefined {
  if (binding.body.kind === "field") return binding.body.field;
  if (binding.body.kind !== "whole") return undefined;
  for (const chain of binding.pathFields.values()) {
    if (chain.length > 1) return chain[0];
  }
  return undefined;
}

function objectAt(body: JsonValue | undefined, field: DescField): JsonValue | undefined {
  if (!isObject(body)) return undefined;
  return body[field.name] ?? body[field.jsonName];
}

function isObject(value: JsonValue | undefined): value is JsonObject {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}
