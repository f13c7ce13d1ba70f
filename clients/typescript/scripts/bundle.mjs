// Builds the pages Rally embeds (crates/rally-server/web/) from web/ and src/.
// `node scripts/bundle.mjs --check` builds into a temporary folder and fails when the
// committed files differ from what the sources build (CI runs it), so the committed
// bundle can never drift from the TypeScript it claims to come from.
import { build } from "esbuild";
import { mkdtempSync, readFileSync, writeFileSync, readdirSync, rmSync, copyFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..");
const target = join(root, "../../crates/rally-server/web");
const check = process.argv.includes("--check");
const out = check ? mkdtempSync(join(tmpdir(), "rally-web-")) : target;

for (const name of ["arena", "tictactoe", "dashboard"]) {
  await build({
    entryPoints: [join(root, "web", `${name}.ts`)],
    outfile: join(out, `${name}.js`),
    bundle: true,
    format: "esm",
    minify: true,
    target: ["es2022"],
    legalComments: "none",
    charset: "utf8",
    logLevel: "warning",
  });
}
for (const f of ["index.html", "tictactoe.html", "dashboard.html", "style.css"]) {
  copyFileSync(join(root, "web", f), join(out, f));
}
// uPlot's own stylesheet first, then the dashboard's.
writeFileSync(
  join(out, "dashboard.css"),
  readFileSync(join(root, "node_modules/uplot/dist/uPlot.min.css"), "utf8") +
    "\n" +
    readFileSync(join(root, "web/dashboard.css"), "utf8"),
);

if (check) {
  const differ = readdirSync(out).filter((f) => {
    let committed;
    try {
      committed = readFileSync(join(target, f));
    } catch {
      return true;
    }
    return !committed.equals(readFileSync(join(out, f)));
  });
  rmSync(out, { recursive: true, force: true });
  if (differ.length > 0) {
    console.error(`crates/rally-server/web is stale: ${differ.join(", ")} differ from the sources; run npm run bundle`);
    process.exit(1);
  }
  console.log("crates/rally-server/web matches its sources");
}
