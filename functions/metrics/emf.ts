/**
 * CloudWatch Embedded Metric Format, built by Powertools for AWS Lambda
 * (`@aws-lambda-powertools/metrics`): the default way datums reach CloudWatch, and the
 * fallback of the `api` mode when `PutMetricData` fails or there is no time left for it
 * (docs/metrics.md, "Choosing the mode").
 *
 * Powertools writes one directive per document: every metric on a line shares the line's
 * dimension sets. The series the alarms watch are exact (namespace, name, dimensions), so each
 * distinct dimension map gets its own document, with Powertools' default dimensions (its
 * `service` dimension) cleared: a metric without dimensions is written with one empty
 * dimension set (`[[]]`), never with `service`. `test/functions/metrics-emf-alarms.test.ts`
 * compares the series with the synthesized alarms.
 * @see https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
 */
import { Metrics } from "@aws-lambda-powertools/metrics";
import type { MetricDatum, MetricUnit } from "../../lib/metrics.ts";

/**
 * Powertools flushes on its own (to its console, bypassing the caller's writer) when a metric
 * reaches 100 values or a document 100 metrics; chunks stay one below both.
 */
const MAX_VALUES_PER_METRIC = 99;
const MAX_METRICS_PER_LINE = 99;

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

/** One Powertools instance per namespace and container; used synchronously, cleared after each line. */
const instances = new Map<string, Metrics>();

function metricsFor(namespace: string): Metrics {
  let m = instances.get(namespace);
  if (!m) {
    // Warnings (an invalid dimension, a timestamp out of range) are bugs here: stderr, not the
    // EMF stream.
    m = new Metrics({ namespace, logger: console });
    m.clearDefaultDimensions();
    instances.set(namespace, m);
  }
  return m;
}

function dimensionKey(dimensions: Record<string, string>): string {
  return JSON.stringify(
    Object.entries(dimensions).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
  );
}

/** Datums grouped by their exact dimension map, split so Powertools never flushes by itself. */
function lineGroups(datums: readonly MetricDatum[]): MetricDatum[][] {
  const byDimensions = new Map<string, MetricDatum[][]>();
  const out: MetricDatum[][] = [];
  for (const d of datums) {
    const key = dimensionKey(d.dimensions);
    let groups = byDimensions.get(key);
    if (!groups) {
      groups = [];
      byDimensions.set(key, groups);
    }
    const fits = (g: MetricDatum[]) => {
      const same = g.filter((x) => x.name === d.name);
      if (same.length > 0) return same.length < MAX_VALUES_PER_METRIC && same[0]?.unit === d.unit;
      return new Set(g.map((x) => x.name)).size < MAX_METRICS_PER_LINE;
    };
    let group = groups.find(fits);
    if (!group) {
      group = [];
      groups.push(group);
      out.push(group);
    }
    group.push(d);
  }
  return out;
}

/**
 * EMF documents carrying exactly the given datums (each datum once): one document per distinct
 * dimension map, built and validated by Powertools.
 */
export function toEmfDocuments(
  datums: readonly MetricDatum[],
  namespace: string,
  timestamp: number = Date.now(),
): EmfDocument[] {
  const metrics = metricsFor(namespace);
  const docs: EmfDocument[] = [];
  for (const group of lineGroups(datums)) {
    try {
      // An empty map is an empty dimension set: the metric without dimensions.
      metrics.addDimensions((group[0] as MetricDatum).dimensions);
      for (const d of group) metrics.addMetric(d.name, d.unit, d.value);
      metrics.setTimestamp(timestamp);
      docs.push(metrics.serializeMetrics() as unknown as EmfDocument);
    } finally {
      metrics.clearMetrics();
      metrics.clearDimensions();
    }
  }
  return docs;
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
 * the demo to count what a line carried; CloudWatch does the same when it ingests a line.
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
