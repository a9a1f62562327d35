import { describe, expect, it } from "vitest";
import { budget } from "../../../functions/invocation/steps/budget.ts";
import { validate } from "../../../functions/invocation/steps/validate.ts";
import { loopbackPolicy, testRuntime } from "../support.ts";
import { runStepsUnderTest } from "./harness.ts";

const REQUEST = { host: "127.0.0.1", username: "u", command: "echo hi" };

describe("step budget", () => {
  it("narrows the session's budget to the request's timeoutMs", async () => {
    const { runtime } = testRuntime({ policy: loopbackPolicy([22]) });
    const run = await runStepsUnderTest([validate, budget], {
      runtime,
      input: { ...REQUEST, timeoutMs: 1_234 },
    });
    expect(run.nextCalls).toBe(1);
    expect(run.invocation.budgetMs).toBe(1_234);
  });

  it("refuses a session with less than minBudgetMs left, before anything is read", async () => {
    const { runtime } = testRuntime({ policy: loopbackPolicy([22]) });
    const run = await runStepsUnderTest([validate, budget], {
      runtime,
      input: { ...REQUEST, timeoutMs: 100 },
    });
    expect(run.thrown).toMatchObject({ name: "DeadlineExceeded", phase: "request" });
    expect((run.thrown as Error).message).toMatch(/ms left for the session; at least 250 ms/);
    expect(run.nextCalls).toBe(0);
  });
});
