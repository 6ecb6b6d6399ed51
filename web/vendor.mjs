// Copy the files the live page needs from node_modules into the Python package, with their
// licences, so that `pip install .` ships them and nothing loads from a CDN at run time.
// Refresh: cd web && npm ci && npm run vendor   (then commit streams/web/static/vendor)
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const vendor = join(here, "..", "streams", "web", "static", "vendor");
const leaflet = join(here, "node_modules", "leaflet");
const version = JSON.parse(readFileSync(join(leaflet, "package.json"), "utf8")).version;

const out = join(vendor, "leaflet");
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
for (const file of ["dist/leaflet.js", "dist/leaflet.css", "LICENSE"]) {
  cpSync(join(leaflet, file), join(out, file.replace("dist/", "")));
}
cpSync(join(leaflet, "dist", "images"), join(out, "images"), { recursive: true });
writeFileSync(join(out, "VERSION"), `${version}\n`);
console.log(`vendored leaflet ${version} into ${out}`);
