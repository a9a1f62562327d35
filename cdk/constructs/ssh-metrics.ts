import type { Duration } from "aws-cdk-lib";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import { METRIC_UNIT } from "../../lib/metrics.ts";
import { DIMENSION, METRIC, type MetricName, type Phase } from "../../lib/names.ts";

/** Metrics the CDK app derives itself from logs (metric filters); not part of SPEC §7. */
export const DERIVED_METRIC = {
  /** A workflow failure event whose structured `details.error` is `Sandbox.Timedout` / `Lambda.Unknown`. */
  WorkflowHardTimeouts: "WorkflowHardTimeouts",
} as const;

const UNIT = {
  Count: cloudwatch.Unit.COUNT,
  Milliseconds: cloudwatch.Unit.MILLISECONDS,
} as const;

/**
 * Builds the SPEC §7 metrics (names imported from `lib/names.ts`, units from `lib/metrics.ts`).
 * Creation only: alarms and widgets take these objects, so a metric is defined once whichever
 * alarm or graph shows it.
 */
export class SshMetrics {
  constructor(
    readonly namespace: string,
    readonly period: Duration,
  ) {}

  /** A SPEC §7 metric, optionally with one dimension. */
  metric(
    name: MetricName,
    statistic: string,
    dimensions?: Record<string, string>,
    label?: string,
  ): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: this.namespace,
      metricName: name,
      unit: UNIT[METRIC_UNIT[name]],
      statistic,
      period: this.period,
      dimensionsMap: dimensions,
      label,
    });
  }

  handshakeHangs(): cloudwatch.Metric {
    return this.metric(METRIC.HandshakeHangs, cloudwatch.Stats.SUM);
  }

  timeouts(phase: Phase): cloudwatch.Metric {
    // No label: a labelled metric renders as a metric-math alarm; dashboards add their own.
    return this.metric(METRIC.Timeouts, cloudwatch.Stats.SUM, { [DIMENSION.Phase]: phase });
  }

  leakedSockets(): cloudwatch.Metric {
    return this.metric(METRIC.LeakedSockets, cloudwatch.Stats.MAXIMUM);
  }

  /** Invocations that broke their bound as they report it themselves (Sum = how many). */
  unbounded(): cloudwatch.Metric {
    return this.metric(METRIC.Unbounded, cloudwatch.Stats.SUM);
  }

  /** All invocations (the dimensionless series). */
  invocationsTotal(): cloudwatch.Metric {
    return this.metric(METRIC.Invocations, cloudwatch.Stats.SUM);
  }

  invocations(outcome: string): cloudwatch.Metric {
    return this.metric(
      METRIC.Invocations,
      cloudwatch.Stats.SUM,
      { [DIMENSION.Outcome]: outcome },
      outcome,
    );
  }

  errors(errorName: string): cloudwatch.Metric {
    return this.metric(METRIC.Errors, cloudwatch.Stats.SUM, { [DIMENSION.ErrorName]: errorName });
  }

  phaseLatency(phase: Phase, statistic: string): cloudwatch.Metric {
    return this.metric(
      METRIC.PhaseLatency,
      statistic,
      { [DIMENSION.Phase]: phase },
      `${phase} ${statistic}`,
    );
  }

  deadlineSlack(statistic: string): cloudwatch.Metric {
    return this.metric(METRIC.DeadlineSlack, statistic, undefined, `slack ${statistic}`);
  }

  /** A metric this app derives from logs ({@link DERIVED_METRIC}). */
  derived(name: keyof typeof DERIVED_METRIC): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: this.namespace,
      metricName: DERIVED_METRIC[name],
      statistic: cloudwatch.Stats.SUM,
      period: this.period,
    });
  }
}
