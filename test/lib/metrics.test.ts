import { describe, expect, it } from "vitest";
import { METRIC_UNIT, type MetricDatum, toMetricDatums } from "../../lib/metrics.ts";
import { DIMENSION, METRIC } from "../../lib/names.ts";
import { bannerTimeoutResult, succeededResult } from "../functions/metrics-fixtures.ts";

/** `name{k=v,...}=value`, order-independent assertions read better than object lists. */
function show(datums: MetricDatum[]): string[] {
  return datums.map((d) => {
    const dims = Object.entries(d.dimensions)
      .map(([k, v]) => `${k}=${v}`)
      .join(",");
    return `${d.name}{${dims}}=${d.value}`;
  });
}

describe("toMetricDatums", () => {
  it("reports a successful session: outcome, every phase's latency, zero counters", () => {
    // Act
    const datums = toMetricDatums({
      result: succeededResult(),
      deadlineSlackMs: 850,
      leakedSockets: 0,
    });

    // Assess
    expect(show(datums).sort()).toEqual(
      [
        "Invocations{}=1",
        "Invocations{Outcome=succeeded}=1",
        "Timeouts{}=0",
        "HandshakeHangs{}=0",
        "PhaseLatency{Phase=resolve}=1",
        "PhaseLatency{Phase=connect}=2",
        "PhaseLatency{Phase=banner}=3",
        "PhaseLatency{Phase=handshake}=40",
        "PhaseLatency{Phase=auth}=5",
        "PhaseLatency{Phase=channel}=6",
        "PhaseLatency{Phase=exec}=70",
        "PhaseLatency{Phase=teardown}=1",
        "SessionDuration{}=128",
        "DeadlineSlack{}=850",
        "LeakedSockets{}=0",
        "OutputTruncated{}=0",
        "Unbounded{}=0",
      ].sort(),
    );
  });

  it("reports a banner hang as an error, a timeout in the banner phase and a handshake hang", () => {
    // Act
    const datums = toMetricDatums({
      result: bannerTimeoutResult(),
      deadlineSlackMs: 120,
      leakedSockets: 2,
    });

    // Assess
    const shown = show(datums);
    expect(shown).toContain("Invocations{Outcome=timed_out}=1");
    expect(shown).toContain("Errors{ErrorName=BannerTimeout}=1");
    expect(shown).toContain("Timeouts{}=1");
    expect(shown).toContain("Timeouts{Phase=banner}=1");
    expect(shown).toContain("HandshakeHangs{}=1");
    expect(shown).toContain("LeakedSockets{}=2");
    // Phases never reached have null timings and no latency datum.
    expect(
      datums.filter((d) => d.name === METRIC.PhaseLatency).map((d) => d.dimensions.Phase),
    ).toEqual(["connect", "banner", "teardown"]);
  });

  it("counts a command timeout as a timeout in exec but not as a handshake hang", () => {
    // Prepare
    const result = succeededResult({
      status: "timed_out",
      exitCode: null,
      phase: "exec",
      error: {
        name: "CommandTimeout",
        phase: "exec",
        message: "exec phase did not finish",
        retryable: false,
        commandStarted: true,
      },
    });

    // Act
    const shown = show(toMetricDatums({ result, deadlineSlackMs: 10, leakedSockets: 0 }));

    // Assess
    expect(shown).toContain("Timeouts{Phase=exec}=1");
    expect(shown).toContain("HandshakeHangs{}=0");
  });

  it("reports a validation failure without a result as outcome error", () => {
    // Act
    const datums = toMetricDatums({
      error: { name: "ValidationError", phase: "request" },
      deadlineSlackMs: 2_900,
      leakedSockets: 0,
    });

    // Assess
    expect(show(datums).sort()).toEqual(
      [
        "Invocations{}=1",
        "Invocations{Outcome=error}=1",
        "Errors{ErrorName=ValidationError}=1",
        "Timeouts{}=0",
        "HandshakeHangs{}=0",
        "DeadlineSlack{}=2900",
        "LeakedSockets{}=0",
        "OutputTruncated{}=0",
        "Unbounded{}=0",
      ].sort(),
    );
  });

  it("prefers the error the caller saw over the result's own", () => {
    // Prepare: Step Functions with failOnNonZeroExit throws CommandFailed for a failed result.
    const result = succeededResult({ status: "failed", exitCode: 3 });

    // Act
    const shown = show(
      toMetricDatums({
        result,
        error: { name: "CommandFailed", phase: "exec" },
        deadlineSlackMs: 0,
        leakedSockets: 0,
      }),
    );

    // Assess
    expect(shown).toContain("Invocations{Outcome=failed}=1");
    expect(shown).toContain("Errors{ErrorName=CommandFailed}=1");
    expect(shown).toContain("Timeouts{}=0");
  });

  it.each([
    ["on time, no leak", 850, 0, 0],
    ["exactly at the deadline", 0, 0, 0],
    ["after the deadline", -1, 0, 1],
    ["beside a leaked socket", 850, 1, 1],
    ["late and beside a leak", -300, 2, 1],
  ] as const)(
    "counts the bounded SLI's bad event once per invocation: %s",
    (_case, deadlineSlackMs, leakedSockets, expected) => {
      // Act
      const datums = toMetricDatums({ result: succeededResult(), deadlineSlackMs, leakedSockets });

      // Assess: one dimensionless datum, 0 or 1, whatever the outcome.
      const unbounded = datums.filter((d) => d.name === METRIC.Unbounded);
      expect(unbounded).toEqual([
        { name: METRIC.Unbounded, unit: "Count", value: expected, dimensions: {} },
      ]);
    },
  );

  it("counts truncated output", () => {
    // Prepare
    const base = succeededResult();
    const result = succeededResult({ output: { ...base.output, truncated: true } });

    // Act
    const shown = show(toMetricDatums({ result, deadlineSlackMs: 0, leakedSockets: 0 }));

    // Assess
    expect(shown).toContain("OutputTruncated{}=1");
  });

  it("uses only SPEC names, SPEC dimensions and the published unit of each metric", () => {
    // Act
    const datums = [
      ...toMetricDatums({ result: succeededResult(), deadlineSlackMs: 1, leakedSockets: 0 }),
      ...toMetricDatums({ result: bannerTimeoutResult(), deadlineSlackMs: 1, leakedSockets: 0 }),
    ];

    // Assess
    const names = new Set<string>(Object.values(METRIC));
    const dims = new Set<string>(Object.values(DIMENSION));
    for (const d of datums) {
      expect(names.has(d.name)).toBe(true);
      expect(d.unit).toBe(METRIC_UNIT[d.name]);
      for (const k of Object.keys(d.dimensions)) expect(dims.has(k)).toBe(true);
    }
    expect(Object.keys(METRIC_UNIT).sort()).toEqual(Object.values(METRIC).sort());
  });
});
