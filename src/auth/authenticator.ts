import { Code, ConnectError } from "@connectrpc/connect";
import type { ApiKeyRecord, KeyStore } from "../store/store.js";
import { parseApiKey, secretMatches } from "./api-key.js";
import { TurnMemo } from "./turn-memo.js";

/** Who a request acts for. */
export interface Caller {
  readonly orgId: string;
  /** The key used; undefined in open mode. */
  readonly keyId: string | undefined;
}

/** The organisation of every caller while the database holds no keys (open mode). */
export const DEFAULT_ORG_ID = "org_00000000000000000000000000000001";

/** What a request without a key is told once keys exist. */
export const MISSING_KEY_MESSAGE = "missing API key: send Authorization: Bearer <key>";

/** The WWW-Authenticate of every unauthenticated answer. */
export const REALM_HEADER = 'Bearer realm="sessions"';

/** last_used_at is written at most this often per key, so reads do not each cost a write. */
const TOUCH_INTERVAL_MS = 60_000;

/**
 * Turns a request's `Authorization: Bearer <key>` into a Caller. While the database has
 * never held a key, every request is the default organisation (open mode; the server only
 * starts so on a loopback address unless told otherwise). Once any key exists — revoked
 * ones included — every request needs a valid, unrevoked key: revoking the last key
 * locks the server, it never reopens it. Keys are looked up afresh in every event-loop turn
 * (see TurnMemo), so a key created or revoked from the command line applies from the next
 * request on.
 */
export class Authenticator {
  private keysExist = false;
  private readonly lastTouch = new Map<string, number>();
  private readonly keysExistNow = new TurnMemo<"any", boolean>();
  private readonly keysNow = new TurnMemo<string, ApiKeyRecord | undefined>();

  constructor(
    private readonly keys: KeyStore,
    private readonly now: () => number = Date.now,
  ) {}

  async authenticate(headers: Headers): Promise<Caller> {
    if (!this.keysExist) {
      this.keysExist = await this.keysExistNow.get("any", () => this.keys.hasKeys());
      if (!this.keysExist) return { orgId: DEFAULT_ORG_ID, keyId: undefined };
    }
    const header = headers.get("authorization");
    if (header === null) throw unauthenticated(MISSING_KEY_MESSAGE);
    const match = /^Bearer +(\S+) *$/i.exec(header);
    if (!match) throw unauthenticated("malformed Authorization header: expected Bearer <key>");
    const parsed = parseApiKey(match[1]!);
    // One message for every kind of bad key: which part was wrong is the attacker's business.
    const invalid = () => unauthenticated("invalid API key");
    if (!parsed) throw invalid();
    const key = await this.keysNow.get(parsed.id, () => this.keys.findKey(parsed.id));
    if (!key || key.revokedAt !== undefined || !secretMatches(parsed.secret, key.secretHash)) throw invalid();
    await this.touch(key.id);
    return { orgId: key.orgId, keyId: key.id };
  }

  private async touch(keyId: string): Promise<void> {
    const now = this.now();
    if (now - (this.lastTouch.get(keyId) ?? -Infinity) < TOUCH_INTERVAL_MS) return;
    this.lastTouch.set(keyId, now);
    try {
      await this.keys.touchKey(keyId, now);
    } catch {
      // Best effort: a full disk must not turn every read into a failure.
    }
  }
}

function unauthenticated(message: string): ConnectError {
  return new ConnectError(message, Code.Unauthenticated, { "www-authenticate": REALM_HEADER });
}
