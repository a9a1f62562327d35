/**
 * The invocation middleware and its Invocation: one deadline from Lambda's clock and API
 * Gateway's edge, one signal, every budget derived from them. Real middy core, a fake Lambda
 * context, injected clocks.
 */
import middy from "@middy/core";
import type { Context } from "aws-lambda";
import { describe, expect, it } from "vitest";
import {
  type CreateInvocationOptions,
  createInvocation,
  RESPONSE_SAFETY_MS,
} from "../../functions/invocation/create-invocation.ts";
import { type Invocation, invocationOf } from "../../functions/invocation/invocation.ts";
import { fakeContext } from "./support.ts";

const SETTINGS = { reserveMs: 1_500, edgeTimeoutMs: 29_000 };

/** A monotonic clock the test moves by hand. */
function manualClock(start = 1_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

/** Runs one invocation through middy and returns the Invocation the handler saw. */
async function invoke(
  options: Partial<CreateInvocationOptions>,
  event: unknown,
  context: Context,
  inside: (invocation: Invocation) => void | Promise<void> = () => {},
): Promise<Invocation> {
  let seen: Invocation | undefined;
  const handler = middy(async (_event: unknown, ctx: Context) => {
    seen = invocationOf(ctx);
    await inside(seen);
    return "ok";
  }).use(createInvocation({ source: "api", settings: SETTINGS, ...options }));
  await handler(event, context);
  return seen!;
}

describe("createInvocation", () => {
  it("gives the invocation Lambda's remaining time less the response safety", async () => {
    // Prepare
    const clock = manualClock();
    // Act
    const invocation = await invoke({ now: clock.now }, {}, fakeContext({ timeoutMs: 10_000 }));
    // Assess
    const expected = 10_000 - RESPONSE_SAFETY_MS;
    expect(invocation.deadline.budgetMs).toBeGreaterThan(expected - 20);
    expect(invocation.deadline.budgetMs).toBeLessThanOrEqual(expected);
    expect(invocation.budgetMs).toBe(invocation.deadline.budgetMs - SETTINGS.reserveMs);
  });

  it("counts API Gateway's 29 s from requestTimeEpoch, read once on the wall clock", async () => {
    // Prepare: the edge received the request 20 s before the invocation started.
    const wall = 5_000_000;
    const event = { requestContext: { requestTimeEpoch: wall - 20_000 } };
    // Act
    const invocation = await invoke(
      {
        wallClock: () => wall,
        edgeStart: (e) => (e as typeof event).requestContext.requestTimeEpoch,
      },
      event,
      fakeContext({ timeoutMs: 60_000 }),
    );
    // Assess: 29 000 − 20 000 − 50 safety; the session gets that less the 1 500 reserve.
    expect(invocation.deadline.budgetMs).toBe(8_950);
    expect(invocation.budgetMs).toBe(7_450);
  });

  it("ignores an edge timestamp from the far future (clock nonsense)", async () => {
    // Prepare
    const wall = 5_000_000;
    // Act
    const invocation = await invoke(
      { wallClock: () => wall, edgeStart: () => wall + 3_600_000 },
      {},
      fakeContext({ timeoutMs: 60_000 }),
    );
    // Assess: the edge counts from now, as if it had just received the request.
    expect(invocation.deadline.budgetMs).toBe(29_000 - RESPONSE_SAFETY_MS);
  });

  it("derives every budget from the one deadline on the injected clock", async () => {
    // Prepare
    const clock = manualClock();
    const context = fakeContext({ timeoutMs: 10_050 });
    // Act
    const invocation = await invoke({ now: clock.now }, {}, context, (inv) => {
      inv.limit(5_000);
      clock.advance(1_200);
    });
    // Assess: 10 s to return; the request asked for 5 s; 1.2 s have passed.
    expect(invocation.budgetMs).toBe(5_000);
    expect(invocation.sessionRemaining()).toBe(3_800);
    expect(invocation.slackMs()).toBeCloseTo(invocation.deadline.budgetMs - 1_200, 0);
  });

  it("aborts the invocation's signal with a TimeoutError when it must return", async () => {
    // Prepare: 120 ms to live, 50 of them kept for the response.
    const started = Date.now();
    // Act
    const invocation = await invoke({}, {}, fakeContext({ timeoutMs: 120 }), async (inv) => {
      await new Promise((resolve) => inv.signal.addEventListener("abort", resolve, { once: true }));
    });
    // Assess
    expect(invocation.signal.aborted).toBe(true);
    expect((invocation.signal.reason as Error).name).toBe("TimeoutError");
    expect(Date.now() - started).toBeGreaterThanOrEqual(60);
    expect(Date.now() - started).toBeLessThan(120);
  });

  it("bounds a read by its cap and by what is left of the session's budget", async () => {
    // Prepare
    const started = Date.now();
    // Act: a read capped at 10 s inside a session budget of about 100 ms.
    await invoke({}, {}, fakeContext({ timeoutMs: 1_650 }), async (inv) => {
      const signal = inv.readSignal(10_000);
      await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
      expect((signal.reason as Error).name).toBe("TimeoutError");
    });
    // Assess
    expect(Date.now() - started).toBeLessThan(400);
  });

  it("ends the invocation after the handler: its signal never fires later", async () => {
    // Prepare + Act
    const invocation = await invoke({}, {}, fakeContext({ timeoutMs: 100 }));
    await new Promise((resolve) => setTimeout(resolve, 120));
    // Assess
    expect(invocation.signal.aborted).toBe(false);
  });

  it("follows local mode's cancel signal", async () => {
    // Prepare
    const cancel = new AbortController();
    // Act
    const invocation = await invoke({}, {}, fakeContext({ signal: cancel.signal }), () => {
      cancel.abort(new Error("Ctrl-C"));
    });
    // Assess
    expect(invocation.signal.aborted).toBe(true);
  });

  it("rejects unknown options and a context without an invocation", () => {
    expect(() =>
      createInvocation({
        source: "api",
        settings: SETTINGS,
        reserve: 1,
      } as CreateInvocationOptions),
    ).toThrow(/unknown option reserve/);
    expect(() => invocationOf(fakeContext())).toThrow(/createInvocation\(\) is missing/);
  });
});
