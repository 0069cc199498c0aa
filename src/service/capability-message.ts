import { create } from "@bufbuild/protobuf";
import { CapabilityConfigSchema, type CapabilityConfig } from "../../gen/sessions/v1/session_pb.js";
import type { CapabilityRecord } from "../store/store.js";

/** Capabilities of a request (session or agent) as the store keeps them. */
export function capabilityRecords(capabilities: readonly CapabilityConfig[]): CapabilityRecord[] {
  return capabilities.map((c) => ({ capabilityId: c.capabilityId, config: c.config }));
}

/** Stored capabilities as the API shows them; a capability without config has none. */
export function capabilityMessages(records: readonly CapabilityRecord[]): CapabilityConfig[] {
  // The store's JSON object is exactly protobuf-es's Struct shape (a plain JsonObject).
  return records.map((c) => create(CapabilityConfigSchema, { capabilityId: c.capabilityId, config: c.config as never }));
}
