/** The breaker step against a real DynamoDB-compatible server (dynalite) on loopback. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HostBreaker } from "../../../functions/breaker/host-breaker.ts";
import { breaker } from "../../../functions/invocation/steps/breaker.ts";
import { validate } from "../../../functions/invocation/steps/validate.ts";
import { buildResult } from "../../../lib/result.ts";
import type { RunResult } from "../../../lib/types.ts";
import { type LocalDynamo, startDynalite } from "../../helpers/dynalite.ts";
import { loopbackPolicy, testRuntime } from "../support.ts";
import { runStepsUnderTest } from "./harness.ts";

let dynamo: LocalDynamo;
beforeAll(async () => {
  dynamo = await startDynalite();
  await dynamo.createTable("breaker", "host", "expiresAt");
});
afterAll(async () => {
  await dynamo?.close();
});

function hung(host: string, hop?: "target" | "via"): RunResult {
  return buildResult({
    requestId: "r",
    target: { host, port: 22, address: null, username: "u" },
    phase: "banner",
    error: {
      name: "BannerTimeout",
      phase: "banner",
      message: "no banner",
      retryable: true,
      commandStarted: false,
      // The banner phase's own cap expired (a budget cut never counts against a host).
      bound: "phase",
      ...(hop ? { hop } : {}),
    },
    totalMs: 1,
    deadline: { budgetMs: 1, remainingMs: 0 },
  });
}

function runtimeWith(store: HostBreaker) {
  const { runtime } = testRuntime({ policy: loopbackPolicy([22]) });
  runtime.breaker = store;
  return runtime;
}

describe("step breaker (around)", () => {
  it("records the session's result after the rest ran, then refuses the host before it runs", async () => {
    const store = new HostBreaker({ tableName: "breaker", client: dynamo.client, threshold: 1 });
    const runtime = runtimeWith(store);
    const input = { host: "hung.example", username: "u", command: "echo hi" };
    const first = await runStepsUnderTest([validate, breaker], {
      runtime,
      input,
      rest: async () => hung("hung.example"),
    });
    expect(first.nextCalls).toBe(1);
    expect(first.result?.error?.name).toBe("BannerTimeout");
    const second = await runStepsUnderTest([validate, breaker], { runtime, input });
    expect(second.thrown).toMatchObject({ name: "HostQuarantined" });
    expect(second.nextCalls).toBe(0);
  });

  it("checks the jump host too", async () => {
    const store = new HostBreaker({ tableName: "breaker", client: dynamo.client, threshold: 1 });
    await store.record({
      ...hung("behind.example", "via"),
      via: { host: "bastion.example", port: 22 },
    } as RunResult);
    const run = await runStepsUnderTest([validate, breaker], {
      runtime: runtimeWith(store),
      input: {
        host: "behind.example",
        username: "u",
        command: "echo hi",
        via: { host: "bastion.example", username: "j" },
      },
    });
    expect(run.thrown).toMatchObject({ name: "HostQuarantined" });
    expect(run.nextCalls).toBe(0);
  });

  it("goes ahead and keeps the result when its store fails", async () => {
    const store = new HostBreaker({ tableName: "no-such-table", client: dynamo.client });
    const run = await runStepsUnderTest([validate, breaker], {
      runtime: runtimeWith(store),
      input: { host: "127.0.0.1", username: "u", command: "echo hi" },
    });
    expect(run.thrown).toBeUndefined();
    expect(run.nextCalls).toBe(1);
    expect(run.result?.status).toBe("succeeded");
  });
});
