import * as nodejs from "aws-cdk-lib/aws-lambda-nodejs";
import { type HandlerBundling, lazyChunkCommands } from "../bundling.ts";

/** {@link HandlerBundling} as `NodejsFunction` bundling props (local esbuild, never Docker). */
export function nodejsBundling(b: HandlerBundling): nodejs.BundlingOptions {
  return {
    format: nodejs.OutputFormat.CJS,
    target: b.target,
    minify: b.minify,
    sourceMap: b.sourceMap,
    sourcesContent: b.sourcesContent,
    externalModules: [...b.externalModules],
    forceDockerBundling: false,
    ...(b.lazyChunk
      ? {
          commandHooks: {
            beforeBundling: () => [],
            beforeInstall: () => [],
            afterBundling: (_inputDir: string, outputDir: string) => lazyChunkCommands(outputDir),
          },
        }
      : {}),
  };
}
