/**
 * The composer: the one middleware order of the deployed handlers. Real middy core, the test
 * runtime (audit lines and metric batches captured), a fake Lambda context.
 */

import { setTimeout as sleep } from "node:timers/promises";
import type { MiddlewareObj } from "@middy/core";
import type { Context } from "aws-lambda";
import { describe, expect, it } from "vitest";
import { compose } from "../../functions/invocation/compose.ts";
import type { Invocation } from "../../functions/invocation/invocation.ts";
import { ValidationError } from "../../lib/errors.ts";
import { fakeContext, loopbackPolicy, testRuntime } from "./support.ts";

/** An adapter that records what its `onError` saw (as the HTTP / Step Functions ones do). */
function spyAdapter(seen: unknown[]): MiddlewareObj<unknown, string, Error, Context> {
  return {
    onError: (request) => {
      seen.push(request.error);
      request.response = "handled";
    },
  };
}

const errorNames = (datums: { name: string; dimensions: Record<string, string> }[]) =>
  datums.filter((d) => d.name === "Errors").map((d) => d.dimensions.ErrorName);

describe("compose", () => {
  it("hands the handler its invocation, then writes one audit line and one metric batch", async () => {
    // Prepare
    const { runtime, captured } = testRuntime({ policy: loopbackPolicy([22]) });
    let seen: Invocation | undefined;
    const handler = compose<unknown, string>(
      { source: "task", runtime, adapter: [] },
      async (_event, invocation) => {
        seen = invocation;
        invocation.caller = "arn:aws:iam::123456789012:role/x";
        return "done";
      },
    );
    const context = fakeContext();
    // Act
    const response = await handler({}, context);
    // Assess
    expect(response).toBe("done");
    expect(seen?.requestId).toBe(context.awsRequestId);
    expect(captured.records).toEqual([seen]);
    expect(captured.audits).toHaveLength(1);
    expect(captured.audits[0]).toMatchObject({ source: "task", caller: seen?.caller });
    expect(captured.metrics).toHaveLength(1);
  });

  it("maps a thrown bug to InternalError before the adapter, the audit line and metrics see it", async () => {
    // Prepare
    const { runtime, captured } = testRuntime({ policy: loopbackPolicy([22]) });
    const adapterSaw: unknown[] = [];
    const handler = compose<unknown, string>(
      { source: "task", runtime, adapter: [spyAdapter(adapterSaw)] },
      async () => {
        throw new TypeError("a bug");
      },
    );
    // Act
    const response = await handler({}, fakeContext());
    // Assess
    expect(response).toBe("handled");
    expect(adapterSaw).toHaveLength(1);
    expect(adapterSaw[0]).toMatchObject({ name: "InternalError", message: "internal error" });
    expect(captured.audits[0]?.error).toMatchObject({ name: "InternalError" });
    expect(errorNames(captured.metrics[0]!)).toEqual(["InternalError"]);
  });

  it("keeps an EngineError as thrown", async () => {
    // Prepare
    const { runtime, captured } = testRuntime({ policy: loopbackPolicy([22]) });
    const handler = compose<unknown, string>(
      { source: "api", runtime, adapter: [spyAdapter([])] },
      async () => {
        throw new ValidationError('field "host" is missing', { phase: "request" });
      },
    );
    // Act
    await handler({}, fakeContext());
    // Assess
    expect(captured.audits[0]?.error).toMatchObject({
      name: "ValidationError",
      message: 'field "host" is missing',
    });
  });

  it("cancels an invocation only by its own deadline: a neighbour timing out in the same process leaves it running", async () => {
    // Prepare: two invocations in flight in one process, as local mode serves them. A has
    // 300 ms of Lambda time and is stuck in a wait that ignores every signal; B has 10 s and
    // works 800 ms, honouring its invocation's signal.
    const { runtime, captured } = testRuntime({ policy: loopbackPolicy([22]) });
    const handler = compose<{ name: string }, string>(
      { source: "task", runtime, adapter: [] },
      async (event, invocation) => {
        invocation.caller = event.name;
        if (event.name === "A") return new Promise<string>(() => {});
        await sleep(800, undefined, { signal: invocation.signal });
        return "B done";
      },
    );
    // Act
    const a = handler({ name: "A" }, fakeContext({ timeoutMs: 300 })).catch((e: unknown) => e);
    const b = handler({ name: "B" }, fakeContext({ timeoutMs: 10_000 })).catch((e: unknown) => e);
    const [outcomeA, outcomeB] = await Promise.all([a, b]);
    // Assess: A answered DeadlineExceeded at its own deadline; B was never cancelled by it.
    expect((outcomeA as Error).name).toBe("DeadlineExceeded");
    expect(outcomeB).toBe("B done");
    const audits = Object.fromEntries(captured.audits.map((line) => [line.caller, line]));
    expect(audits.A?.error).toMatchObject({ name: "DeadlineExceeded" });
    expect(audits.B?.error).toBeNull();
  });

  it("still cancels on its own caller's signal (local mode's Ctrl-C)", async () => {
    // Prepare
    const { runtime } = testRuntime({ policy: loopbackPolicy([22]) });
    const cancel = new AbortController();
    let reason: unknown;
    const handler = compose<unknown, string>(
      { source: "task", runtime, adapter: [] },
      async (_event, invocation) => {
        await new Promise((resolve) =>
          invocation.signal.addEventListener("abort", resolve, { once: true }),
        );
        reason = invocation.signal.reason;
        return "cancelled";
      },
    );
    // Act
    const outcome = handler({}, fakeContext({ timeoutMs: 10_000, signal: cancel.signal }));
    setTimeout(() => cancel.abort(new Error("Ctrl-C")), 50);
    // Assess: the handler saw the cancellation and answered itself (not cut by a timeout).
    expect(await outcome).toBe("cancelled");
    expect((reason as Error).message).toBe("Ctrl-C");
  });

  it("answers a handler that ignores every signal with DeadlineExceeded at the invocation's deadline, for the adapter, the audit line and metrics", async () => {
    // Prepare: a handler that ignores every signal; middy's own early timeout is off.
    const { runtime, captured } = testRuntime({ policy: loopbackPolicy([22]) });
    const adapterSaw: unknown[] = [];
    const handler = compose<unknown, string>(
      { source: "task", runtime, adapter: [spyAdapter(adapterSaw)] },
      () => new Promise<string>(() => {}),
    );
    // Act
    await handler({}, fakeContext({ timeoutMs: 200 }));
    // Assess
    expect(adapterSaw[0]).toMatchObject({ name: "DeadlineExceeded" });
    expect(captured.audits[0]?.error).toMatchObject({ name: "DeadlineExceeded" });
    expect(errorNames(captured.metrics[0]!)).toEqual(["DeadlineExceeded"]);
  });
});
