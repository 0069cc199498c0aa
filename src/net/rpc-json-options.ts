import type { JsonReadOptions, JsonWriteOptions } from "@bufbuild/protobuf";

/**
 * JSON options for connect-node's adapter. connect-es decodes a JSON request body with the
 * `textDecoder` of these options, an undocumented field missing from their type, and by
 * default with a TextDecoder that turns invalid UTF-8 into U+FFFD: a title sent as bytes
 * 0xFF 0xFE would be stored as "��" and answered as if that had been sent. A fatal decoder
 * makes such a body invalid_argument, as REST's body reader does.
 */
const options = {
  // connect-es's default, stated because the object needs one documented field.
  ignoreUnknownFields: true,
  textDecoder: new TextDecoder("utf-8", { fatal: true }),
};

export const RPC_JSON_OPTIONS: Partial<JsonReadOptions & JsonWriteOptions> = options;
