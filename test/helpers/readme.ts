import { readFileSync } from "node:fs";

/** README.md as it stands in the repository. */
export const README = readFileSync(new URL("../../README.md", import.meta.url), "utf8");

/** The fenced blocks of one language (```sh, ```js) in a `## section` of the README, in order. */
export function readmeBlocks(section: string, language: string): string[] {
  const start = README.indexOf(`## ${section}`);
  if (start === -1) throw new Error(`README has no section "## ${section}"`);
  const end = README.indexOf("\n## ", start + 1);
  const text = README.slice(start, end === -1 ? undefined : end);
  return [...text.matchAll(new RegExp("```" + language + "\\n([\\s\\S]*?)```", "g"))].map((m) => m[1]!);
}
