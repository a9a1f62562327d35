import { describe, expect, it } from "vitest";
import { entryLimits } from "../../../functions/invocation/steps/entry-limits.ts";
import { TASK_LIMITS } from "../../../functions/invocation/steps/run-context.ts";
import { validate } from "../../../functions/invocation/steps/validate.ts";
import { loopbackPolicy, testRuntime } from "../support.ts";
import { runStepsUnderTest } from "./harness.ts";

const REQUEST = { host: "127.0.0.1", username: "u", command: "echo hi" };

describe("step entryLimits", () => {
  it("refuses more output than the Step Functions payload carries", async () => {
    const { runtime } = testRuntime({ policy: loopbackPolicy([22]) });
    const run = await runStepsUnderTest([validate, entryLimits], {
      runtime,
      input: { ...REQUEST, maxOutputBytes: 200_000 },
      limits: TASK_LIMITS,
    });
    expect(run.thrown).toMatchObject({ name: "ValidationError", phase: "request" });
    expect((run.thrown as Error).message).toMatch(/"maxOutputBytes" is 200000.*at most 92160/);
    expect(run.nextCalls).toBe(0);
  });

  it("lets the same request through the API, and a small one through the task path", async () => {
    const { runtime } = testRuntime({ policy: loopbackPolicy([22]) });
    const api = await runStepsUnderTest([validate, entryLimits], {
      runtime,
      input: { ...REQUEST, maxOutputBytes: 200_000 },
    });
    const task = await runStepsUnderTest([validate, entryLimits], {
      runtime,
      input: { ...REQUEST, maxOutputBytes: 92_160 },
      limits: TASK_LIMITS,
    });
    expect([api.nextCalls, task.nextCalls]).toEqual([1, 1]);
  });
});
