/**
 * Local mode (local/) and the CDK app (cdk/) are never part of a deployed handler: the esbuild
 * metafile of each deployed entry point, bundled as the CDK app bundles it (CJS, AWS SDK
 * external), lists no file under local/ or cdk/ and no aws-cdk-lib module. A static or dynamic
 * import of either anywhere on a handler's import graph fails this test.
 */
import { relative, resolve } from "node:path";
import { build } from "esbuild";
import { describe, expect, it } from "vitest";

const ROOT = resolve(import.meta.dirname, "../..");
const DEPLOYED = ["functions/api.ts", "functions/task.ts", "functions/alarm-enrichment/handler.ts"];

/** Bundles `entry` (a path, or source text standing for a handler) and lists its inputs. */
async function bundledInputs(entry: string | { contents: string }): Promise<string[]> {
  const result = await build({
    ...(typeof entry === "string"
      ? { entryPoints: [resolve(ROOT, entry)] }
      : { stdin: { contents: entry.contents, resolveDir: ROOT, loader: "ts" as const } }),
    absWorkingDir: ROOT,
    bundle: true,
    write: false,
    metafile: true,
    platform: "node",
    format: "cjs",
    target: "node24",
    external: ["cpu-features", "*.node", "@aws-sdk/*"],
    logLevel: "silent",
  });
  return Object.keys(result.metafile.inputs).map((input) =>
    relative(ROOT, resolve(ROOT, input)).split("\\").join("/"),
  );
}

/** A bundle input that no deployed handler may hold: local mode, the CDK app or aws-cdk-lib. */
function deployTimeOrLocal(input: string): boolean {
  return (
    input.startsWith("local/") ||
    input.startsWith("cdk/") ||
    input.startsWith("node_modules/aws-cdk-lib/")
  );
}

describe("deployed handlers", () => {
  it.each(DEPLOYED)("%s never bundles local mode or the CDK app", async (entry) => {
    // Act
    const inputs = await bundledInputs(entry);
    // Assess: the walk reached the handler's own modules, and none of local mode or cdk/.
    expect(inputs).toContain(entry);
    expect(inputs.filter(deployTimeOrLocal)).toEqual([]);
  });

  it("sees local mode when a handler loads it lazily (the check can fail)", async () => {
    // Prepare: what functions/ did before: the runtime imported local mode on demand.
    const handler = {
      contents: `export const runtime = () => import("./local/local-config.ts");`,
    };
    // Act
    const inputs = await bundledInputs(handler);
    // Assess
    expect(inputs.filter(deployTimeOrLocal)).toContain("local/local-config.ts");
  });

  it("sees the CDK app when a handler imports it (the check can fail)", async () => {
    // Prepare: a handler that reads the CDK app's bundling table (pure data, so the bundle
    // stays quick to build; a module with aws-cdk-lib in it is refused the same way).
    const handler = { contents: `export { NODE_TARGET } from "./cdk/bundling.ts";` };
    // Act
    const inputs = await bundledInputs(handler);
    // Assess
    expect(inputs.filter(deployTimeOrLocal)).toEqual(["cdk/bundling.ts"]);
  });
});
