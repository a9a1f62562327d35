/**
 * The "bounded" SLI's per-invocation count (`Unbounded`, docs/alarms.md "SLOs"): through the
 * real middleware stack (the invocation middleware, the metrics middleware, the EMF encoder)
 * a late invocation and one that finds a leaked socket count 1, a normal one 0. Hard timeouts
 * cannot report themselves: the alarms count them (test/cdk/slo-burn.test.ts).
 */
import { connect, type Socket } from "node:net";
import middy from "@middy/core";
import type { Context } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createInvocation } from "../../functions/invocation/create-invocation.ts";
import { type EmfDocument, fromEmfDocument } from "../../functions/metrics/emf.ts";
import { LeakGauge } from "../../functions/metrics/leak-gauge.ts";
import { metricsMiddleware } from "../../functions/metrics/middleware.ts";
import type { MetricDatum } from "../../lib/metrics.ts";
import { METRIC } from "../../lib/names.ts";
import { type PeerListener, startPeerListener } from "../helpers/leaks.ts";

/** A Lambda context whose clock runs out `timeoutMs` from now. */
function fakeContext(timeoutMs: number): Context {
  const end = Date.now() + timeoutMs;
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName: "bounded-ssh-test",
    functionVersion: "$LATEST",
    invokedFunctionArn: "arn:aws:lambda:us-east-1:123456789012:function:bounded-ssh-test",
    memoryLimitInMB: "256",
    awsRequestId: "req-unbounded",
    logGroupName: "/aws/lambda/bounded-ssh-test",
    logStreamName: "stream",
    getRemainingTimeInMillis: () => end - Date.now(),
    done: () => {},
    fail: () => {},
    succeed: () => {},
  };
}

/** What one invocation published, read back from its EMF lines (the default mode). */
interface Published {
  unbounded: number | undefined;
  slack: number | undefined;
  leaked: number | undefined;
}

/**
 * A task handler stack as compose.ts builds it (invocation, then metrics; no reserve) around
 * `work`, writing EMF to a buffer; returns what each call published.
 */
function stack(work: (event: { blockMs?: number; leak?: boolean; close?: boolean }) => unknown) {
  const gauge = new LeakGauge();
  const published: Published[] = [];
  let lines: string[] = [];
  const handler = middy(async (event: { blockMs?: number; leak?: boolean; close?: boolean }) =>
    work(event),
  )
    .use(createInvocation({ source: "task", settings: { reserveMs: 0, edgeTimeoutMs: 29_000 } }))
    .use(metricsMiddleware({ mode: "emf", leakGauge: gauge, writeLine: (l) => lines.push(l) }));
  const call = async (event: Parameters<typeof work>[0], timeoutMs: number) => {
    lines = [];
    await handler(event, fakeContext(timeoutMs));
    const datums: MetricDatum[] = lines.flatMap((l) =>
      fromEmfDocument(JSON.parse(l) as EmfDocument),
    );
    const value = (name: string) =>
      datums.find((d) => d.name === name && Object.keys(d.dimensions).length === 0)?.value;
    const p = {
      unbounded: value(METRIC.Unbounded),
      slack: value(METRIC.DeadlineSlack),
      leaked: value(METRIC.LeakedSockets),
    };
    published.push(p);
    return p;
  };
  return { call, published };
}

/** Blocks the event loop: a call outside the deadline (sync DNS, a CPU-bound parse). */
function blockFor(ms: number): void {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    // spin
  }
}

describe("Unbounded, per invocation", () => {
  it("is 0 for an invocation that returns well inside its deadline", async () => {
    const { call } = stack(() => "ok");
    // 10 s: a loaded machine never stalls this process that long.
    expect(await call({}, 10_000)).toMatchObject({ unbounded: 0, leaked: 0 });
  });

  it("is 1 for an invocation that returns after its deadline (slack < 0)", async () => {
    const { call } = stack((event) => {
      blockFor(event.blockMs ?? 0);
      return "late";
    });
    // Blocked 500 ms past a 150 ms deadline: load only makes it later.
    const late = await call({ blockMs: 650 }, 150);
    expect(late.slack).toBeLessThan(0);
    expect(late.unbounded).toBe(1);
    // The same stack, on time again: 0 (the count belongs to the invocation, not the container).
    expect(await call({}, 10_000)).toMatchObject({ unbounded: 0 });
  });

  describe("leaked sockets", () => {
    // Only the function's side of a connection to it counts, as with a remote sshd.
    let peer: PeerListener;

    beforeAll(async () => {
      peer = await startPeerListener();
    });

    afterAll(async () => {
      await peer.close();
    });

    it("is 1 for each invocation that finds a socket an earlier one left open, 0 once it is closed", async () => {
      let leaked: Socket | undefined;
      const { call, published } = stack(async (event) => {
        if (event.leak) {
          leaked = await new Promise<Socket>((resolve, reject) => {
            const s = connect(peer.port, "127.0.0.1", () => resolve(s));
            s.once("error", reject);
          });
        }
        if (event.close && leaked) {
          const closed = new Promise((resolve) => leaked?.once("close", resolve));
          leaked.destroy();
          await closed;
        }
        return "ok";
      });

      // Healthy; one that leaks (it cannot see its own leak: the gauge runs at the start);
      // two that run beside the leak (the second closes it); one clean.
      await call({}, 10_000);
      await call({ leak: true }, 10_000);
      await call({}, 10_000);
      await call({ close: true }, 10_000);
      await call({}, 10_000);

      expect(published.map((p) => p.leaked)).toEqual([0, 0, 1, 1, 0]);
      expect(published.map((p) => p.unbounded)).toEqual([0, 0, 1, 1, 0]);
      // None of them was late: the leak alone makes them unbounded.
      for (const p of published) expect(p.slack).toBeGreaterThan(0);
    });
  });
});
