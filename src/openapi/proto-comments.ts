import { fromBinary, type DescEnum, type DescEnumValue, type DescField, type DescMessage, type DescMethod, type DescService } from "@bufbuild/protobuf";
import {
  FileDescriptorSetSchema,
  type DescriptorProto,
  type EnumDescriptorProto,
  type SourceCodeInfo_Location,
} from "@bufbuild/protobuf/wkt";

/** A proto element whose comment can be looked up. */
export type CommentedDesc = DescMessage | DescField | DescEnum | DescEnumValue | DescService | DescMethod;

// Field numbers of descriptor.proto, the steps of a SourceCodeInfo location path.
const FILE_MESSAGE = 4;
const FILE_ENUM = 5;
const FILE_SERVICE = 6;
const MESSAGE_FIELD = 2;
const MESSAGE_NESTED = 3;
const MESSAGE_ENUM = 4;
const ENUM_VALUE = 2;
const SERVICE_METHOD = 2;

/**
 * The comments of proto elements, read from a FileDescriptorSet built with source info
 * (`buf build`): the descriptors protoc-gen-es embeds in gen/ carry none. Elements are found
 * by their full names (`sessions.v1.Session.title`), so the descriptors the server runs on
 * and this set only need to agree on names; an element the set lacks has no comment.
 */
export class ProtoComments {
  private constructor(private readonly byName: ReadonlyMap<string, string>) {}

  /** No comments at all: descriptions are simply left out. */
  static readonly none = new ProtoComments(new Map());

  /** Reads a binary FileDescriptorSet. Files without source info contribute nothing. */
  static fromDescriptorSet(bytes: Uint8Array): ProtoComments {
    const byName = new Map<string, string>();
    for (const file of fromBinary(FileDescriptorSetSchema, bytes).file) {
      const locations = new Map<string, SourceCodeInfo_Location>();
      for (const location of file.sourceCodeInfo?.location ?? []) locations.set(location.path.join("."), location);
      const add = (name: string, path: readonly number[]) => {
        const text = commentText(locations.get(path.join(".")));
        if (text !== undefined) byName.set(name, text);
      };
      const prefix = file.package === "" ? "" : file.package + ".";
      const addEnum = (scope: string, e: EnumDescriptorProto, path: readonly number[]) => {
        add(scope + e.name, path);
        e.value.forEach((v, i) => add(`${scope}${e.name}.${v.name}`, [...path, ENUM_VALUE, i]));
      };
      const addMessage = (scope: string, m: DescriptorProto, path: readonly number[]) => {
        const name = scope + m.name;
        add(name, path);
        m.field.forEach((f, i) => add(`${name}.${f.name}`, [...path, MESSAGE_FIELD, i]));
        m.nestedType.forEach((n, i) => addMessage(name + ".", n, [...path, MESSAGE_NESTED, i]));
        m.enumType.forEach((e, i) => addEnum(name + ".", e, [...path, MESSAGE_ENUM, i]));
      };
      file.messageType.forEach((m, i) => addMessage(prefix, m, [FILE_MESSAGE, i]));
      file.enumType.forEach((e, i) => addEnum(prefix, e, [FILE_ENUM, i]));
      file.service.forEach((s, i) => {
        add(prefix + s.name, [FILE_SERVICE, i]);
        s.method.forEach((m, j) => add(`${prefix}${s.name}.${m.name}`, [FILE_SERVICE, i, SERVICE_METHOD, j]));
      });
    }
    return new ProtoComments(byName);
  }

  /**
   * The element's leading comment (else its trailing one), with the single space after
   * each `//` removed and the line breaks kept; undefined when it has none.
   */
  of(desc: CommentedDesc): string | undefined {
    return this.byName.get(nameOf(desc));
  }
}

function nameOf(desc: CommentedDesc): string {
  switch (desc.kind) {
    case "message":
    case "enum":
    case "service":
      return desc.typeName;
    case "field":
    case "enum_value":
    case "rpc":
      return `${desc.parent.typeName}.${desc.name}`;
  }
}

function commentText(location: SourceCodeInfo_Location | undefined): string | undefined {
  const raw = location?.leadingComments || location?.trailingComments;
  if (!raw) return undefined;
  const text = raw
    .split("\n")
    .map((line) => line.replace(/^ /, "").trimEnd())
    .join("\n")
    .trim();
  return text === "" ? undefined : text;
}
