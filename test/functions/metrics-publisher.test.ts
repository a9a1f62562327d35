import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type EmfDocument, fromEmfDocument } from "../../functions/metrics/emf.ts";
import {
  METRICS_ENV,
  publishMetrics,
  resetSharedCloudWatchClient,
} from "../../functions/metrics/publisher.ts";
import { type MetricDatum, toMetricDatums } from "../../lib/metrics.ts";
import { DEFAULT_METRIC_NAMESPACE } from "../../lib/names.ts";
import { ENV } from "../../operations/environment.ts";
import { FakeCloudWatch } from "./metrics-cloudwatch-server.ts";
import { bannerTimeoutResult, succeededResult } from "./metrics-fixtures.ts";

/** Slack allowed past a publish deadline: event-loop turns, not network time. */
const SLACK_MS = 50;

let cw: FakeCloudWatch;
let emf: string[];
const writeLine = (line: string) => {
  emf.push(line);
};

function key(d: MetricDatum): string {
  return JSON.stringify([d.name, d.unit, Object.entries(d.dimensions).sort(), d.value]);
}

function emfDatums(): MetricDatum[] {
  return emf.flatMap((l) => fromEmfDocument(JSON.parse(l) as EmfDocument));
}

/** Datums of `sent` found neither at the endpoint nor in the EMF output. */
function lost(sent: MetricDatum[]): MetricDatum[] {
  const seen = new Map<string, number>();
  for (const d of [...cw.datums, ...emfDatums()]) seen.set(key(d), (seen.get(key(d)) ?? 0) + 1);
  return sent.filter((d) => {
    const n = seen.get(key(d)) ?? 0;
    if (n === 0) return true;
    seen.set(key(d), n - 1);
    return false;
  });
}

/** Handles that would outlive an invocation into a frozen container. */
function handles(): { sockets: number; timers: number } {
  const info = process.getActiveResourcesInfo();
  return {
    sockets: info.filter((r) => r === "TCPSocketWrap").length,
    timers: info.filter((r) => r === "Timeout").length,
  };
}

const invocation = () => [
  ...toMetricDatums({ result: succeededResult(), deadlineSlackMs: 900, leakedSockets: 0 }),
  ...toMetricDatums({ result: bannerTimeoutResult(), deadlineSlackMs: 40, leakedSockets: 1 }),
];

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
});

describe("publishMetrics against a CloudWatch endpoint", () => {
  it("sends one PutMetricData with every datum and writes no EMF when the endpoint is healthy", async () => {
    // Prepare
    const datums = invocation();

    // Act
    const report = await publishMetrics(datums, {
      signal: AbortSignal.timeout(1_000),
      mode: "api",
      writeLine,
    });

    // Assess
    expect(cw.calls).toHaveLength(1);
    const call = cw.calls[0];
    expect(call?.headers["x-amz-target"]).toBe("GraniteServiceVersion20100801.PutMetricData");
    expect(call?.headers["content-type"]).toBe("application/x-amz-json-1.0");
    expect(call?.namespace).toBe(DEFAULT_METRIC_NAMESPACE);
    expect(cw.datums.map(key).sort()).toEqual(datums.map(key).sort());
    // Invocations{} and the zero counters repeat across the two results: merged on the wire.
    expect(report).toMatchObject({ apiDatums: datums.length, emfDatums: 0, emfLines: 0 });
    expect(report.apiError).toBeUndefined();
    expect(emf).toEqual([]);
  });

  it.each([
    ["hang", "TimeoutError"],
    ["500", "InternalServiceFault"],
    ["throttle", "Throttling"],
  ] as const)(
    "returns inside its deadline and loses no datum when the endpoint answers %s",
    async (behaviour, apiError) => {
      // Prepare
      cw.behaviour = behaviour;
      const datums = invocation();
      const before = handles();
      const timeoutMs = 300;

      // Act
      const started = performance.now();
      const report = await publishMetrics(datums, {
        signal: AbortSignal.timeout(timeoutMs),
        mode: "api",
        writeLine,
      });
      const elapsed = performance.now() - started;

      // Assess
      expect(elapsed).toBeLessThan(timeoutMs + SLACK_MS);
      expect(report.apiError).toBe(apiError);
      expect(report).toMatchObject({ apiDatums: 0, emfDatums: datums.length });
      // One immediate retry for an error answer; a hang is cut by the deadline in attempt one.
      expect(cw.calls).toHaveLength(behaviour === "hang" ? 1 : 2);
      expect(lost(datums)).toEqual([]);
      // Everything failed at the API, so the EMF output alone carries every datum.
      expect(emfDatums().map(key).sort()).toEqual(datums.map(key).sort());
      // An aborted request leaves neither its socket nor a retry timer for the next invocation.
      await sleep(20);
      const after = handles();
      expect(after.sockets).toBeLessThanOrEqual(before.sockets);
      expect(after.timers).toBeLessThanOrEqual(before.timers);
    },
  );

  it("writes EMF without calling the API when the signal has already fired", async () => {
    // Prepare
    const datums = invocation();

    // Act
    const report = await publishMetrics(datums, {
      signal: AbortSignal.abort(),
      mode: "api",
      writeLine,
    });

    // Assess
    expect(cw.calls).toHaveLength(0);
    expect(report).toMatchObject({ apiError: "NoTime", apiDatums: 0, emfDatums: datums.length });
    expect(lost(datums)).toEqual([]);
  });

  it("falls back to EMF when the caller's signal cancels the call", async () => {
    // Prepare
    cw.behaviour = "hang";
    const datums = invocation();
    const signal = AbortSignal.timeout(50);

    // Act
    const started = performance.now();
    const report = await publishMetrics(datums, { signal, mode: "api", writeLine });

    // Assess
    expect(performance.now() - started).toBeLessThan(50 + SLACK_MS);
    expect(report).toMatchObject({ apiError: "TimeoutError", emfDatums: datums.length });
    expect(lost(datums)).toEqual([]);
  });

  it("keeps no timer of its own: without a signal a healthy call completes and leaves none", async () => {
    // Prepare
    const datums = invocation();
    const before = handles();

    // Act
    const report = await publishMetrics(datums, { mode: "api", writeLine });

    // Assess
    expect(report).toMatchObject({ apiDatums: datums.length, emfDatums: 0 });
    expect(handles().timers).toBeLessThanOrEqual(before.timers);
  });

  it("honours the emf and both modes", async () => {
    // Prepare
    const datums = invocation();

    // Act
    const emfOnly = await publishMetrics(datums, { writeLine, mode: "emf" });
    const callsAfterEmf = cw.calls.length;
    const linesAfterEmf = emf.length;
    const both = await publishMetrics(datums, { writeLine, mode: "both" });

    // Assess
    expect(callsAfterEmf).toBe(0);
    expect(emfOnly).toMatchObject({ apiDatums: 0, emfDatums: datums.length });
    expect(cw.calls).toHaveLength(1);
    expect(both).toMatchObject({ apiDatums: datums.length, emfDatums: datums.length });
    expect(emf.length).toBe(linesAfterEmf * 2);
  });

  it("takes mode and namespace from its options (the handlers pass functions/config's)", async () => {
    // Prepare: the environment is read by functions/config only, never here.
    process.env[ENV.metricsMode] = "api";
    const datums = invocation();

    // Act
    try {
      await publishMetrics(datums, { mode: "emf", namespace: "Staging/BoundedSsh", writeLine });
    } finally {
      delete process.env[ENV.metricsMode];
    }

    // Assess
    expect(cw.calls).toHaveLength(0);
    const doc = JSON.parse(emf[0] as string) as EmfDocument;
    expect(doc._aws.CloudWatchMetrics[0]?.Namespace).toBe("Staging/BoundedSsh");
  });

  it("splits more than 1000 datums into calls within the API limit, compressed or not", async () => {
    // Prepare: distinct dimension values so nothing merges.
    const datums: MetricDatum[] = Array.from({ length: 2_500 }, (_, i) => ({
      name: "PhaseLatency",
      unit: "Milliseconds",
      value: i,
      dimensions: { Phase: `p${i}` },
    }));

    // Act
    const report = await publishMetrics(datums, {
      signal: AbortSignal.timeout(2_000),
      mode: "api",
      writeLine,
    });

    // Assess
    expect(cw.calls.map((c) => c.datums.length).sort()).toEqual([1_000, 1_000, 500]);
    expect(cw.calls.some((c) => c.headers["content-encoding"] === "gzip")).toBe(true);
    expect(report).toMatchObject({ apiDatums: 2_500, emfDatums: 0 });
    expect(lost(datums)).toEqual([]);
  });

  it("merges identical datums into Values and Counts", async () => {
    // Prepare
    const d: MetricDatum = { name: "PhaseLatency", unit: "Milliseconds", value: 5, dimensions: {} };
    const datums = [d, d, { ...d, value: 9 }];

    // Act
    const report = await publishMetrics(datums, {
      signal: AbortSignal.timeout(1_000),
      mode: "api",
      writeLine,
    });

    // Assess
    expect(report.apiDatums).toBe(3);
    expect(cw.datums.map(key).sort()).toEqual(datums.map(key).sort());
  });
});
