import { connect, type Socket } from "node:net";
import { monitorEventLoopDelay } from "node:perf_hooks";
import middy from "@middy/core";
import type { Context } from "aws-lambda";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  createInvocation,
  RESPONSE_SAFETY_MS,
} from "../../functions/invocation/create-invocation.ts";
import { invocationOf } from "../../functions/invocation/invocation.ts";
import { type EmfDocument, fromEmfDocument } from "../../functions/metrics/emf.ts";
import { LeakGauge } from "../../functions/metrics/leak-gauge.ts";
import {
  type MetricsMiddlewareOptions,
  metricsMiddleware,
} from "../../functions/metrics/middleware.ts";
import {
  METRICS_ENV,
  type PublishReport,
  resetSharedCloudWatchClient,
} from "../../functions/metrics/publisher.ts";
import { ValidationError } from "../../lib/errors.ts";
import type { MetricDatum } from "../../lib/metrics.ts";
import { ENV } from "../../operations/environment.ts";
import { type PeerListener, startPeerListener } from "../helpers/leaks.ts";
import { FakeCloudWatch } from "./metrics-cloudwatch-server.ts";
import { bannerTimeoutResult, succeededResult } from "./metrics-fixtures.ts";

/** Allowed past a deadline: event-loop turns, not network time. */
const SLACK_MS = 50;

/** Sampling interval of {@link stalledDuring} (ms). */
const STALL_RESOLUTION_MS = 10;

/**
 * Runs `work` and measures the longest event-loop stall meanwhile (ms): how late a timer due
 * every {@link STALL_RESOLUTION_MS} fired at worst. On a loaded 2-core machine this process is
 * not scheduled for 100 ms and more at times (GC, other processes); a timer-bound wait — the
 * publish's abort — then fires late by that much, whatever the code does. A deadline
 * assertion adds this stall to its slack: time the process did not run is not the code's.
 * A wait the code does not bound (a hung endpoint held until the client's 1 s timeout) stalls
 * nothing and still fails.
 */
async function stalledDuring<T>(work: () => Promise<T>): Promise<{ value: T; stallMs: number }> {
  const delay = monitorEventLoopDelay({ resolution: STALL_RESOLUTION_MS });
  delay.enable();
  try {
    const value = await work();
    return { value, stallMs: delay.max / 1e6 + STALL_RESOLUTION_MS };
  } finally {
    delay.disable();
  }
}

let cw: FakeCloudWatch;
let emf: string[];
let batches: { datums: MetricDatum[]; report: PublishReport }[];

/** A Lambda context whose clock runs out `timeoutMs` from now. */
function fakeContext(timeoutMs: number): Context {
  const end = Date.now() + timeoutMs;
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName: "bounded-ssh-test",
    functionVersion: "$LATEST",
    invokedFunctionArn: "arn:aws:lambda:us-east-1:123456789012:function:bounded-ssh-test",
    memoryLimitInMB: "256",
    awsRequestId: "req-1",
    logGroupName: "/aws/lambda/bounded-ssh-test",
    logStreamName: "stream",
    getRemainingTimeInMillis: () => end - Date.now(),
    done: () => {},
    fail: () => {},
    succeed: () => {},
  };
}

/** middy with the invocation middleware the metrics middleware reads (no reserve). */
const withInvocation: typeof middy = ((...args: Parameters<typeof middy>) =>
  middy(...args).use(
    createInvocation({ source: "task", settings: { reserveMs: 0, edgeTimeoutMs: 29_000 } }),
  )) as typeof middy;

/** The API path with its EMF fallback (the default mode, `emf`, has its own test). */
function options(extra: MetricsMiddlewareOptions = {}): MetricsMiddlewareOptions {
  return {
    mode: "api",
    leakGauge: new LeakGauge(),
    writeLine: (line) => emf.push(line),
    onPublished: (datums, report) => batches.push({ datums, report }),
    ...extra,
  };
}

function show(datums: MetricDatum[]): string[] {
  return datums.map((d) => {
    const dims = Object.entries(d.dimensions)
      .map(([k, v]) => `${k}=${v}`)
      .join(",");
    return `${d.name}{${dims}}`;
  });
}

function key(d: MetricDatum): string {
  return JSON.stringify([d.name, d.unit, Object.entries(d.dimensions).sort(), d.value]);
}

beforeAll(async () => {
  cw = await FakeCloudWatch.start();
  process.env.AWS_ACCESS_KEY_ID = "test";
  process.env.AWS_SECRET_ACCESS_KEY = "test";
  process.env.AWS_REGION = "us-east-1";
  process.env[METRICS_ENV.endpoint] = cw.endpoint;
  resetSharedCloudWatchClient();
});

afterAll(async () => {
  resetSharedCloudWatchClient();
  await cw.close();
});

beforeEach(() => {
  cw.behaviour = "ok";
  cw.calls.length = 0;
  emf = [];
  batches = [];
});

describe("metricsMiddleware", () => {
  it("publishes a successful invocation once and leaves the response untouched", async () => {
    // Prepare
    const handler = withInvocation(async () => ({ statusCode: 200, body: "ok" }))
      .use(metricsMiddleware(options()))
      .before((request) => {
        invocationOf(request.context).result = succeededResult();
      });

    // Act: the invocation must return 2 s from now.
    const response = await handler({}, fakeContext(2_000 + RESPONSE_SAFETY_MS));

    // Assess
    expect(response).toEqual({ statusCode: 200, body: "ok" });
    expect(batches).toHaveLength(1);
    expect(cw.calls).toHaveLength(1);
    expect(show(cw.datums)).toContain("Invocations{Outcome=succeeded}");
    expect(show(cw.datums)).toContain("PhaseLatency{Phase=exec}");
    const slack = cw.datums.find((d) => d.name === "DeadlineSlack")?.value ?? -1;
    // The handler planned to return within 2 s: slack is measured against that plan.
    expect(slack).toBeGreaterThan(1_900);
    expect(slack).toBeLessThanOrEqual(2_000);
    expect(emf).toEqual([]);
  });

  it("publishes a validation failure from onError and still throws it to the caller", async () => {
    // Prepare
    const handler = withInvocation(async () => {
      throw new ValidationError("port: must be an integer", { phase: "request" });
    }).use(metricsMiddleware(options()));

    // Act
    const outcome = handler({}, fakeContext(3_000));

    // Assess
    await expect(outcome).rejects.toMatchObject({ name: "ValidationError" });
    expect(batches).toHaveLength(1);
    expect(show(cw.datums)).toEqual(
      expect.arrayContaining(["Invocations{Outcome=error}", "Errors{ErrorName=ValidationError}"]),
    );
  });

  it("names a 400 from an input middleware ValidationError", async () => {
    // Prepare: @middy/validator throws an HTTP error before the handler runs.
    const handler = withInvocation(async () => "never")
      .use(metricsMiddleware(options()))
      .before(() => {
        throw Object.assign(new Error("Event object failed validation"), {
          name: "BadRequestError",
          statusCode: 400,
        });
      });

    // Act
    await expect(handler({}, fakeContext(3_000))).rejects.toMatchObject({ statusCode: 400 });

    // Assess
    expect(show(cw.datums)).toContain("Errors{ErrorName=ValidationError}");
  });

  it("publishes the handler's own record on middy's early timeout, before the Lambda deadline", async () => {
    // Prepare: a handler still stuck in the banner phase when middy gives up.
    const lambdaTimeoutMs = 400;
    const handler = withInvocation(
      async (_event: unknown, _context: Context, { signal }: { signal: AbortSignal }) => {
        await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
        return "too late";
      },
      { timeoutEarlyInMillis: 150 },
    )
      .use(metricsMiddleware(options()))
      .before((request) => {
        invocationOf(request.context).result = bannerTimeoutResult();
      });

    // Act
    const started = Date.now();
    const outcome = handler({}, fakeContext(lambdaTimeoutMs));

    // Assess
    await expect(outcome).rejects.toMatchObject({ name: "TimeoutError" });
    expect(Date.now() - started).toBeLessThan(lambdaTimeoutMs);
    expect(show(cw.datums)).toEqual(
      expect.arrayContaining(["Errors{ErrorName=BannerTimeout}", "HandshakeHangs{}"]),
    );
  });

  it("reports middy's early timeout without a record as DeadlineExceeded", async () => {
    // Prepare
    const handler = withInvocation(
      async (_event: unknown, _context: Context, { signal }: { signal: AbortSignal }) => {
        await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
      },
      { timeoutEarlyInMillis: 150 },
    ).use(metricsMiddleware(options()));

    // Act
    await expect(handler({}, fakeContext(300))).rejects.toMatchObject({ name: "TimeoutError" });

    // Assess
    expect(show(cw.datums)).toContain("Errors{ErrorName=DeadlineExceeded}");
  });

  it.each(["hang", "500", "throttle"] as const)(
    "returns before mustReturnBy with every datum in the EMF output when the endpoint answers %s",
    async (behaviour) => {
      // Prepare
      cw.behaviour = behaviour;
      let mustReturnBy = 0;
      const handler = withInvocation(async () => ({ statusCode: 200, body: "ok" }))
        .use(metricsMiddleware(options()))
        .before((request) => {
          mustReturnBy = Date.now() + 250;
          invocationOf(request.context).result = bannerTimeoutResult();
        });

      // Act: the invocation must return 250 ms from now.
      const { value: response, stallMs } = await stalledDuring(() =>
        handler({}, fakeContext(250 + RESPONSE_SAFETY_MS)),
      );
      const returnedAt = Date.now();

      // Assess: the publish is cut safetyMs (20) before the deadline and the EMF fallback takes
      // ~1 ms, so a warm run returns ~20 ms early. What it may be late by beyond SLACK_MS is the
      // time this process was not scheduled (a run on a loaded machine once returned 115 ms past
      // mustReturnBy: the abort timer fired late). An unbounded publish (the hang lasts until
      // maxPublishMs, 1 s) is ≥ 700 ms late with no stall and fails.
      expect(response).toEqual({ statusCode: 200, body: "ok" });
      expect(returnedAt).toBeLessThan(mustReturnBy + SLACK_MS + stallMs);
      const [batch] = batches;
      expect(batch?.report.apiDatums).toBe(0);
      const fromEmf = emf.flatMap((l) => fromEmfDocument(JSON.parse(l) as EmfDocument));
      expect(fromEmf.map(key).sort()).toEqual(batch?.datums.map(key).sort());
    },
  );

  it("publishes once when a later after hook fails and onError runs", async () => {
    // Prepare
    const handler = withInvocation(async () => "ok")
      .use(metricsMiddleware(options()))
      .use({
        after: () => {
          throw new Error("audit sink down");
        },
      });

    // Act
    await expect(handler({}, fakeContext(3_000))).rejects.toThrow("audit sink down");

    // Assess
    expect(batches).toHaveLength(1);
    expect(cw.calls).toHaveLength(1);
  });

  it("never turns a metrics failure into a failed invocation", async () => {
    // Prepare: API fails and the EMF sink throws too.
    cw.behaviour = "500";
    const handler = withInvocation(async () => "ok").use(
      metricsMiddleware(
        options({
          writeLine: () => {
            throw new Error("EPIPE");
          },
          onPublished: () => {
            throw new Error("observer bug");
          },
        }),
      ),
    );

    // Act
    const response = await handler({}, fakeContext(3_000));

    // Assess
    expect(response).toBe("ok");
  });

  it("writes EMF and calls no API by default", async () => {
    // Prepare: no mode option, no BSSH_METRICS_MODE.
    const saved = process.env[ENV.metricsMode];
    delete process.env[ENV.metricsMode];
    const { mode: _, ...defaults } = options();
    const handler = withInvocation(async () => "ok").use(metricsMiddleware(defaults));

    // Act
    try {
      await handler({}, fakeContext(3_000));
    } finally {
      if (saved !== undefined) process.env[ENV.metricsMode] = saved;
    }

    // Assess
    expect(cw.calls).toHaveLength(0);
    expect(batches[0]?.report).toMatchObject({ mode: "emf", apiDatums: 0 });
    const fromEmf = emf.flatMap((l) => fromEmfDocument(JSON.parse(l) as EmfDocument));
    expect(fromEmf.map(key).sort()).toEqual(batches[0]?.datums.map(key).sort());
  });

  it("rejects unknown options", () => {
    // Act + Assess
    expect(() => metricsMiddleware({ namesapce: "x" } as MetricsMiddlewareOptions)).toThrow(
      /unknown option namesapce/,
    );
  });
});

describe("LeakedSockets", () => {
  // Only the function's side of a connection to it counts, as with a remote sshd.
  let peer: PeerListener;

  beforeAll(async () => {
    peer = await startPeerListener();
  });

  afterAll(async () => {
    await peer.close();
  });

  it("counts a socket an earlier invocation left open, and only that one", async () => {
    // Prepare
    let leaked: Socket | undefined;
    const leakedSocketsSeen: number[] = [];
    const handler = withInvocation(async (event: { leak?: boolean; close?: boolean }) => {
      if (event.leak) {
        leaked = await new Promise<Socket>((resolve, reject) => {
          const s = connect(peer.port, "127.0.0.1", () => resolve(s));
          s.once("error", reject);
        });
      }
      if (event.close) leaked?.destroy();
      return "ok";
    }).use(
      metricsMiddleware(
        options({
          onPublished: (datums) => {
            leakedSocketsSeen.push(datums.find((d) => d.name === "LeakedSockets")?.value ?? -1);
          },
        }),
      ),
    );

    // Act: healthy, then one that leaks, one that sees the leak and closes it, one clean.
    await handler({}, fakeContext(3_000));
    await handler({ leak: true }, fakeContext(3_000));
    await handler({ close: true }, fakeContext(3_000));
    await new Promise((resolve) => setImmediate(resolve));
    await handler({}, fakeContext(3_000));

    // Assess: the leak shows at the start of the invocation after the one that caused it.
    expect(leakedSocketsSeen).toEqual([0, 0, 1, 0]);
    // Keep-alive sockets of the CloudWatch client, used by every invocation, never count.
    expect(cw.calls.length).toBe(4);
  });
});
