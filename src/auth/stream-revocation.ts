import { Code, ConnectError } from "@connectrpc/connect";
import type { KeyStore } from "../store/store.js";
import type { StreamCaps } from "../service/stream-caps.js";
import { MISSING_KEY_MESSAGE, REALM_HEADER } from "./authenticator.js";

/**
 * Every `intervalMs`, looks up afresh the key of each open long-lived stream (one lookup per
 * distinct key, whatever the number of streams) and ends the streams of a key that has been
 * revoked or removed since — by `keys revoke` from another process as well — with
 * unauthenticated. Streams opened in open mode end the same way once a key exists, since
 * from then on every request needs one. A store that cannot answer ends nothing (new
 * requests fail on it anyway); `onError` hears of it. Returns the function that stops it.
 */
export function endStreamsOfRevokedKeys(
  streams: StreamCaps,
  keys: KeyStore,
  intervalMs: number,
  onError: (err: unknown) => void,
): () => void {
  let running = false;
  const check = async () => {
    const callers = streams.callers();
    for (const caller of callers) {
      const { keyId } = caller;
      if (keyId === undefined) {
        if (await keys.hasKeys()) {
          streams.end((scope) => scope.caller !== undefined && scope.caller.keyId === undefined, unauthenticated(MISSING_KEY_MESSAGE));
        }
        continue;
      }
      const key = await keys.findKey(keyId);
      if (key === undefined || key.revokedAt !== undefined) {
        streams.end((scope) => scope.caller?.keyId === keyId, unauthenticated("API key revoked"));
      }
    }
  };
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    check()
      .catch(onError)
      .finally(() => (running = false));
  }, intervalMs);
  // A stopping server waits for nothing here.
  timer.unref();
  return () => clearInterval(timer);
}

function unauthenticated(message: string): ConnectError {
  return new ConnectError(message, Code.Unauthenticated, { "www-authenticate": REALM_HEADER });
}
