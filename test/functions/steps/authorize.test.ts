import { describe, expect, it } from "vitest";
import { authorize } from "../../../functions/invocation/steps/authorize.ts";
import { validate } from "../../../functions/invocation/steps/validate.ts";
import { loopbackPolicy, testRuntime } from "../support.ts";
import { runStepsUnderTest } from "./harness.ts";

const REQUEST = { host: "127.0.0.1", username: "u", command: "echo hi" };

describe("step authorize", () => {
  it("fills the decision and the audit line's command and rules", async () => {
    const { runtime } = testRuntime({ policy: loopbackPolicy([22]) });
    const run = await runStepsUnderTest([validate, authorize], { runtime, input: REQUEST });
    expect(run.nextCalls).toBe(1);
    expect(run.ctx.authorization).toMatchObject({ command: "echo hi", credential: "default" });
    expect(run.invocation.audit).toMatchObject({ command: "echo hi", rules: ["loopback"] });
  });

  it("refuses a command no rule allows, before the rest runs", async () => {
    const { runtime } = testRuntime({ policy: loopbackPolicy([22]) });
    const run = await runStepsUnderTest([validate, authorize], {
      runtime,
      input: { ...REQUEST, command: "rm -rf /" },
    });
    expect(run.thrown).toMatchObject({ name: "CommandNotAllowed", phase: "policy" });
    expect(run.nextCalls).toBe(0);
  });

  it("is InternalError (cause kept) when the policy can not be loaded", async () => {
    const { runtime } = testRuntime({ policy: loopbackPolicy([22]) });
    const unreadable = new Error("parameter not found");
    runtime.policy = {
      get: async () => {
        throw unreadable;
      },
    };
    const run = await runStepsUnderTest([validate, authorize], { runtime, input: REQUEST });
    expect(run.thrown).toMatchObject({ name: "InternalError", phase: "policy" });
    expect((run.thrown as Error).cause).toBe(unreadable);
  });
});
