import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { GENERATED_VALIDATOR, generateValidatorSource } from "../../scripts/generate-validator.ts";

describe("ahead-of-time request validator", () => {
  it("is up to date with the schema (run scripts/generate-validator.ts)", () => {
    expect(readFileSync(GENERATED_VALIDATOR, "utf8")).toBe(generateValidatorSource());
  });
});
