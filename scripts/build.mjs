// Builds what `npm start` serves, in one step:
// - dist/main.js, the server bundled for plain node: running the TypeScript through tsx's
//   loader cost ~35 MiB of resident memory (the loader's own thread) and start-up time in
//   every server. Dependencies stay external, loaded from node_modules as usual.
// - dist/web/, the browser console: src/web/main.ts and its CSS bundled with content-hashed
//   names (cached for good by browsers), and index.html pointing at them.
// Each file is written whole and renamed into place, index.html after the assets it names,
// so a server starting while another build runs never reads half a file or a page whose
// script is missing.
import { build } from "esbuild";
import { mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const webOut = join(root, "dist/web");

/** Writes next to the target, then renames: readers see the old file or the new one, never a part. */
function writeAtomically(path, contents) {
  const partial = `${path}.${process.pid}.partial`;
  writeFileSync(partial, contents);
  renameSync(partial, path);
}

const [server, web] = await Promise.all([
  build({
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
  }),
  build({
    absWorkingDir: root,
    entryPoints: { app: "src/web/main.ts" },
    outdir: "dist/web",
    entryNames: "[name]-[hash]",
    assetNames: "[name]-[hash]",
    bundle: true,
    platform: "browser",
    format: "esm",
    target: "es2022",
    minify: true,
    sourcemap: true,
    metafile: true,
    write: false,
    logLevel: "warning",
  }),
]);

mkdirSync(webOut, { recursive: true });
for (const file of [...server.outputFiles, ...web.outputFiles]) writeAtomically(file.path, file.contents);

// The entry point's outputs: its script and the CSS it imports.
const entry = Object.entries(web.metafile.outputs).find(([, output]) => output.entryPoint === "src/web/main.ts");
if (!entry) throw new Error("build: esbuild reported no output for src/web/main.ts");
const script = basename(entry[0]);
const stylesheet = entry[1].cssBundle ? basename(entry[1].cssBundle) : undefined;
if (!stylesheet) throw new Error("build: src/web/main.ts imports no CSS (expected ./style.css)");

// src/web/index.html names "app.js" and "app.css"; each must appear exactly once.
let html = readFileSync(join(root, "src/web/index.html"), "utf8");
for (const [placeholder, name] of [["app.js", script], ["app.css", stylesheet]]) {
  const attribute = `"${placeholder}"`;
  if (html.split(attribute).length !== 2) throw new Error(`build: src/web/index.html must name ${attribute} exactly once`);
  html = html.replace(attribute, `"/${name}"`);
}
writeAtomically(join(webOut, "index.html"), html);

// Assets of earlier builds: nothing names them any more.
const current = new Set(["index.html", ...web.outputFiles.map((file) => basename(file.path))]);
for (const name of readdirSync(webOut)) {
  if (!current.has(name) && !name.endsWith(".partial")) rmSync(join(webOut, name), { force: true });
}
