import { describe, expect, it } from "vitest";
import { Deadline } from "../../lib/deadline.ts";
import { countActive } from "../helpers/leaks.ts";

const never = new Promise<never>(() => {});

describe("Deadline", () => {
  it("gives each phase the smaller of its cap and the budget left after the teardown reserve", () => {
    const d = new Deadline({ budgetMs: 1000, caps: { connect: 300 } });
    // Reserve = min(teardown cap 250, budget / 5) = 200 ms.
    expect(d.teardownReserveMs).toBe(200);
    expect(d.allowance("connect")).toBeLessThanOrEqual(300);
    expect(d.allowance("exec")).toBeGreaterThan(700);
    expect(d.allowance("exec")).toBeLessThanOrEqual(800);
    // Teardown itself may use the reserve, up to its cap.
    expect(d.allowance("teardown")).toBeLessThanOrEqual(250);
    expect(d.allowance("teardown")).toBeGreaterThan(200);
  });

  it("rejects with the expiry error and leaves no timer behind", async () => {
    const d = new Deadline({ budgetMs: 1000 });
    const before = countActive(["Timeout"]);
    await expect(
      d.bound(
        20,
        never,
        () => new Error("expired"),
        () => new Error("aborted"),
      ),
    ).rejects.toThrow("expired");
    const after = countActive(["Timeout"]);
    expect(after).toBe(before);
  });

  it.each([
    ["no time left", { budgetMs: 1000 }, 0],
    ["the caller already aborted", { signal: AbortSignal.abort() }, 500],
  ] as const)(
    "leaves no unhandled rejection when it fails at once (%s) and the work rejects later",
    async (_why, options, ms) => {
      const d = new Deadline(options);
      const unhandled: unknown[] = [];
      const record = (reason: unknown) => unhandled.push(reason);
      process.on("unhandledRejection", record);
      try {
        let fail!: (err: Error) => void;
        const work = new Promise<never>((_, reject) => {
          fail = reject;
        });
        await expect(
          d.bound(
            ms,
            work,
            () => new Error("expired"),
            () => new Error("aborted"),
          ),
        ).rejects.toThrow(/expired|aborted/);
        fail(new Error("the milestone failed after the phase had already ended"));
        await new Promise((r) => setTimeout(r, 20));
        expect(unhandled).toEqual([]);
      } finally {
        process.off("unhandledRejection", record);
      }
    },
  );

  it("clears its timer when the work settles first", async () => {
    const d = new Deadline({ budgetMs: 60_000 });
    const before = countActive(["Timeout"]);
    await expect(
      d.bound(
        50_000,
        Promise.resolve(7),
        () => new Error("x"),
        () => new Error("y"),
      ),
    ).resolves.toBe(7);
    expect(countActive(["Timeout"])).toBe(before);
  });

  it("rejects with the abort error when the caller's signal aborts", async () => {
    const ac = new AbortController();
    const d = new Deadline({ signal: ac.signal });
    const p = d.bound(
      Number.POSITIVE_INFINITY,
      never,
      () => new Error("x"),
      () => new Error("aborted"),
    );
    ac.abort();
    await expect(p).rejects.toThrow("aborted");
  });

  it("wait() reports whether the work settled in time and never rejects", async () => {
    const d = new Deadline({ budgetMs: 1000 });
    expect(await d.wait(50, Promise.resolve())).toBe(true);
    expect(await d.wait(10, never)).toBe(false);
    expect(await d.wait(50, Promise.reject(new Error("boom")))).toBe(true);
  });

  it("measures on an injected monotonic clock", () => {
    // Prepare
    let now = 5_000;
    const d = new Deadline({ budgetMs: 1_000, now: () => now });
    // Act
    now += 400;
    // Assess
    expect(d.elapsed()).toBe(400);
    expect(d.remaining()).toBe(600);
    expect(d.allowance("connect")).toBe(Math.min(3_000, 600 - d.teardownReserveMs));
  });
});
