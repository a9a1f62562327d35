/**
 * The one boundary between deploy-time and run-time code, and no import cycle anywhere:
 * - `lib/` (the engine) imports only itself: no AWS SDK, CDK, Powertools or middy;
 * - `operations/` (what both sides share: environment names, default timeouts, audit field
 *   names, the alarm catalog and its queries) imports only itself and `lib/`, and no package;
 * - `functions/` (deployed handlers) never imports `cdk/` or `local/`;
 * - `cdk/` never imports `local/`, and `functions/` only where synth checks a deploy input with
 *   the handlers' own code ({@link CDK_USES_OF_FUNCTIONS});
 * - `local/` (developer CLI) never imports `cdk/`.
 * The walker and the rules are also run on small fixture trees, so each rule is seen to fail.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { type ImportGraph, importCycles, importGraph } from "../helpers/import-graph.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const FOLDERS = ["lib", "operations", "functions", "cdk", "local"] as const;

/**
 * The only `cdk/` → `functions/` edges: synth refuses a policy file that the handlers would
 * refuse, by running the handlers' own policy parser on it (one parser, no second copy).
 */
const CDK_USES_OF_FUNCTIONS: ReadonlySet<string> = new Set([
  "cdk/deploy-config.ts -> functions/policy/policy.ts",
]);

/**
 * Cycles that a branch being merged in parallel removes, each with that branch: the test
 * requires the cycles found to be exactly these, so a new cycle fails it, and so does an entry
 * whose cycle is gone (delete the entry then).
 */
const CYCLES_BEING_REMOVED: readonly string[] = [];

const folderOf = (file: string) => file.split("/")[0] as string;

/** Package names no module of a folder may load. */
const FORBIDDEN_PACKAGES: Record<string, (pkg: string) => boolean> = {
  lib: (pkg) => /^(@aws-sdk\/|aws-cdk-lib|constructs$|@aws-lambda-powertools\/|@middy\/)/.test(pkg),
  operations: (pkg) => !pkg.startsWith("node:"),
  functions: (pkg) => /^(aws-cdk-lib|constructs$|cdk-nag)/.test(pkg),
  local: (pkg) => /^(aws-cdk-lib|constructs$|cdk-nag)/.test(pkg),
};

/** Folders a folder may import from (its own included). */
const MAY_IMPORT: Record<string, readonly string[]> = {
  lib: ["lib"],
  operations: ["operations", "lib"],
  functions: ["functions", "operations", "lib"],
  cdk: ["cdk", "operations", "lib", "functions"],
  local: ["local", "functions", "operations", "lib"],
};

/** Every edge or package that breaks the boundary, as `from -> to` lines. */
function boundaryViolations(graph: ImportGraph): string[] {
  const found: string[] = [];
  for (const [file, { files, packages }] of graph) {
    const from = folderOf(file);
    for (const target of files) {
      const edge = `${file} -> ${target}`;
      const to = folderOf(target);
      const allowed = MAY_IMPORT[from]?.includes(to) ?? true;
      const cdkIntoFunctions = from === "cdk" && to === "functions";
      if (!allowed || (cdkIntoFunctions && !CDK_USES_OF_FUNCTIONS.has(edge))) found.push(edge);
    }
    for (const pkg of packages) {
      if (FORBIDDEN_PACKAGES[from]?.(pkg)) found.push(`${file} -> package ${pkg}`);
    }
  }
  return found.sort();
}

describe("the project's import graph", () => {
  const graph = importGraph(ROOT, FOLDERS);

  it("reads every folder, type-only and dynamic imports included", () => {
    // Assess: the walk found the modules and edges it must (a walker that reads nothing passes
    // every rule).
    expect(graph.get("functions/api.ts")?.files.length).toBeGreaterThan(0);
    expect(graph.get("cdk/constructs/monitoring.ts")?.files).toContain(
      "operations/alarm-catalog.ts",
    );
    // A type-only import: `import type { PolicyDocument }`.
    expect(graph.get("functions/config/config.ts")?.files).toContain("functions/policy/policy.ts");
    // A dynamic import: local mode loads the handler on demand.
    expect(graph.get("local/server.ts")?.files).toContain("functions/api.ts");
    for (const folder of FOLDERS) {
      expect([...graph.keys()].some((file) => file.startsWith(`${folder}/`))).toBe(true);
    }
  });

  it("has no import cycle", () => {
    const cycles = importCycles(graph).map((cycle) => cycle.join(" -> "));
    expect(cycles.sort()).toEqual([...CYCLES_BEING_REMOVED].sort());
  });

  it("keeps deploy-time, run-time and local code apart (operations/ is the shared part)", () => {
    expect(boundaryViolations(graph)).toEqual([]);
  });

  it("lists only cdk/ → functions/ edges that exist", () => {
    for (const edge of CDK_USES_OF_FUNCTIONS) {
      const [from, to] = edge.split(" -> ") as [string, string];
      expect(graph.get(from)?.files).toContain(to);
    }
  });
});

describe("the checks can fail", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "bssh-import-graph-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** Writes a fixture tree: path → source text. */
  function tree(name: string, files: Record<string, string>): string {
    const root = path.join(dir, name);
    for (const [file, text] of Object.entries(files)) {
      mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
      writeFileSync(path.join(root, file), text);
    }
    return root;
  }

  it("finds a cycle, type-only and through a re-export and a dynamic import", () => {
    // Prepare: a → b (type only) → c (re-export) → a (dynamic import); d stands apart.
    const root = tree("cycle", {
      "functions/a.ts": `import type { B } from "./b.ts";\nexport type A = B;\n`,
      "functions/b.ts": `export * from "../operations/c.ts";\nexport type B = 1;\n`,
      "operations/c.ts": `export const load = () => import("../functions/a.ts");\n`,
      "functions/d.ts": `import { load } from "../operations/c.ts";\nvoid load;\n`,
    });
    // Act
    const cycles = importCycles(importGraph(root, ["functions", "operations"]));
    // Assess
    expect(cycles).toEqual([
      ["functions/a.ts", "functions/b.ts", "operations/c.ts", "functions/a.ts"],
    ]);
  });

  it("flags a handler that imports the CDK app, and a shared module that imports a handler", () => {
    // Prepare
    const root = tree("boundary", {
      "cdk/catalog.ts": `import { Duration } from "aws-cdk-lib";\nexport const d = Duration;\n`,
      "functions/handler.ts": `import { d } from "../cdk/catalog.ts";\nexport const h = d;\n`,
      "operations/names.ts": `import { h } from "../functions/handler.ts";\nexport const n = h;\n`,
      "lib/engine.ts": `import { S3Client } from "@aws-sdk/client-s3";\nexport const e = S3Client;\n`,
    });
    // Act
    const found = boundaryViolations(importGraph(root, FOLDERS));
    // Assess
    expect(found).toEqual([
      "functions/handler.ts -> cdk/catalog.ts",
      "lib/engine.ts -> package @aws-sdk/client-s3",
      "operations/names.ts -> functions/handler.ts",
    ]);
  });

  it("refuses an import it cannot resolve (no edge is dropped silently)", () => {
    const root = tree("unresolved", { "lib/x.ts": `import "./missing.ts";\n` });
    expect(() => importGraph(root, ["lib"])).toThrow(/lib\/x.ts: cannot resolve "\.\/missing.ts"/);
  });
});
