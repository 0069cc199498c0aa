import { create, fromBinary, toBinary, type DescFile, type MessageInitShape } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import {
  ServerReflection,
  ServerReflectionRequestSchema,
  ServerReflectionResponseSchema,
  type ServerReflectionRequest,
  type ServerReflectionResponse,
} from "../../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import type { ReflectionIndex } from "./reflection-index.js";

type MessageResponse = MessageInitShape<typeof ServerReflectionResponseSchema>["messageResponse"];

/**
 * grpc.reflection.v1.ServerReflection: each request on the stream is answered in order.
 * A file request is answered with the file and every file it imports, transitively, that
 * this stream has not been sent yet, as serialized FileDescriptorProtos; an unknown name
 * with an ErrorResponse carrying NOT_FOUND, the stream going on.
 */
export function createReflectionService(index: ReflectionIndex): ServiceImpl<typeof ServerReflection> {
  return {
    async *serverReflectionInfo(requests) {
      const sent = new Set<string>();
      for await (const request of requests) yield answer(index, request, sent);
    },
  };
}

/**
 * grpc.reflection.v1alpha.ServerReflection, which older clients (grpcurl before 1.9, buf
 * curl's grpc-v1alpha) still ask: v1 under another package name, with the same fields and
 * numbers, so each message is carried over through its binary form.
 */
export function createReflectionV1alphaService(index: ReflectionIndex): ServiceImpl<typeof v1alpha.ServerReflection> {
  return {
    async *serverReflectionInfo(requests) {
      const sent = new Set<string>();
      for await (const request of requests) {
        const v1Request = fromBinary(ServerReflectionRequestSchema, toBinary(v1alpha.ServerReflectionRequestSchema, request));
        const v1Response = answer(index, v1Request, sent);
        yield fromBinary(v1alpha.ServerReflectionResponseSchema, toBinary(ServerReflectionResponseSchema, v1Response));
      }
    },
  };
}

function answer(index: ReflectionIndex, request: ServerReflectionRequest, sent: Set<string>): ServerReflectionResponse {
  const files = (file: DescFile | undefined, unknown: string): MessageResponse =>
    file
      ? {
          case: "fileDescriptorResponse",
          value: { fileDescriptorProto: index.withDependencies(file, sent).map((f) => toBinary(FileDescriptorProtoSchema, f.proto)) },
        }
      : notFound(unknown);
  const { messageRequest } = request;
  let messageResponse: MessageResponse;
  switch (messageRequest.case) {
    case "fileByFilename":
      messageResponse = files(index.fileByName(messageRequest.value), `file "${messageRequest.value}" not found`);
      break;
    case "fileContainingSymbol":
      messageResponse = files(index.fileContainingSymbol(messageRequest.value), `symbol "${messageRequest.value}" not found`);
      break;
    case "fileContainingExtension": {
      const { containingType, extensionNumber } = messageRequest.value;
      messageResponse = files(
        index.fileContainingExtension(containingType, extensionNumber),
        `extension ${extensionNumber} of "${containingType}" not found`,
      );
      break;
    }
    case "allExtensionNumbersOfType": {
      const numbers = index.extensionNumbersOf(messageRequest.value);
      messageResponse = numbers
        ? { case: "allExtensionNumbersResponse", value: { baseTypeName: messageRequest.value, extensionNumber: numbers } }
        : notFound(`message type "${messageRequest.value}" not found`);
      break;
    }
    case "listServices":
      messageResponse = { case: "listServicesResponse", value: { service: index.serviceNames.map((name) => ({ name })) } };
      break;
    default:
      // As grpc-go's reflection does: a request of no known kind ends the stream.
      throw new ConnectError("reflection request names no known message_request", Code.InvalidArgument);
  }
  return create(ServerReflectionResponseSchema, { validHost: request.host, originalRequest: request, messageResponse });
}

function notFound(message: string): MessageResponse {
  return { case: "errorResponse", value: { errorCode: Code.NotFound, errorMessage: message } };
}
