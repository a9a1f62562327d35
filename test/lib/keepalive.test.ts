import { describe, expect, it } from "vitest";
import { Deadline } from "../../lib/deadline.ts";
import { Keepalive } from "../../lib/session/keepalive.ts";
import { countActive } from "../helpers/leaks.ts";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const timers = () => countActive(["Timeout"]);

describe("Keepalive (the engine's own, on the session's deadline)", () => {
  it("declares a silent peer dead after interval × (countMax + 1), having sent countMax probes", async () => {
    const deadline = new Deadline({ budgetMs: 10_000 });
    let sent = 0;
    const start = performance.now();
    const missed = await new Promise<number>((resolve) => {
      new Keepalive(
        { intervalMs: 50, countMax: 2 },
        deadline,
        () => {
          sent += 1;
          return true; // sent, never answered
        },
        resolve,
      ).start();
    });
    const tookMs = performance.now() - start;
    expect(missed).toBe(2);
    expect(sent).toBe(2);
    expect(tookMs).toBeGreaterThanOrEqual(145);
    expect(tookMs).toBeLessThan(600); // loaded 2-core machine: generous upper bound
  });

  it("any answer resets the count: a peer that answers is never declared dead", async () => {
    const deadline = new Deadline({ budgetMs: 10_000 });
    let dead = false;
    let sent = 0;
    const keepalive = new Keepalive(
      { intervalMs: 20, countMax: 1 },
      deadline,
      (onReply) => {
        sent += 1;
        setImmediate(onReply);
        return true;
      },
      () => {
        dead = true;
      },
    );
    keepalive.start();
    await sleep(300);
    keepalive.stop();
    expect(dead).toBe(false);
    expect(sent).toBeGreaterThanOrEqual(5);
  });

  it("stop() releases its timer at once and is idempotent", async () => {
    const before = timers();
    const keepalive = new Keepalive(
      { intervalMs: 60_000, countMax: 3 },
      new Deadline({ budgetMs: 120_000 }),
      () => true,
      () => {},
    );
    keepalive.start();
    expect(timers()).toBe(before + 1);
    keepalive.stop();
    keepalive.stop();
    await sleep(0);
    expect(timers()).toBe(before);
  });
});
