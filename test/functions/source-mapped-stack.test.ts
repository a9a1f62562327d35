import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { buildSync } from "esbuild";
import { afterAll, describe, expect, it } from "vitest";
import { loggableError } from "../../functions/audit/loggable-error.ts";
import { sourceMappedStack } from "../../functions/audit/source-mapped-stack.ts";

// A minified CJS bundle with its map beside it, as the deployed handlers ship (cdk/bundling.ts).
const dir = mkdtempSync(path.join(os.tmpdir(), "bssh-srcmap-"));
const bundle = path.join(dir, "index.js");
buildSync({
  stdin: {
    contents: [
      "export function explode(): never {",
      "  const detail = 'the policy could not be loaded';",
      "  throw new Error(detail);",
      "}",
    ].join("\n"),
    sourcefile: "functions/explode.ts",
    loader: "ts",
  },
  bundle: true,
  minify: true,
  sourcemap: true,
  format: "cjs",
  platform: "node",
  outfile: bundle,
  logLevel: "error",
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function thrownByBundle(): Error {
  const { explode } = createRequire(import.meta.url)(bundle) as { explode: () => never };
  try {
    explode();
  } catch (err) {
    return err as Error;
  }
  throw new Error("the bundle did not throw");
}

describe("stack frames of the minified bundle, mapped on demand", () => {
  it("rewrites frames of a file with a .map beside it to the TypeScript source line", () => {
    const err = thrownByBundle();
    expect(err.stack).toContain(`${bundle}:1:`);
    const mapped = sourceMappedStack(err.stack!);
    expect(mapped).toMatch(/functions\/explode\.ts:3:\d+/);
    expect(mapped).not.toContain(`${bundle}:1:`);
    // The first line (name and message) is kept as it was.
    expect(mapped.split("\n")[0]).toBe("Error: the policy could not be loaded");
  });

  it("leaves frames without a map (node internals, unknown files) as they are", () => {
    const stack = "Error: x\n    at f (/nonexistent/dir/file.js:10:5)\n    at node:internal/x:1:1";
    expect(sourceMappedStack(stack)).toBe(stack);
  });

  it("is what the unexpected-error log line carries", () => {
    expect(loggableError(thrownByBundle()).stack).toMatch(/functions\/explode\.ts:3:\d+/);
  });
});
