/**
 * The API key lives in sessionStorage only: it is gone when the tab closes, and other tabs
 * and later visits never see it. Storage can be unavailable (privacy settings): then no key
 * is kept, and every call goes without one.
 */
export const API_KEY_STORAGE_KEY = "sessions-api-key";

export function storedApiKey(): string | undefined {
  try {
    return sessionStorage.getItem(API_KEY_STORAGE_KEY) ?? undefined;
  } catch {
    return undefined;
  }
}

/** Returns false when the browser refuses to store it. */
export function storeApiKey(key: string): boolean {
  try {
    sessionStorage.setItem(API_KEY_STORAGE_KEY, key);
    return true;
  } catch {
    return false;
  }
}

export function forgetApiKey(): void {
  try {
    sessionStorage.removeItem(API_KEY_STORAGE_KEY);
  } catch {
    // Nothing was stored.
  }
}
