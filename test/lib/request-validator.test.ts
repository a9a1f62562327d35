import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { GENERATED_VALIDATOR, generateValidatorSource } from "../../scripts/generate-validator.ts";

describe("ahead-of-time request validator", () => {
  it("is up to date with the schema (run npm run generate)", () => {
    expect(readFileSync(GENERATED_VALIDATOR, "utf8")).toBe(generateValidatorSource());
  });

  it("is self-contained: no import or require (the engine's one dependency is ssh2)", () => {
    const code = readFileSync(GENERATED_VALIDATOR, "utf8");
    expect(code).not.toMatch(/\brequire\s*\(/);
    expect(code).not.toMatch(/(^|[;\s])import[\s{*("']/m);
    expect(code).not.toMatch(/\bajv\b/i);
    // The check itself sees what it looks for.
    expect('const x = require("ajv/dist/runtime/ucs2length")').toMatch(/\brequire\s*\(/);
    expect('"use strict";import x from "ajv";').toMatch(/(^|[;\s])import[\s{*("']/m);
  });
});
