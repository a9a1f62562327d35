/**
 * The README's folder map lists every folder (top level and one below) that holds a tracked
 * file, so a reader finds each one and a new folder cannot go unmentioned.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = path.resolve(import.meta.dirname, "../..");

/** Every folder at depth 1 or 2 on the path of a tracked (or new, unignored) file. */
function folders(): string[] {
  const files = execFileSync("git", ["ls-files", "--cached", "--others", "--exclude-standard"], {
    cwd: ROOT,
    encoding: "utf8",
  })
    .split("\n")
    .filter((f) => f !== "");
  const found = new Set<string>();
  for (const file of files) {
    const parts = file.split("/").slice(0, -1);
    for (let depth = 1; depth <= Math.min(2, parts.length); depth++) {
      found.add(parts.slice(0, depth).join("/"));
    }
  }
  return [...found].sort();
}

describe("README", () => {
  it("names every folder as `folder/`", () => {
    const readme = readFileSync(path.join(ROOT, "README.md"), "utf8");
    const all = folders();
    // The walk saw the tree (a walk that finds nothing would pass).
    expect(all).toEqual(expect.arrayContaining(["lib", "lib/session", "local", "operations"]));
    expect(all.filter((folder) => !readme.includes(`\`${folder}/\``))).toEqual([]);
  });
});
