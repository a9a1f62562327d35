import { describe, expect, it } from "vitest";
import { withDefaults } from "../../functions/invocation/with-defaults.ts";

describe("withDefaults", () => {
  const defaults = { safetyMs: 20, mode: undefined as "emf" | undefined };

  it("lays the options given over the defaults", () => {
    expect(withDefaults("m", defaults, { safetyMs: 5, mode: "emf" as const })).toEqual({
      safetyMs: 5,
      mode: "emf",
    });
  });

  it("keeps the default of an option given as undefined (never a NaN bound)", () => {
    const maybe: number | undefined = undefined;
    const options = withDefaults("m", defaults, { safetyMs: maybe });
    expect(options.safetyMs).toBe(20);
  });

  it("refuses an option it does not know, naming it", () => {
    expect(() => withDefaults("m", defaults, { safetyMS: 5 })).toThrow(
      new TypeError("m: unknown option safetyMS"),
    );
    expect(withDefaults("m", defaults, { id: "x" }, ["id"])).toMatchObject({ id: "x" });
  });
});
