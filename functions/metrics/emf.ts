/**
 * CloudWatch Embedded Metric Format: the fallback that makes "no datum is lost" true when
 * `PutMetricData` fails or there is no time left for it (SPEC §7). A line written to stdout
 * in Lambda becomes metrics once CloudWatch Logs ingests it.
 *
 * EMF carries each metric's value in a top-level key named after the metric, and each
 * dimension's value in a top-level key named after the dimension. So one line can hold one
 * value per dimension name and one value (list) per metric name: `PhaseLatency` for `connect`
 * and for `banner` cannot share a line. Datums are therefore packed greedily into as few lines
 * as those two rules allow; every directive lists its own dimension sets.
 * @see https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
 */
import type { MetricDatum, MetricUnit } from "../../lib/metrics.ts";

/** EMF limits: metrics per directive/line and values per metric. */
const MAX_METRICS_PER_LINE = 100;
const MAX_VALUES_PER_METRIC = 100;

/** A metric name + unit + dimension values, with every value reported for it. */
interface Series {
  name: string;
  unit: MetricUnit;
  dimensions: Record<string, string>;
  values: number[];
}

interface MetricInLine {
  unit: MetricUnit;
  values: number[];
  dimensionSets: string[][];
}

interface Line {
  dimensions: Map<string, string>;
  metrics: Map<string, MetricInLine>;
}

/** One JSON-ready EMF line. Top-level keys are `_aws`, dimension names and metric names. */
export type EmfDocument = Record<string, unknown> & {
  _aws: {
    Timestamp: number;
    CloudWatchMetrics: {
      Namespace: string;
      Dimensions: string[][];
      Metrics: { Name: string; Unit: MetricUnit }[];
    }[];
  };
};

function seriesKey(d: MetricDatum): string {
  const dims = Object.keys(d.dimensions)
    .sort()
    .map((k) => `${k}=${d.dimensions[k]}`);
  return JSON.stringify([d.name, d.unit, dims]);
}

/** Datums with the same name, unit and dimensions become one series with several values. */
function toSeries(datums: readonly MetricDatum[]): Series[] {
  const byKey = new Map<string, Series>();
  const out: Series[] = [];
  for (const d of datums) {
    const key = seriesKey(d);
    const existing = byKey.get(key);
    if (existing && existing.values.length < MAX_VALUES_PER_METRIC) {
      existing.values.push(d.value);
      continue;
    }
    const series: Series = { name: d.name, unit: d.unit, dimensions: d.dimensions, values: [] };
    series.values.push(d.value);
    byKey.set(key, series);
    out.push(series);
  }
  return out;
}

function sameValues(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** Whether a series can join a line without changing what the line already says. */
function fits(line: Line, s: Series): boolean {
  for (const [k, v] of Object.entries(s.dimensions)) {
    const have = line.dimensions.get(k);
    if (have !== undefined && have !== v) return false;
    // A dimension key must not collide with a metric value key in the same line.
    if (line.metrics.has(k)) return false;
  }
  if (line.dimensions.has(s.name)) return false;
  const m = line.metrics.get(s.name);
  if (m) return m.unit === s.unit && sameValues(m.values, s.values);
  return line.metrics.size < MAX_METRICS_PER_LINE;
}

function place(line: Line, s: Series): void {
  const dimensionNames = Object.keys(s.dimensions).sort();
  for (const k of dimensionNames) line.dimensions.set(k, s.dimensions[k] as string);
  const m = line.metrics.get(s.name);
  if (m) m.dimensionSets.push(dimensionNames);
  else
    line.metrics.set(s.name, { unit: s.unit, values: s.values, dimensionSets: [dimensionNames] });
}

function render(line: Line, namespace: string, timestamp: number): EmfDocument {
  // Metrics that share exactly the same dimension sets share one directive.
  const directives = new Map<string, EmfDocument["_aws"]["CloudWatchMetrics"][number]>();
  const doc: Record<string, unknown> = {};
  for (const [k, v] of line.dimensions) doc[k] = v;
  for (const [name, m] of line.metrics) {
    const key = JSON.stringify(m.dimensionSets);
    let directive = directives.get(key);
    if (!directive) {
      directive = { Namespace: namespace, Dimensions: m.dimensionSets, Metrics: [] };
      directives.set(key, directive);
    }
    directive.Metrics.push({ Name: name, Unit: m.unit });
    doc[name] = m.values.length === 1 ? m.values[0] : m.values;
  }
  return {
    _aws: { Timestamp: timestamp, CloudWatchMetrics: [...directives.values()] },
    ...doc,
  };
}

/**
 * EMF documents carrying exactly the given datums (each datum once), in as few lines as EMF's
 * one-value-per-key rule allows.
 */
export function toEmfDocuments(
  datums: readonly MetricDatum[],
  namespace: string,
  timestamp: number = Date.now(),
): EmfDocument[] {
  const lines: Line[] = [];
  for (const s of toSeries(datums)) {
    let line = lines.find((l) => fits(l, s));
    if (!line) {
      line = { dimensions: new Map(), metrics: new Map() };
      lines.push(line);
    }
    place(line, s);
  }
  return lines.map((l) => render(l, namespace, timestamp));
}

/** {@link toEmfDocuments}, serialised: one JSON document per line, no trailing newline. */
export function toEmfLines(
  datums: readonly MetricDatum[],
  namespace: string,
  timestamp: number = Date.now(),
): string[] {
  return toEmfDocuments(datums, namespace, timestamp).map((d) => JSON.stringify(d));
}

/**
 * Reads EMF documents back into datums (one per dimension set and value). Used by tests and
 * the demo to count what a fallback carried; CloudWatch does the same when it ingests a line.
 */
export function fromEmfDocument(doc: EmfDocument): MetricDatum[] {
  const out: MetricDatum[] = [];
  for (const directive of doc._aws.CloudWatchMetrics) {
    for (const metric of directive.Metrics) {
      const raw = doc[metric.Name];
      const values = Array.isArray(raw) ? (raw as number[]) : [raw as number];
      for (const set of directive.Dimensions) {
        const dimensions: Record<string, string> = {};
        for (const k of set) dimensions[k] = String(doc[k]);
        for (const value of values) {
          out.push({
            name: metric.Name as MetricDatum["name"],
            unit: metric.Unit,
            value,
            dimensions,
          });
        }
      }
    }
  }
  return out;
}
