/**
 * A phase timeout names the bound that expired (`error.bound`, SPEC §6): the phase's own cap
 * or what the caller's budget left. The breaker counts only the first.
 */
import { describe, expect, it } from "vitest";
import { Deadline } from "../../lib/deadline.ts";
import { type EngineError, errorFromJSON } from "../../lib/errors.ts";
import { PhaseRunner } from "../../lib/phase-runner.ts";

const never = () => new Promise<never>(() => {});

async function bannerTimeout(budgetMs: number, bannerCapMs: number): Promise<EngineError> {
  const runner = new PhaseRunner(new Deadline({ budgetMs, caps: { banner: bannerCapMs } }));
  return runner.step("banner", never).then(
    () => {
      throw new Error("the banner phase cannot succeed");
    },
    (err: EngineError) => err,
  );
}

describe("timeout bound", () => {
  it("is 'phase' when the phase's own cap is the smaller bound", async () => {
    const err = await bannerTimeout(5_000, 100);
    expect(err.name).toBe("BannerTimeout");
    expect(err.toJSON()).toMatchObject({ name: "BannerTimeout", bound: "phase" });
  });

  it("is 'budget' when the caller's budget cut the phase short, and says so", async () => {
    const err = await bannerTimeout(300, 5_000);
    expect(err.toJSON()).toMatchObject({ name: "BannerTimeout", bound: "budget" });
    expect(err.message).toMatch(/the request's budget left no more/);
  });

  it("survives the JSON round trip (a task's Cause, an idempotent replay)", async () => {
    const err = await bannerTimeout(300, 5_000);
    expect(errorFromJSON(err.toJSON()).bound).toBe("budget");
  });

  it("Deadline.boundOf matches the allowance it describes", () => {
    const deadline = new Deadline({ budgetMs: 1_000, caps: { connect: 100, banner: 5_000 } });
    expect(deadline.boundOf("connect")).toBe("phase");
    expect(deadline.allowance("connect")).toBe(100);
    expect(deadline.boundOf("banner")).toBe("budget");
    expect(deadline.allowance("banner")).toBeLessThan(5_000);
  });
});
