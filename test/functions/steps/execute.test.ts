/**
 * `execute`: the list of steps, settled. Never rejects: a refusal before the session settles
 * the invocation with its error and a synthetic result carrying the same error object.
 */
import { describe, expect, it } from "vitest";
import { compose } from "../../../functions/invocation/compose.ts";
import { execute, STEPS } from "../../../functions/invocation/execute.ts";
import type { Settled } from "../../../functions/invocation/outcome.ts";
import {
  RunContext,
  runSteps,
  TASK_LIMITS,
} from "../../../functions/invocation/steps/run-context.ts";
import { validate } from "../../../functions/invocation/steps/validate.ts";
import { engineErrorOf } from "../../../lib/result.ts";
import { fakeContext, loopbackPolicy, testRuntime } from "../support.ts";

async function settle(input: unknown, limits = TASK_LIMITS) {
  const { runtime } = testRuntime({ policy: loopbackPolicy([22]) });
  let settled: Settled | undefined;
  const handler = compose<unknown, string>(
    { source: "task", runtime, adapter: [] },
    async (_event, invocation) => {
      invocation.caller = "arn:aws:iam::123456789012:role/ops-runner";
      settled = await execute(invocation, runtime, input, limits);
      expect(invocation.result).toBe(settled.result);
      expect(invocation.error).toBe(settled.error);
      return "done";
    },
  );
  await handler({}, fakeContext());
  return settled!;
}

describe("execute", () => {
  it("keeps the orders the steps rely on (a new check may go anywhere between)", () => {
    const at = (name: string) => STEPS.findIndex((step) => step.name === name);
    expect(STEPS[0]?.name).toBe("validate");
    expect(STEPS.at(-1)?.name).toBe("engine");
    // Each step after the one that fills what it reads.
    expect(at("authorize")).toBeLessThan(at("spillGate"));
    expect(at("idempotencyGate")).toBeLessThan(at("idempotency"));
    expect(at("readSecrets")).toBeLessThan(at("hostTrust"));
    // A quarantined host is refused before the store; a replay skips reads and the session.
    expect(at("breaker")).toBeLessThan(at("idempotency"));
    expect(at("idempotency")).toBeLessThan(at("readSecrets"));
    expect(new Set(STEPS).size).toBe(STEPS.length);
  });

  it("settles a refusal with a synthetic result carrying the same error object", async () => {
    const { result, error } = await settle({
      host: "127.0.0.1",
      username: "u",
      command: "rm -rf /",
    });
    expect(error).toMatchObject({ name: "CommandNotAllowed", phase: "policy" });
    expect(result).toMatchObject({
      status: "error",
      phase: "policy",
      target: { host: "127.0.0.1", port: 22, address: null },
      error: { name: "CommandNotAllowed", commandStarted: false },
    });
    expect(engineErrorOf(result!)).toBe(error);
  });

  it("settles input that is not a request with its error and no result", async () => {
    const { result, error } = await settle("not an object");
    expect(error).toMatchObject({ name: "ValidationError", phase: "request" });
    expect(result).toBeUndefined();
  });

  it("fails loudly on a list in the wrong order or without a last step", async () => {
    const { runtime } = testRuntime({ policy: loopbackPolicy([22]) });
    const input = { host: "127.0.0.1", username: "u", command: "echo hi" };
    const handler = compose<unknown, unknown[]>(
      { source: "task", runtime, adapter: [] },
      async (_event, invocation) => {
        const ctx = () => new RunContext(invocation, runtime, input, TASK_LIMITS);
        return Promise.all(
          [
            // Reads `request` before `validate` filled it.
            runSteps(ctx(), [async (c, next) => (c.request.host ? next() : next())]),
            // Every step calls next(): nothing settles.
            runSteps(ctx(), [validate]),
          ].map((run) => run.catch((err: unknown) => err)),
        );
      },
    );
    const [early, open] = (await handler({}, fakeContext())) as Error[];
    expect(early).toBeInstanceOf(TypeError);
    expect(early?.message).toMatch(/before step validate filled it/);
    expect(open?.message).toMatch(/the last step of the request path called next\(\)/);
  });
});
