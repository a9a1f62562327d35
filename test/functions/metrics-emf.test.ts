import { describe, expect, it } from "vitest";
import { type EmfDocument, fromEmfDocument, toEmfLines } from "../../functions/metrics/emf.ts";
import { type MetricDatum, toMetricDatums } from "../../lib/metrics.ts";
import { DEFAULT_METRIC_NAMESPACE } from "../../lib/names.ts";
import { bannerTimeoutResult, succeededResult } from "./metrics-fixtures.ts";

function key(d: MetricDatum): string {
  return JSON.stringify([d.name, d.unit, Object.entries(d.dimensions).sort(), d.value]);
}

describe("EMF encoding", () => {
  it("carries every datum exactly once, across as many lines as dimension values need", () => {
    // Prepare
    const datums = toMetricDatums({
      result: succeededResult(),
      deadlineSlackMs: 500,
      leakedSockets: 0,
    });

    // Act
    const lines = toEmfLines(datums, DEFAULT_METRIC_NAMESPACE, 1_700_000_000_000);

    // Assess: one line per distinct Phase value (8 phases), the rest packed into them.
    expect(lines).toHaveLength(8);
    const decoded = lines.flatMap((l) => fromEmfDocument(JSON.parse(l) as EmfDocument));
    expect(decoded.map(key).sort()).toEqual(datums.map(key).sort());
  });

  it("writes valid directives: each dimension set names keys present on the line", () => {
    // Prepare
    const datums = toMetricDatums({
      result: bannerTimeoutResult(),
      deadlineSlackMs: 40,
      leakedSockets: 1,
    });

    // Act
    const docs = toEmfLines(datums, "Custom", 42).map((l) => JSON.parse(l) as EmfDocument);

    // Assess
    for (const doc of docs) {
      expect(doc._aws.Timestamp).toBe(42);
      for (const directive of doc._aws.CloudWatchMetrics) {
        expect(directive.Namespace).toBe("Custom");
        for (const set of directive.Dimensions) {
          for (const k of set) expect(typeof doc[k]).toBe("string");
        }
        for (const m of directive.Metrics) expect(doc[m.Name]).toBeDefined();
      }
    }
    // Timeouts without dimension and by Phase share one value, so they share one key.
    const first = docs[0];
    expect(first?.Timeouts).toBe(1);
    expect(first?.Phase).toBeDefined();
    const timeouts = first?._aws.CloudWatchMetrics.find((d) =>
      d.Metrics.some((m) => m.Name === "Timeouts"),
    );
    expect(timeouts?.Dimensions).toEqual([[], ["Phase"]]);
  });

  it("keeps repeated datums of one series as a value list", () => {
    // Prepare
    const d: MetricDatum = { name: "PhaseLatency", unit: "Milliseconds", value: 5, dimensions: {} };

    // Act
    const lines = toEmfLines([d, { ...d, value: 7 }, { ...d, value: 5 }], "N", 1);

    // Assess
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0] as string).PhaseLatency).toEqual([5, 7, 5]);
  });
});
