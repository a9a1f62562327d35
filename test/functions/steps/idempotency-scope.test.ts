/**
 * A Step Functions task's own `idempotencyKey` is scoped to its execution unless the rule sets
 * `shareIdempotencyKeys` (issue 23): the caller of a task is its state machine, which everyone
 * who may start executions acts as, so a shared key let one execution replay (read) another's
 * recorded result, or block it with `IdempotencyKeyReused`.
 */
import { describe, expect, it } from "vitest";
import type { IdempotencyStore } from "../../../functions/idempotency/idempotency.ts";
import { authorize } from "../../../functions/invocation/steps/authorize.ts";
import { idempotency } from "../../../functions/invocation/steps/idempotency.ts";
import { idempotencyGate } from "../../../functions/invocation/steps/idempotency-gate.ts";
import { TASK_LIMITS } from "../../../functions/invocation/steps/run-context.ts";
import { validate } from "../../../functions/invocation/steps/validate.ts";
import type { PolicyDocument } from "../../../functions/policy/policy.ts";
import { CALLER, loopbackPolicy, testRuntime, WORKFLOW } from "../support.ts";
import { okResult, runStepsUnderTest } from "./harness.ts";

const REQUEST = { host: "127.0.0.1", username: "u", command: "echo hi", idempotencyKey: "nightly" };
const execution = (run: string) =>
  `arn:aws:states:local:000000000000:execution:fleet-workflow:${run}`;

/** A store that replays what it recorded under [caller, key], as Powertools does. */
function recordingStore(): IdempotencyStore & { owners: string[] } {
  const records = new Map<string, unknown>();
  const owners: string[] = [];
  return {
    owners,
    async run(scope, work) {
      const id = JSON.stringify([scope.caller, scope.key]);
      owners.push(scope.caller);
      if (records.has(id)) return { result: okResult(), replayed: true };
      const result = await work();
      records.set(id, result);
      return { result, replayed: false };
    },
  } as IdempotencyStore & { owners: string[] };
}

async function runAs(
  policy: PolicyDocument,
  store: IdempotencyStore,
  options: { run?: string; caller?: string },
) {
  const { runtime } = testRuntime({ policy });
  runtime.idempotency = store;
  return runStepsUnderTest([validate, authorize, idempotencyGate, idempotency], {
    runtime,
    input: REQUEST,
    caller: options.caller ?? WORKFLOW,
    limits:
      options.run === undefined
        ? undefined
        : { ...TASK_LIMITS, idempotencyScope: execution(options.run) },
  });
}

describe("a task's own idempotencyKey", () => {
  it("is scoped to its execution: another execution with the same key runs its own session", async () => {
    const store = recordingStore();
    const policy = loopbackPolicy([22]);
    const first = await runAs(policy, store, { run: "alice-run" });
    const retry = await runAs(policy, store, { run: "alice-run" });
    const other = await runAs(policy, store, { run: "mallory-run" });
    expect([first.nextCalls, retry.nextCalls, other.nextCalls]).toEqual([1, 0, 1]);
    expect(retry.ctx.idempotencyNamespace).toBe(execution("alice-run"));
    expect(new Set(store.owners).size).toBe(2);
  });

  it("is shared by every execution of the state machine when the rule sets shareIdempotencyKeys", async () => {
    const store = recordingStore();
    const base = loopbackPolicy([22]);
    const policy = {
      ...base,
      rules: base.rules.map((r) => ({ ...r, shareIdempotencyKeys: true })),
    };
    const first = await runAs(policy, store, { run: "run-1" });
    const again = await runAs(policy, store, { run: "run-2" });
    expect([first.nextCalls, again.nextCalls]).toEqual([1, 0]);
    expect(again.ctx.idempotencyNamespace).toBeUndefined();
    expect(store.owners).toEqual([WORKFLOW, WORKFLOW]);
  });

  it("is shared only when every rule allowing the request sets the flag", async () => {
    const store = recordingStore();
    const base = loopbackPolicy([22]);
    const policy = {
      ...base,
      rules: [
        { ...base.rules[0]!, shareIdempotencyKeys: true },
        { ...base.rules[0]!, id: "second" },
      ],
    };
    const first = await runAs(policy, store, { run: "run-1" });
    const again = await runAs(policy, store, { run: "run-2" });
    expect([first.nextCalls, again.nextCalls]).toEqual([1, 1]);
  });

  it("leaves API keys scoped to the signed caller, as before", async () => {
    const store = recordingStore();
    const policy = loopbackPolicy([22]);
    const first = await runAs(policy, store, { caller: CALLER });
    const again = await runAs(policy, store, { caller: CALLER });
    expect([first.nextCalls, again.nextCalls]).toEqual([1, 0]);
    expect(store.owners).toEqual([CALLER, CALLER]);
  });

  it("refuses a non-boolean shareIdempotencyKeys at policy load", async () => {
    const base = loopbackPolicy([22]);
    const bad = {
      ...base,
      rules: [{ ...base.rules[0]!, shareIdempotencyKeys: "yes" as unknown as boolean }],
    };
    const { Policy } = await import("../../../functions/policy/policy.ts");
    expect(() => new Policy(bad)).toThrow(/shareIdempotencyKeys/);
  });
});
