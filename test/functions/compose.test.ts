/**
 * The composer: the one middleware order of the deployed handlers. Real middy core, the test
 * runtime (audit lines and metric batches captured), a fake Lambda context.
 */
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

  it("joins middy's { signal }: its early timeout aborts the invocation's signal", async () => {
    // Prepare: the invocation plans on 10 s; when middy asks, 100 ms are left (a clock that
    // disagrees, so middy's timeout is the one that fires).
    const { runtime, captured } = testRuntime({ policy: loopbackPolicy([22]) });
    const context = fakeContext({ timeoutMs: 10_000 });
    let calls = 0;
    context.getRemainingTimeInMillis = () => (++calls === 1 ? 10_000 : 100);
    let reason: unknown;
    const handler = compose<unknown, string>(
      { source: "task", runtime, adapter: [] },
      async (_event, invocation) => {
        await new Promise((resolve) =>
          invocation.signal.addEventListener("abort", resolve, { once: true }),
        );
        reason = invocation.signal.reason;
        return "late";
      },
    );
    const started = Date.now();
    // Act
    const outcome = await handler({}, context).catch((e: unknown) => e);
    // Assess: aborted by middy (an AbortError), not by the invocation's 10 s deadline.
    expect(Date.now() - started).toBeLessThan(1_000);
    expect((reason as Error).name).toBe("AbortError");
    expect((outcome as Error).name).toBe("DeadlineExceeded");
    expect(captured.audits[0]?.error).toMatchObject({ name: "DeadlineExceeded" });
  });

  it("maps middy's early timeout to DeadlineExceeded for the adapter, the audit line and metrics", async () => {
    // Prepare: a handler that ignores every signal.
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
