/**
 * Cold start: an esbuild CJS bundle of the Lambda entry (as Lambda would load it), its size,
 * and whole-process time to `require` it vs `node -e 0` (interleaved spawns, medians).
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, statSync } from "node:fs";
import path from "node:path";
import { build } from "esbuild";

export interface BundleResult {
  label: string;
  entry: string;
  file: string;
  bytes: number;
  /** Whole-process ms: `node -e 'require(bundle)'`. */
  require: number[];
}

export interface ColdStartResult {
  baseline: number[];
  bundles: BundleResult[];
}

const ROOT = path.resolve(import.meta.dirname, "..");
const OUT = path.join(ROOT, ".bench");

async function bundle(label: string, entry: string, external: string[]): Promise<BundleResult> {
  mkdirSync(OUT, { recursive: true });
  const file = path.join(OUT, `${label}.cjs`);
  await build({
    entryPoints: [entry],
    outfile: file,
    bundle: true,
    platform: "node",
    target: "node20",
    format: "cjs",
    minify: true,
    legalComments: "none",
    logLevel: "error",
    // ssh2's optional native parts: without them it falls back to pure JS (field notes).
    external: ["cpu-features", "*.node", ...external],
  });
  return {
    label,
    entry: path.relative(ROOT, entry),
    file,
    bytes: statSync(file).size,
    require: [],
  };
}

function spawnMs(args: string[]): number {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, args, { stdio: ["ignore", "ignore", "pipe"], cwd: OUT });
  const elapsed = performance.now() - t0;
  if (r.status !== 0) throw new Error(`node ${args.join(" ")} failed: ${r.stderr}`);
  return elapsed;
}

export async function measureColdStart(spawns: number): Promise<ColdStartResult> {
  const task = path.join(ROOT, "functions", "task.ts");
  const entry = existsSync(task) ? task : path.join(ROOT, "lib", "index.ts");
  const bundles = [
    await bundle("lambda-task", entry, []),
    // The Lambda Node.js runtime ships AWS SDK v3: the usual deployment leaves it out.
    await bundle("lambda-task-sdk-external", entry, ["@aws-sdk/*"]),
    await bundle("engine-only", path.join(ROOT, "lib", "index.ts"), []),
  ];
  const baseline: number[] = [];
  for (let i = 0; i < spawns + 2; i++) {
    const b = spawnMs(["-e", "0"]);
    if (i >= 2) baseline.push(b);
    for (const bun of bundles) {
      const ms = spawnMs(["-e", `require(${JSON.stringify(bun.file)})`]);
      if (i >= 2) bun.require.push(ms);
    }
  }
  return { baseline, bundles };
}
