/** The idempotency step against Powertools' DynamoDB layer on dynalite (loopback). */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DynamoIdempotencyStore } from "../../../functions/idempotency/idempotency.ts";
import { idempotency } from "../../../functions/invocation/steps/idempotency.ts";
import { idempotencyGate } from "../../../functions/invocation/steps/idempotency-gate.ts";
import { validate } from "../../../functions/invocation/steps/validate.ts";
import { CredentialUnavailable } from "../../../lib/errors.ts";
import { type LocalDynamo, startDynalite } from "../../helpers/dynalite.ts";
import { loopbackPolicy, testRuntime } from "../support.ts";
import { runStepsUnderTest } from "./harness.ts";

let dynamo: LocalDynamo;
beforeAll(async () => {
  dynamo = await startDynalite();
  await dynamo.createTable("idempotency", "id", "expiration");
});
afterAll(async () => {
  await dynamo?.close();
});

function runtimeWithStore() {
  const { runtime } = testRuntime({ policy: loopbackPolicy([22]) });
  runtime.idempotency = new DynamoIdempotencyStore({
    tableName: "idempotency",
    client: dynamo.client,
  });
  return runtime;
}

const input = (key: string) => ({
  host: "127.0.0.1",
  username: "u",
  command: "echo hi",
  idempotencyKey: key,
});

describe("step idempotency (around)", () => {
  it("runs the rest once per caller and key; a repeat replays the recorded result", async () => {
    const runtime = runtimeWithStore();
    const steps = [validate, idempotencyGate, idempotency];
    const first = await runStepsUnderTest(steps, { runtime, input: input("k-once") });
    const again = await runStepsUnderTest(steps, { runtime, input: input("k-once") });
    expect([first.nextCalls, again.nextCalls]).toEqual([1, 0]);
    expect(first.invocation.audit.idempotency).toBe("recorded");
    expect(again.invocation.audit.idempotency).toBe("replayed");
    expect(again.result).toEqual(first.result);
  });

  it("passes a refusal from inside through and keeps no record: a retry runs again", async () => {
    const runtime = runtimeWithStore();
    const steps = [validate, idempotencyGate, idempotency];
    const refused = await runStepsUnderTest(steps, {
      runtime,
      input: input("k-refused"),
      rest: async () => {
        throw new CredentialUnavailable("the store is down", { phase: "credentials" });
      },
    });
    expect(refused.thrown).toMatchObject({ name: "CredentialUnavailable" });
    expect(refused.invocation.audit.idempotency).toBeUndefined();
    const retry = await runStepsUnderTest(steps, { runtime, input: input("k-refused") });
    expect(retry.nextCalls).toBe(1);
    expect(retry.invocation.audit.idempotency).toBe("recorded");
  });

  it("runs the rest directly without a key", async () => {
    const run = await runStepsUnderTest([validate, idempotencyGate, idempotency], {
      runtime: runtimeWithStore(),
      input: { host: "127.0.0.1", username: "u", command: "echo hi" },
    });
    expect(run.nextCalls).toBe(1);
    expect(run.invocation.audit.idempotency).toBeUndefined();
  });
});
