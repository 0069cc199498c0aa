import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { ApiKeyRecord } from "../store/store.js";

/**
 * API keys look like `sk_<32 hex>_<43 base64url>`: the hex is the key's id (shown by
 * `keys list`, stored in clear), the rest is 256 random bits of secret, of which only a
 * SHA-256 is stored. A fast hash is right here: the secret is random, not a password, so
 * there is nothing to guess that a slow hash would protect.
 */
const KEY_FORM = /^sk_([0-9a-f]{32})_([A-Za-z0-9_-]{43})$/;

export interface NewApiKey {
  /** What the store keeps. */
  readonly record: ApiKeyRecord;
  /** The key to hand to the user, once. */
  readonly key: string;
}

export function generateApiKey(orgId: string, name: string, now: number): NewApiKey {
  const idHex = randomBytes(16).toString("hex");
  const secret = randomBytes(32).toString("base64url");
  return {
    record: {
      id: `key_${idHex}`,
      orgId,
      name,
      secretHash: hashSecret(secret),
      createdAt: now,
      lastUsedAt: undefined,
      revokedAt: undefined,
    },
    key: `sk_${idHex}_${secret}`,
  };
}

/** The id and secret of a key, or undefined when the text is not of the key form. */
export function parseApiKey(text: string): { id: string; secret: string } | undefined {
  const match = KEY_FORM.exec(text);
  return match ? { id: `key_${match[1]}`, secret: match[2]! } : undefined;
}

export function hashSecret(secret: string): Uint8Array {
  return createHash("sha256").update(secret).digest();
}

/** Constant-time comparison of a presented secret with a stored hash. */
export function secretMatches(secret: string, hash: Uint8Array): boolean {
  const presented = hashSecret(secret);
  return presented.length === hash.length && timingSafeEqual(presented, hash);
}
