import { create, createFileRegistry, setExtension, type DescService, type MessageInitShape } from "@bufbuild/protobuf";
import {
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  FileDescriptorProtoSchema,
  MethodOptionsSchema,
} from "@bufbuild/protobuf/wkt";
import { http } from "../../gen/google/api/annotations_pb.js";
import { HttpRuleSchema } from "../../gen/google/api/http_pb.js";
import { event_stream, EventStreamRuleSchema } from "../../gen/sessions/http/v1/event_stream_pb.js";

/** A google.api.http rule as `create(HttpRuleSchema, …)` takes it. */
export type RuleInit = MessageInitShape<typeof HttpRuleSchema>;

export interface MethodSpec {
  readonly name: string;
  /** The google.api.http option; the method has no option when absent. */
  readonly rule?: RuleInit;
  /** "Req" (default) or "Resp". */
  readonly input?: "Req" | "Resp";
  /** "Resp" (default) or "Req". */
  readonly output?: "Req" | "Resp";
  /** The (sessions.http.v1.event_stream) option; none when absent. */
  readonly eventStream?: MessageInitShape<typeof EventStreamRuleSchema>;
  readonly clientStreaming?: boolean;
  readonly serverStreaming?: boolean;
}

const { OPTIONAL, REPEATED } = FieldDescriptorProto_Label;
const { STRING, INT32, MESSAGE } = FieldDescriptorProto_Type;

/**
 * Builds `test.v1.TestService` at test time, so that annotations the committed test proto
 * must not contain (they would stop the transcoder) can be tried. Its messages:
 *
 *     message Req  { string name = 1; string parent = 2; repeated string tags = 3; Inner inner = 4; int32 count = 5; }
 *     message Inner { string id = 1; }
 *     message Resp { string title = 1; Inner inner = 2; }
 */
export function buildTestService(methods: readonly MethodSpec[]): DescService {
  const file = create(FileDescriptorProtoSchema, {
    name: "test/v1/test.proto",
    package: "test.v1",
    syntax: "proto3",
    messageType: [
      {
        name: "Req",
        field: [
          { name: "name", jsonName: "name", number: 1, type: STRING, label: OPTIONAL },
          { name: "parent", jsonName: "parent", number: 2, type: STRING, label: OPTIONAL },
          { name: "tags", jsonName: "tags", number: 3, type: STRING, label: REPEATED },
          { name: "inner", jsonName: "inner", number: 4, type: MESSAGE, typeName: ".test.v1.Inner", label: OPTIONAL },
          { name: "count", jsonName: "count", number: 5, type: INT32, label: OPTIONAL },
        ],
      },
      { name: "Inner", field: [{ name: "id", jsonName: "id", number: 1, type: STRING, label: OPTIONAL }] },
      {
        name: "Resp",
        field: [
          { name: "title", jsonName: "title", number: 1, type: STRING, label: OPTIONAL },
          { name: "inner", jsonName: "inner", number: 2, type: MESSAGE, typeName: ".test.v1.Inner", label: OPTIONAL },
        ],
      },
    ],
    service: [
      {
        name: "TestService",
        method: methods.map((m) => {
          const options = create(MethodOptionsSchema);
          if (m.rule) setExtension(options, http, create(HttpRuleSchema, m.rule));
          if (m.eventStream) setExtension(options, event_stream, create(EventStreamRuleSchema, m.eventStream));
          return {
            name: m.name,
            inputType: `.test.v1.${m.input ?? "Req"}`,
            outputType: `.test.v1.${m.output ?? "Resp"}`,
            options,
            clientStreaming: m.clientStreaming ?? false,
            serverStreaming: m.serverStreaming ?? false,
          };
        }),
      },
    ],
  });
  return createFileRegistry(file, () => undefined).getService("test.v1.TestService")!;
}
