/**
 * How every Lambda handler is bundled: the one source of the esbuild options that the CDK
 * `NodejsFunction`s pass (`cdk/constructs/ssh-function.ts`, `cdk/monitoring/enrichment.ts`)
 * and that `bench/coldstart.ts` builds with, so the bench measures what is deployed.
 *
 * ssh2 (≈ 300 KB with its crypto helpers, two thirds of a handler bundle) is not in the
 * handler's file: compiling it at init was most of what a cold start still paid
 * (docs/benchmarks.md, "Cold start"). It is built into one chunk of its own, shipped in the
 * asset as `node_modules/ssh2/`, and `require`d only when the engine first loads (the handlers
 * import the engine lazily, at invocation start). The chunk holds ssh2 and its dependencies
 * only, never a module of this project, so `instanceof` on `lib/errors.ts` classes sees one
 * copy of each class; one chunk for all three entry points keeps ssh2's own internals single.
 *
 * Pure data and shell text: no aws-cdk-lib or esbuild import, so the bench and tests use it too.
 */
import path from "node:path";

const ROOT = path.resolve(import.meta.dirname, "..");

/** The runtime the functions run on (`lambda.Runtime.NODEJS_24_X`). */
export const NODE_TARGET = "node24";

/** ssh2's optional native parts: without them it falls back to pure JS. */
const NATIVE_EXTERNALS = ["cpu-features", "*.node"];

/** The AWS SDK v3 ships with the nodejs24.x runtime (CDK's default external, kept). */
const SDK_EXTERNALS = ["@aws-sdk/*"];

/**
 * The ssh2 modules the engine imports (`lib/session/ssh2.ts`), each re-exported from the chunk
 * under a stub of the same path. A module missing here fails the asset test
 * (`test/cdk/bundling.test.ts` compares it with the bundle's `require` calls).
 */
export const SSH2_MODULES = {
  client: "ssh2/lib/client.js",
  keyParser: "ssh2/lib/protocol/keyParser.js",
  utils: "ssh2/lib/protocol/utils.js",
} as const;

/** Where the chunk goes, relative to the asset (output) directory. */
export const SSH2_CHUNK = "node_modules/ssh2/chunk.js";

/** The options of one handler bundle, in `NodejsFunction` terms (see {@link esbuildOptions}). */
export interface HandlerBundling {
  readonly target: string;
  readonly minify: boolean;
  readonly sourceMap: boolean;
  readonly sourcesContent: boolean;
  readonly externalModules: readonly string[];
  /** Whether ssh2 goes to its own chunk ({@link ssh2ChunkCommands} after bundling). */
  readonly ssh2Chunk: boolean;
}

/**
 * A handler bundle's options. `ssh2Chunk` for handlers that run the engine (api, task); the
 * alarm enrichment has no ssh2 in its graph.
 */
export function handlerBundling(options: { ssh2Chunk: boolean }): HandlerBundling {
  return {
    target: NODE_TARGET,
    minify: true,
    sourceMap: true,
    sourcesContent: false,
    externalModules: [
      ...(options.ssh2Chunk ? [...NATIVE_EXTERNALS, "ssh2"] : NATIVE_EXTERNALS),
      ...SDK_EXTERNALS,
    ],
    ssh2Chunk: options.ssh2Chunk,
  };
}

/**
 * The same options as esbuild build options, mapped the way `NodejsFunction` maps its
 * `bundling` props to esbuild's command line (CJS, platform node, bundle).
 */
export function esbuildOptions(
  b: HandlerBundling,
  entry: string,
  outfile: string,
): {
  entryPoints: string[];
  outfile: string;
  bundle: true;
  platform: "node";
  format: "cjs";
  target: string;
  minify: boolean;
  sourcemap: boolean;
  sourcesContent: boolean;
  external: string[];
  logLevel: "error";
} {
  return {
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: "node",
    format: "cjs",
    target: b.target,
    minify: b.minify,
    sourcemap: b.sourceMap,
    sourcesContent: b.sourcesContent,
    external: [...b.externalModules],
    logLevel: "error",
  };
}

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * Shell commands that build the ssh2 chunk into `outputDir` and write one stub per
 * {@link SSH2_MODULES} entry (`NodejsFunction` `commandHooks.afterBundling`; the bench runs the
 * same commands). Local esbuild only: `cdk synth` works offline.
 */
export function ssh2ChunkCommands(outputDir: string): string[] {
  const entries = Object.entries(SSH2_MODULES);
  const entry = `module.exports={${entries.map(([k, m]) => `${k}:require(${JSON.stringify(m)})`).join(",")}};`;
  const esbuild = path.join(ROOT, "node_modules", ".bin", "esbuild");
  const commands = [
    [
      // stdin entries resolve from the working directory: ssh2 from this project's node_modules.
      `(cd ${quote(ROOT)} && printf '%s' ${quote(entry)} |`,
      quote(esbuild),
      "--bundle --platform=node --format=cjs --minify --log-level=error",
      `--target=${NODE_TARGET}`,
      ...NATIVE_EXTERNALS.map((e) => `--external:${quote(e)}`),
      `--outfile=${quote(path.join(outputDir, SSH2_CHUNK))})`,
    ].join(" "),
  ];
  for (const [k, m] of entries) {
    const file = path.join(outputDir, "node_modules", m);
    const rel = path.relative(path.dirname(file), path.join(outputDir, SSH2_CHUNK));
    commands.push(
      `mkdir -p ${quote(path.dirname(file))} && printf '%s' ${quote(`module.exports=require(${JSON.stringify(`./${rel}`)}).${k};`)} > ${quote(file)}`,
    );
  }
  return commands;
}
