/**
 * The EMF path (Powertools) must produce exactly the series the alarms watch: same namespace,
 * metric name, unit and dimension map, with no extra dimension (Powertools' `service`). The
 * alarms are read from the synthesized template, not restated here.
 */

import { beforeAll, describe, expect, it } from "vitest";
import { MAINTENANCE_METRIC } from "../../cdk/constructs/monitoring.ts";
import { type EmfDocument, fromEmfDocument } from "../../functions/metrics/emf.ts";
import { publishMetrics, toCloudWatchData } from "../../functions/metrics/publisher.ts";
import { type MetricDatum, type MetricInput, toMetricDatums } from "../../lib/metrics.ts";
import {
  DEFAULT_METRIC_NAMESPACE,
  ERROR_NAMES,
  type ErrorPhase,
  PHASE_TIMEOUT_ERROR,
} from "../../lib/names.ts";
import { synthOnce } from "../cdk/synth.ts";
import { bannerTimeoutResult, succeededResult } from "./metrics-fixtures.ts";

/** A series as CloudWatch keys it. */
interface Series {
  namespace: string;
  name: string;
  unit?: string;
  dimensions: Record<string, string>;
}

const seriesKey = (s: Series) =>
  JSON.stringify([s.namespace, s.name, Object.entries(s.dimensions).sort()]);

interface AlarmMetric {
  Namespace?: string;
  MetricName?: string;
  Dimensions?: { Name: string; Value: unknown }[];
  Unit?: string;
}

/** Every metric any alarm of the template reads (plain alarms and metric-math alarms). */
function alarmSeries(): Series[] {
  const { template } = synthOnce();
  const out: Series[] = [];
  const add = (m: AlarmMetric, unit: string | undefined) => {
    if (!m.Namespace || !m.MetricName) return;
    const dimensions: Record<string, string> = {};
    for (const d of m.Dimensions ?? []) dimensions[d.Name] = JSON.stringify(d.Value);
    out.push({ namespace: m.Namespace, name: m.MetricName, unit, dimensions });
  };
  for (const alarm of Object.values(template.findResources("AWS::CloudWatch::Alarm"))) {
    const p = alarm.Properties as AlarmMetric & {
      Metrics?: { MetricStat?: { Metric: AlarmMetric; Unit?: string } }[];
    };
    add(p, p.Unit);
    for (const q of p.Metrics ?? []) if (q.MetricStat) add(q.MetricStat.Metric, q.MetricStat.Unit);
  }
  // Dimension values are written as JSON so a token is visible; ours are plain strings.
  return out.map((s) => ({
    ...s,
    dimensions: Object.fromEntries(
      Object.entries(s.dimensions).map(([k, v]) => [k, JSON.parse(v) as string]),
    ),
  }));
}

/** Metrics a metric filter derives from logs: in the namespace, but not ours to emit. */
function derivedNames(): Set<string> {
  const { template } = synthOnce();
  const names = new Set<string>();
  for (const f of Object.values(template.findResources("AWS::Logs::MetricFilter"))) {
    const t = (f.Properties as { MetricTransformations: { MetricName: string }[] })
      .MetricTransformations;
    for (const m of t) names.add(m.MetricName);
  }
  return names;
}

/** One invocation per way an invocation can end: every SPEC error, success, command failure. */
function scenarios(): MetricInput[] {
  const timeoutPhase = Object.fromEntries(
    Object.entries(PHASE_TIMEOUT_ERROR).map(([phase, name]) => [name, phase]),
  ) as Record<string, ErrorPhase>;
  const out: MetricInput[] = [
    { result: succeededResult(), deadlineSlackMs: 900, leakedSockets: 0 },
    {
      result: succeededResult({ status: "failed", exitCode: 3 }),
      deadlineSlackMs: 5,
      leakedSockets: 0,
    },
    { result: bannerTimeoutResult(), deadlineSlackMs: -3, leakedSockets: 2 },
  ];
  for (const name of ERROR_NAMES) {
    out.push({
      error: { name, phase: timeoutPhase[name] ?? "exec" },
      deadlineSlackMs: 10,
      leakedSockets: 0,
    });
  }
  return out;
}

let emitted: Series[];
let lines: EmfDocument[];
let datums: MetricDatum[];

beforeAll(async () => {
  lines = [];
  datums = scenarios().flatMap((s) => toMetricDatums(s));
  for (const s of scenarios()) {
    await publishMetrics(toMetricDatums(s), {
      mode: "emf",
      namespace: DEFAULT_METRIC_NAMESPACE,
      writeLine: (l) => lines.push(JSON.parse(l) as EmfDocument),
    });
  }
  emitted = lines.flatMap((doc) =>
    fromEmfDocument(doc).map((d) => ({
      namespace: doc._aws.CloudWatchMetrics[0]?.Namespace ?? "",
      name: d.name,
      unit: d.unit,
      dimensions: d.dimensions,
    })),
  );
}, 120_000);

describe("EMF series against the synthesized alarms", () => {
  it("emits every series an alarm reads, with the alarm's unit and exact dimensions", () => {
    // Prepare
    const derived = derivedNames();
    // MaintenanceWindow is put by operators (docs/deploy.md), never by the handlers.
    const watched = alarmSeries().filter(
      (s) =>
        s.namespace === DEFAULT_METRIC_NAMESPACE &&
        !derived.has(s.name) &&
        s.name !== MAINTENANCE_METRIC,
    );
    const byKey = new Map(emitted.map((s) => [seriesKey(s), s]));

    // Act
    const missing = watched.filter((s) => !byKey.has(seriesKey(s)));
    const wrongUnit = watched.filter((s) => s.unit && byKey.get(seriesKey(s))?.unit !== s.unit);

    // Assess: the alarms cover these kinds at least (a vacuous list would prove nothing).
    expect(new Set(watched.map((s) => s.name))).toEqual(
      new Set(["Errors", "Timeouts", "LeakedSockets", "DeadlineSlack", "Invocations", "Unbounded"]),
    );
    expect(missing).toEqual([]);
    expect(wrongUnit).toEqual([]);
  });

  it("writes no dimension outside SPEC §7 (no Powertools service or function_name)", () => {
    // Prepare
    const allowed = new Set(["Outcome", "ErrorName", "Phase"]);

    // Act
    const keys = new Set(
      lines.flatMap((doc) => doc._aws.CloudWatchMetrics.flatMap((d) => d.Dimensions.flat())),
    );
    const stray = lines.flatMap((doc) =>
      Object.keys(doc).filter((k) => typeof doc[k] === "string" && !allowed.has(k)),
    );

    // Assess
    expect([...keys].filter((k) => !allowed.has(k))).toEqual([]);
    expect(stray).toEqual([]);
    for (const doc of lines) {
      for (const d of doc._aws.CloudWatchMetrics)
        expect(d.Namespace).toBe(DEFAULT_METRIC_NAMESPACE);
    }
  });

  it("creates the same series as PutMetricData would, so the mode never changes what alarms see", () => {
    // Act
    const api = toCloudWatchData(datums, new Date()).map((d) =>
      seriesKey({
        namespace: DEFAULT_METRIC_NAMESPACE,
        name: d.MetricName ?? "",
        dimensions: Object.fromEntries((d.Dimensions ?? []).map((x) => [x.Name, x.Value])),
      }),
    );

    // Assess
    expect(new Set(emitted.map(seriesKey))).toEqual(new Set(api));
  });
});
