import { restErrors } from "./errors.js";

/**
 * Parses a query string as application/x-www-form-urlencoded does (pairs split on "&", the
 * first "=" ends the name, "+" is a space), but strictly. URLSearchParams keeps a malformed
 * escape such as "%zz" as literal text and turns invalid UTF-8 such as "%FF" into U+FFFD,
 * so a filter would silently match something other than what was sent. Throws
 * invalid_argument naming the parameter instead; never returns a replaced character.
 */
export function parseQueryString(query: string): URLSearchParams {
  const params = new URLSearchParams();
  for (const pair of query.split("&")) {
    if (pair === "") continue;
    const eq = pair.indexOf("=");
    const rawName = eq === -1 ? pair : pair.slice(0, eq);
    const name = decodeComponent(rawName, rawName);
    params.append(name, eq === -1 ? "" : decodeComponent(pair.slice(eq + 1), name));
  }
  return params;
}

function decodeComponent(text: string, name: string): string {
  try {
    return decodeURIComponent(text.replaceAll("+", " "));
  } catch {
    throw restErrors.invalidQuery(name, "malformed percent-encoding or invalid UTF-8");
  }
}
