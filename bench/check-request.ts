import * as http2 from "node:http2";
import { fromBinary, fromJson, type DescMessage, type JsonValue, type MessageShape } from "@bufbuild/protobuf";
import type { HttpRequest, Protocol } from "./requests.js";

/**
 * Sends one request exactly as the load tool will, and fails loudly unless it succeeded
 * in its protocol's own terms and the answer decodes as the RPC's output message:
 * REST and Connect by HTTP status, gRPC by the grpc-status trailer of a 200, gRPC-Web by
 * the trailer frame at the end of its body. REST goes over HTTP/1.1 (as wrk), the RPC
 * protocols over h2c (as h2load).
 */
export async function checkRequest(baseUrl: string, protocol: Protocol, request: HttpRequest): Promise<CheckedAnswer> {
  const answer = protocol === "rest" ? await viaHttp1(baseUrl, request) : await viaHttp2(baseUrl, request);
  return { message: decodeAnswer(protocol, request, answer), bodyBytes: answer.body.length };
}

export interface CheckedAnswer {
  readonly message: MessageShape<DescMessage>;
  /** Bytes of the response body: what each answer to this request should carry, about. */
  readonly bodyBytes: number;
}

function decodeAnswer(protocol: Protocol, request: HttpRequest, answer: Answer): MessageShape<DescMessage> {
  const what = `${protocol} ${request.method} ${request.path}`;
  const fail = (why: string): never => {
    throw new Error(`${what}: ${why}\n  status ${answer.status}, headers ${JSON.stringify(answer.headers)}, body ${answerText(answer.body)}`);
  };
  if (answer.status < 200 || answer.status > 299) fail("not 2xx");
  switch (protocol) {
    case "rest":
    case "connect-json":
      return fromJson(request.responseSchema, JSON.parse(new TextDecoder().decode(answer.body)) as JsonValue);
    case "connect-proto":
      return fromBinary(request.responseSchema, answer.body);
    case "grpc": {
      const status = answer.trailers["grpc-status"] ?? answer.headers["grpc-status"];
      if (status !== "0") fail(`grpc-status ${status} (${answer.trailers["grpc-message"] ?? answer.headers["grpc-message"]})`);
      const [message] = frames(answer.body).filter((f) => !f.trailer);
      if (!message) fail("no message frame");
      return fromBinary(request.responseSchema, message!.data);
    }
    case "grpc-web": {
      const all = frames(answer.body);
      const trailer = all.find((f) => f.trailer);
      const status = trailer ? /grpc-status:\s*(\d+)/i.exec(new TextDecoder().decode(trailer.data))?.[1] : undefined;
      if (status !== "0") fail(`grpc-status ${status} in the trailer frame`);
      const message = all.find((f) => !f.trailer);
      if (!message) fail("no message frame");
      return fromBinary(request.responseSchema, message!.data);
    }
  }
}

interface Answer {
  status: number;
  headers: Record<string, string>;
  trailers: Record<string, string>;
  body: Uint8Array;
}

async function viaHttp1(baseUrl: string, request: HttpRequest): Promise<Answer> {
  const response = await fetch(baseUrl + request.path, {
    method: request.method,
    headers: request.headers,
    ...(request.body ? { body: request.body } : {}),
  });
  return {
    status: response.status,
    headers: Object.fromEntries(response.headers),
    trailers: {},
    body: new Uint8Array(await response.arrayBuffer()),
  };
}

function viaHttp2(baseUrl: string, request: HttpRequest): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(baseUrl);
    session.on("error", reject);
    const stream = session.request({ ":method": request.method, ":path": request.path, ...request.headers });
    const answer: Answer = { status: 0, headers: {}, trailers: {}, body: new Uint8Array() };
    const chunks: Buffer[] = [];
    stream.on("response", (headers) => {
      answer.status = Number(headers[":status"]);
      answer.headers = stringValues(headers);
    });
    stream.on("trailers", (trailers) => (answer.trailers = stringValues(trailers)));
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("error", reject);
    stream.on("end", () => {
      answer.body = new Uint8Array(Buffer.concat(chunks));
      session.close();
      resolve(answer);
    });
    stream.end(request.body ? Buffer.from(request.body) : undefined);
  });
}

function stringValues(headers: http2.IncomingHttpHeaders): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).map(([name, value]) => [name, String(value)]));
}

/** Length-prefixed frames; flag bit 0x80 marks gRPC-Web's trailer frame. */
function frames(body: Uint8Array): Array<{ trailer: boolean; data: Uint8Array }> {
  const out: Array<{ trailer: boolean; data: Uint8Array }> = [];
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  for (let offset = 0; offset + 5 <= body.length; ) {
    const length = view.getUint32(offset + 1);
    out.push({ trailer: (body[offset]! & 0x80) !== 0, data: body.subarray(offset + 5, offset + 5 + length) });
    offset += 5 + length;
  }
  return out;
}

function answerText(body: Uint8Array): string {
  const text = new TextDecoder().decode(body.subarray(0, 500));
  return JSON.stringify(text);
}
