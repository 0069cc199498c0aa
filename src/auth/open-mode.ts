import { isIP } from "node:net";

/** Whether a listen address only accepts connections from this machine. */
export function isLoopbackHost(host: string): boolean {
  if (host === "localhost") return true;
  if (isIP(host) === 4) return host.startsWith("127.");
  const bare = host.replace(/^\[|\]$/g, "").toLowerCase();
  return bare === "::1" || bare === "0:0:0:0:0:0:0:1" || /^::ffff:127\./.test(bare);
}

/**
 * Why the server must not start in open mode (no API keys) on this host, or undefined
 * when it may. Open mode serves every caller as the default organisation: fine on a
 * developer's loopback address, a data leak anywhere else.
 */
export function openModeRefusal(host: string, hasKeys: boolean, insecureOpen: boolean): string | undefined {
  if (hasKeys || insecureOpen || isLoopbackHost(host)) return undefined;
  return (
    `refusing to listen on ${host} with no API keys: anyone who can reach it would act as the default organisation. ` +
    `Create a key (npm run keys -- create --org org_<32 hex>), listen on 127.0.0.1, or pass --insecure-open`
  );
}
