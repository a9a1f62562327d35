import { describe, expect, it } from "vitest";
import { validate } from "../../../functions/invocation/steps/validate.ts";
import { loopbackPolicy, testRuntime } from "../support.ts";
import { runStepsUnderTest } from "./harness.ts";

const REQUEST = { host: "127.0.0.1", username: "u", command: "echo hi" };

describe("step validate", () => {
  it("fills the request and the audit line's request, then runs the rest", async () => {
    const { runtime } = testRuntime({ policy: loopbackPolicy([22]) });
    const run = await runStepsUnderTest([validate], { runtime, input: REQUEST });
    expect(run.thrown).toBeUndefined();
    expect(run.nextCalls).toBe(1);
    expect(run.ctx.request).toEqual(REQUEST);
    expect(run.invocation.audit.request).toEqual(REQUEST);
  });

  it("refuses a bad field by name before anything else runs; the audit says what was attempted", async () => {
    const { runtime } = testRuntime({ policy: loopbackPolicy([22]) });
    const run = await runStepsUnderTest([validate], {
      runtime,
      input: { ...REQUEST, port: 0 },
    });
    expect(run.thrown).toMatchObject({ name: "ValidationError", phase: "request" });
    expect((run.thrown as Error).message).toMatch(/port/);
    expect(run.nextCalls).toBe(0);
    expect(run.ctx.validated).toBeUndefined();
    expect(run.invocation.audit.attempted).toMatchObject({ host: "127.0.0.1", username: "u" });
  });
});
