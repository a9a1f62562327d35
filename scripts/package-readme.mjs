// The package's README (PACKAGE-README.md) is the tarball's README.md; the repository's README
// stays the repository's. npm always packs the root README.md (it cannot be excluded or
// renamed), so `prepack` swaps the package README in as its last step and `postpack` puts the
// repository's back: the window is the tarball write alone. A swap left behind by a pack that
// died is undone by the next `swap` or `restore`.
//
// Usage: node scripts/package-readme.mjs swap|restore
import { copyFileSync, existsSync, renameSync } from "node:fs";

const REPO = "README.md";
const SAVED = ".README.repo.md";
const PACKAGE = "PACKAGE-README.md";

const restore = () => {
  if (existsSync(SAVED)) renameSync(SAVED, REPO);
};

const action = process.argv[2];
if (action === "swap") {
  restore();
  copyFileSync(REPO, SAVED);
  copyFileSync(PACKAGE, REPO);
} else if (action === "restore") {
  restore();
} else {
  console.log("usage: node scripts/package-readme.mjs swap|restore (npm pack runs it)");
  process.exitCode = action === "--help" || action === "-h" ? 0 : 2;
}
