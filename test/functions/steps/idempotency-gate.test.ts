import { describe, expect, it } from "vitest";
import { idempotencyGate } from "../../../functions/invocation/steps/idempotency-gate.ts";
import { TASK_LIMITS } from "../../../functions/invocation/steps/run-context.ts";
import { validate } from "../../../functions/invocation/steps/validate.ts";
import { loopbackPolicy, testRuntime } from "../support.ts";
import { runStepsUnderTest } from "./harness.ts";

const REQUEST = { host: "127.0.0.1", username: "u", command: "echo hi" };
const EXECUTION = "arn:aws:states:local:000000000000:execution:fleet-workflow:run-1";

// The gate asks only whether a store exists; the store itself runs in the idempotency step.
function withStore() {
  const { runtime } = testRuntime({ policy: loopbackPolicy([22]) });
  runtime.idempotency = {
    run: async () => {
      throw new Error("the gate never runs the store");
    },
  };
  return runtime;
}

describe("step idempotencyGate", () => {
  it("refuses an idempotencyKey in a deployment without a store, naming the setting", async () => {
    const { runtime } = testRuntime({ policy: loopbackPolicy([22]) });
    const run = await runStepsUnderTest([validate, idempotencyGate], {
      runtime,
      input: { ...REQUEST, idempotencyKey: "k" },
    });
    expect(run.thrown).toMatchObject({ name: "ValidationError", phase: "request" });
    expect((run.thrown as Error).message).toMatch(/BSSH_IDEMPOTENCY_TABLE/);
  });

  it("keeps the request's key; derives one for a task; none for the API without a key", async () => {
    const runtime = withStore();
    const own = await runStepsUnderTest([validate, idempotencyGate], {
      runtime,
      input: { ...REQUEST, idempotencyKey: "k-1" },
    });
    const task = await runStepsUnderTest([validate, idempotencyGate], {
      runtime,
      input: REQUEST,
      limits: { ...TASK_LIMITS, idempotencyScope: EXECUTION },
    });
    const api = await runStepsUnderTest([validate, idempotencyGate], { runtime, input: REQUEST });
    expect(own.ctx.idempotencyKey).toBe("k-1");
    expect(task.ctx.idempotencyKey).toMatch(/^sfn:/);
    expect(api.ctx.idempotencyKey).toBeUndefined();
    expect([own.nextCalls, task.nextCalls, api.nextCalls]).toEqual([1, 1, 1]);
  });

  it("refuses more output than one DynamoDB item holds for an idempotent request", async () => {
    const run = await runStepsUnderTest([validate, idempotencyGate], {
      runtime: withStore(),
      input: { ...REQUEST, idempotencyKey: "k", maxOutputBytes: 100_000 },
    });
    expect(run.thrown).toMatchObject({ name: "ValidationError" });
    expect((run.thrown as Error).message).toMatch(/idempotent request keeps at most 92160/);
  });
});
