// Bundles the server into dist/main.js for `npm start`, which runs it with plain node:
// running the TypeScript through tsx's loader cost ~35 MiB of resident memory (the loader's
// own thread) and start-up time in every server. Dependencies stay external, loaded from
// node_modules as usual. Each file is written whole and renamed into place, so a server
// starting while another build runs never reads half a file.
import { build } from "esbuild";
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const result = await build({
  absWorkingDir: root,
  entryPoints: ["src/main.ts"],
  outfile: "dist/main.js",
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  packages: "external",
  write: false,
  logLevel: "warning",
});
mkdirSync(`${root}/dist`, { recursive: true });
for (const file of result.outputFiles) {
  const partial = `${file.path}.${process.pid}.partial`;
  writeFileSync(partial, file.contents);
  renameSync(partial, file.path);
}
