import { afterEach, describe, expect, it, vi } from "vitest";
import {
  type EmfDocument,
  fromEmfDocument,
  toEmfDocuments,
  toEmfLines,
} from "../../functions/metrics/emf.ts";
import { type MetricDatum, toMetricDatums } from "../../lib/metrics.ts";
import { DEFAULT_METRIC_NAMESPACE } from "../../lib/names.ts";
import { bannerTimeoutResult, succeededResult } from "./metrics-fixtures.ts";

/** CloudWatch drops EMF timestamps older than 14 days; Powertools warns about them. */
const NOW = Date.now();

function key(d: MetricDatum): string {
  return JSON.stringify([d.name, d.unit, Object.entries(d.dimensions).sort(), d.value]);
}

afterEach(() => {
  vi.restoreAllMocks();
  vi.unstubAllEnvs();
});

describe("EMF encoding (Powertools)", () => {
  it("carries every datum exactly once, one line per distinct dimension map", () => {
    // Prepare
    const datums = toMetricDatums({
      result: succeededResult(),
      deadlineSlackMs: 500,
      leakedSockets: 0,
    });

    // Act
    const lines = toEmfLines(datums, DEFAULT_METRIC_NAMESPACE, NOW);

    // Assess: {} + {Outcome} + one per Phase value (8 phases).
    expect(lines).toHaveLength(10);
    const decoded = lines.flatMap((l) => fromEmfDocument(JSON.parse(l) as EmfDocument));
    expect(decoded.map(key).sort()).toEqual(datums.map(key).sort());
  });

  it("writes no default or service dimension: a dimensionless metric has one empty set", () => {
    // Prepare: Powertools would add `service` from this variable.
    vi.stubEnv("POWERTOOLS_SERVICE_NAME", "bounded-ssh");
    const datums = toMetricDatums({
      result: bannerTimeoutResult(),
      deadlineSlackMs: 40,
      leakedSockets: 1,
    });

    // Act
    const docs = toEmfDocuments(datums, "Custom-NoService", NOW + 42);

    // Assess
    for (const doc of docs) {
      expect(doc.service).toBeUndefined();
      expect(doc._aws.Timestamp).toBe(NOW + 42);
      expect(doc._aws.CloudWatchMetrics).toHaveLength(1);
      for (const directive of doc._aws.CloudWatchMetrics) {
        expect(directive.Namespace).toBe("Custom-NoService");
        expect(directive.Dimensions).toHaveLength(1);
        for (const set of directive.Dimensions) {
          expect(set).not.toContain("service");
          for (const k of set) expect(typeof doc[k]).toBe("string");
        }
        for (const m of directive.Metrics) expect(doc[m.Name]).toBeDefined();
      }
    }
    const plain = docs.find((d) => d.LeakedSockets !== undefined);
    expect(plain?._aws.CloudWatchMetrics[0]?.Dimensions).toEqual([[]]);
    const byPhase = docs.find((d) => d.Phase === "banner");
    expect(byPhase?._aws.CloudWatchMetrics[0]?.Dimensions).toEqual([["Phase"]]);
    expect(byPhase?.Timeouts).toBe(1);
    expect(byPhase?.PhaseLatency).toBe(3_000);
  });

  it("keeps repeated datums of one series as a value list", () => {
    // Prepare
    const d: MetricDatum = { name: "PhaseLatency", unit: "Milliseconds", value: 5, dimensions: {} };

    // Act
    const lines = toEmfLines([d, { ...d, value: 7 }, { ...d, value: 5 }], "N", NOW);

    // Assess
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0] as string).PhaseLatency).toEqual([5, 7, 5]);
  });

  it("splits a series past Powertools' 100-value limit itself, so nothing bypasses the writer", () => {
    // Prepare
    const write = vi.spyOn(process.stdout, "write");
    const datums: MetricDatum[] = Array.from({ length: 250 }, (_, i) => ({
      name: "PhaseLatency",
      unit: "Milliseconds",
      value: i,
      dimensions: { Phase: "exec" },
    }));

    // Act
    const docs = toEmfDocuments(datums, "N", NOW);

    // Assess
    expect(write).not.toHaveBeenCalled();
    expect(docs.map((d) => (d.PhaseLatency as number[]).length)).toEqual([99, 99, 52]);
    expect(docs.flatMap(fromEmfDocument).map(key).sort()).toEqual(datums.map(key).sort());
  });
});
