/**
 * How every Lambda handler is bundled: the one source of the esbuild options that the CDK
 * `NodejsFunction`s pass (`cdk/constructs/ssh-function.ts`, `cdk/monitoring/enrichment.ts`)
 * and that `bench/coldstart.ts` builds with, so the bench measures what is deployed.
 *
 * Packages the engine handlers only load on first use (ssh2, ≈ 300 KB with its crypto helpers;
 * the Powertools logger, idempotency and metrics, ≈ 80 KB) are not in the handler's file:
 * compiling them at init was most of what a cold start still paid (docs/benchmarks.md, "Cold
 * start"). They are built into one chunk, shipped in the asset under `node_modules/`, with a
 * stub at each import path the handler `require`s; the handlers import the modules that use
 * them lazily (the engine at invocation start), so the chunk is compiled while the first
 * invocation waits on the network. The chunk holds third-party packages only, never a module
 * of this project, so `instanceof` on `lib/errors.ts` classes sees one copy of each class;
 * one chunk for all entry points keeps each package's own internals (ssh2's protocol, the
 * Powertools commons) single.
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

/** Packages that go to the lazy chunk, as esbuild `external` patterns of the handler file. */
const LAZY_PACKAGES = ["ssh2", "@aws-lambda-powertools/*"];

/**
 * Every import path of a {@link LAZY_PACKAGES} package that the handlers use (`lib/session/ssh2.ts`,
 * `functions/audit/`, `functions/idempotency/`, `functions/metrics/emf.ts`),
 * each re-exported from the chunk by a stub of the same path. A path missing here fails the
 * asset test (`test/cdk/bundling.test.ts` compares it with the bundle's `require` calls).
 */
export const LAZY_MODULES = {
  ssh2Client: "ssh2/lib/client.js",
  ssh2KeyParser: "ssh2/lib/protocol/keyParser.js",
  ssh2Constants: "ssh2/lib/protocol/constants.js",
  ssh2Utils: "ssh2/lib/protocol/utils.js",
  logger: "@aws-lambda-powertools/logger",
  metrics: "@aws-lambda-powertools/metrics",
  idempotency: "@aws-lambda-powertools/idempotency",
  idempotencyDynamodb: "@aws-lambda-powertools/idempotency/dynamodb",
} as const;

/** Where the chunk goes, relative to the asset (output) directory. */
export const LAZY_CHUNK = "node_modules/.lazy/chunk.js";

/** The stub file Node resolves for an import path (a package root resolves to its index.js). */
export function stubPath(specifier: string): string {
  if (specifier.endsWith(".js")) return specifier;
  const parts = specifier.split("/");
  const rootLength = specifier.startsWith("@") ? 2 : 1;
  return parts.length === rootLength ? `${specifier}/index.js` : `${specifier}.js`;
}

/** The options of one handler bundle, in `NodejsFunction` terms (see {@link esbuildOptions}). */
export interface HandlerBundling {
  readonly target: string;
  readonly minify: boolean;
  readonly sourceMap: boolean;
  readonly sourcesContent: boolean;
  readonly externalModules: readonly string[];
  /** Whether the lazily used packages go to their own chunk ({@link lazyChunkCommands}). */
  readonly lazyChunk: boolean;
}

/**
 * A handler bundle's options. `lazyChunk` for the handlers that run the engine (api, task);
 * the alarm enrichment uses none of those packages.
 */
export function handlerBundling(options: { lazyChunk: boolean }): HandlerBundling {
  return {
    target: NODE_TARGET,
    minify: true,
    sourceMap: true,
    sourcesContent: false,
    externalModules: [
      ...NATIVE_EXTERNALS,
      ...SDK_EXTERNALS,
      ...(options.lazyChunk ? LAZY_PACKAGES : []),
    ],
    lazyChunk: options.lazyChunk,
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
 * Shell commands that build the lazy chunk into `outputDir` and write one stub per
 * {@link LAZY_MODULES} entry (`NodejsFunction` `commandHooks.afterBundling`; the bench runs the
 * same commands). Local esbuild only: `cdk synth` works offline.
 */
export function lazyChunkCommands(outputDir: string): string[] {
  const entries = Object.entries(LAZY_MODULES);
  // Getters: each package's graph is evaluated when its stub is first required, not when the
  // chunk is (the engine must not load the idempotency layer, and with it the DynamoDB SDK).
  const entry = `module.exports={${entries.map(([k, m]) => `get ${k}(){return require(${JSON.stringify(m)})}`).join(",")}};`;
  const esbuild = path.join(ROOT, "node_modules", ".bin", "esbuild");
  const chunk = path.join(outputDir, LAZY_CHUNK);
  const commands = [
    [
      // stdin entries resolve from the working directory: the packages of this project.
      `(cd ${quote(ROOT)} && printf '%s' ${quote(entry)} |`,
      quote(esbuild),
      // No source map for the third-party chunk: frames inside ssh2/Powertools stay minified
      // (ssh2's errors are translated by lib/errors.ts anyway); the handler file's own frames
      // are mapped on demand by functions/audit/source-mapped-stack.ts.
      "--bundle --platform=node --format=cjs --minify --log-level=error",
      `--target=${NODE_TARGET}`,
      ...[...NATIVE_EXTERNALS, ...SDK_EXTERNALS].map((e) => `--external:${quote(e)}`),
      `--outfile=${quote(chunk)})`,
    ].join(" "),
  ];
  for (const [k, m] of entries) {
    const file = path.join(outputDir, "node_modules", stubPath(m));
    const rel = path.relative(path.dirname(file), chunk);
    commands.push(
      `mkdir -p ${quote(path.dirname(file))} && printf '%s' ${quote(`module.exports=require(${JSON.stringify(`./${rel}`)}).${k};`)} > ${quote(file)}`,
    );
  }
  return commands;
}
