import type { DescFile, DescService } from "@bufbuild/protobuf";
import type { DescriptorProto, EnumDescriptorProto, FieldDescriptorProto } from "@bufbuild/protobuf/wkt";

/**
 * What server reflection can answer about the services a server serves: their files and
 * every file those import, transitively, looked up by file name, by the fully-qualified
 * name of anything they declare, and by extension. Built once from the descriptors the
 * generated code embeds.
 */
export class ReflectionIndex {
  /** Fully-qualified names of the services served, in the order given. */
  readonly serviceNames: readonly string[];
  private readonly files = new Map<string, DescFile>();
  private readonly symbols = new Map<string, DescFile>();
  private readonly messages = new Set<string>();
  /** Extended message's fully-qualified name → field number → the file declaring the extension. */
  private readonly extensions = new Map<string, Map<number, DescFile>>();

  constructor(services: readonly DescService[]) {
    this.serviceNames = services.map((service) => service.typeName);
    const pending = services.map((service) => service.file);
    for (let file = pending.pop(); file; file = pending.pop()) {
      if (this.files.has(file.proto.name)) continue;
      this.files.set(file.proto.name, file);
      this.indexFile(file);
      pending.push(...file.dependencies);
    }
  }

  /** The file of this name (as imported: "sessions/v1/session.proto"), or undefined. */
  fileByName(name: string): DescFile | undefined {
    return this.files.get(name);
  }

  /**
   * The file declaring this fully-qualified name (no leading dot), or undefined: a
   * service, method, message (nested ones too), field, oneof, enum, enum value (named in
   * the enum's enclosing scope, as protobuf scopes them) or extension.
   */
  fileContainingSymbol(symbol: string): DescFile | undefined {
    return this.symbols.get(symbol);
  }

  /** The file declaring extension `number` of the message `extendee` (fully-qualified), or undefined. */
  fileContainingExtension(extendee: string, number: number): DescFile | undefined {
    return this.extensions.get(extendee)?.get(number);
  }

  /**
   * The numbers of every known extension of the message `extendee` in ascending order;
   * undefined when no message of that name is known.
   */
  extensionNumbersOf(extendee: string): number[] | undefined {
    if (!this.messages.has(extendee)) return undefined;
    return [...(this.extensions.get(extendee)?.keys() ?? [])].sort((a, b) => a - b);
  }

  /**
   * `file` followed by every file it imports, transitively, that is not in `sent`, each
   * once; adds them all to `sent`. `file` itself comes first even when sent before, since
   * it is what the client asked for (as grpc-go's reflection does).
   */
  withDependencies(file: DescFile, sent: Set<string>): DescFile[] {
    const answer = [file];
    sent.add(file.proto.name);
    const queue = [...file.dependencies];
    for (let next = queue.shift(); next; next = queue.shift()) {
      if (sent.has(next.proto.name)) continue;
      sent.add(next.proto.name);
      answer.push(next);
      queue.push(...next.dependencies);
    }
    return answer;
  }

  private indexFile(file: DescFile): void {
    const { proto } = file;
    const scope = proto.package === "" ? "" : `${proto.package}.`;
    for (const message of proto.messageType) this.indexMessage(file, scope, message);
    for (const enumType of proto.enumType) this.indexEnum(file, scope, enumType);
    for (const extension of proto.extension) this.indexExtension(file, scope, extension);
    for (const service of proto.service) {
      const name = `${scope}${service.name}`;
      this.symbols.set(name, file);
      for (const method of service.method) this.symbols.set(`${name}.${method.name}`, file);
    }
  }

  private indexMessage(file: DescFile, scope: string, message: DescriptorProto): void {
    const name = `${scope}${message.name}`;
    this.symbols.set(name, file);
    this.messages.add(name);
    for (const field of message.field) this.symbols.set(`${name}.${field.name}`, file);
    for (const oneof of message.oneofDecl) this.symbols.set(`${name}.${oneof.name}`, file);
    for (const nested of message.nestedType) this.indexMessage(file, `${name}.`, nested);
    for (const enumType of message.enumType) this.indexEnum(file, `${name}.`, enumType);
    for (const extension of message.extension) this.indexExtension(file, `${name}.`, extension);
  }

  private indexEnum(file: DescFile, scope: string, enumType: EnumDescriptorProto): void {
    this.symbols.set(`${scope}${enumType.name}`, file);
    for (const value of enumType.value) this.symbols.set(`${scope}${value.name}`, file);
  }

  private indexExtension(file: DescFile, scope: string, extension: FieldDescriptorProto): void {
    this.symbols.set(`${scope}${extension.name}`, file);
    const extendee = extension.extendee.replace(/^\./, "");
    let numbers = this.extensions.get(extendee);
    if (!numbers) this.extensions.set(extendee, (numbers = new Map()));
    numbers.set(extension.number, file);
  }
}

