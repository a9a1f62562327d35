/**
 * Service level objectives as multiwindow, multi-burn-rate alarms (Google SRE workbook,
 * "Alerting on SLOs"): the one mechanism every SLI uses (docs/alarms.md, "SLOs"). An SLI says
 * what its bad and all events are over a window; this file turns that into a burn rate per
 * window and the `Fast`, `Slow` and `Budget` alarms of its catalog kind.
 */
import { Duration } from "aws-cdk-lib";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import type { AlarmKind } from "../../operations/alarm-catalog.ts";
import type { AlarmFactory } from "./alarm-factory.ts";

/**
 * The multiwindow burn-rate alarms (SRE workbook, table 5-8), per subject of a burn kind
 * (`AvailabilityBurn`, `BoundedBurn`): long and short window (seconds) and the burn rate both
 * must reach. 14.4 over 1 h spends 2 % of a 30-day budget; 6 over 6 h spends 5 %; 1 over 3 d
 * spends it exactly on schedule. A period of 1 h or more may span up to 7 days in one alarm
 * (PutMetricAlarm: Period × EvaluationPeriods ≤ 604,800 s; ≤ 86,400 s below 1 h), so each
 * window is one datapoint whose period is the window, 3 d included.
 */
export const BURN_WINDOWS = [
  { subject: "Fast", long: ["1h", 3600], short: ["5m", 300], burn: 14.4 },
  { subject: "Slow", long: ["6h", 21600], short: ["30m", 1800], burn: 6 },
  { subject: "Budget", long: ["3d", 259200], short: ["6h", 21600], burn: 1 },
] as const;

/** What an SLI counts over one window (every metric's period is the window). */
export interface SliCounts {
  /** The metrics the expressions read, by id (at most 10 with the expression: CloudWatch's limit). */
  readonly metrics: Readonly<Record<string, cloudwatch.IMetric>>;
  /** Metric math: the bad events in the window. */
  readonly bad: string;
  /** Metric math: all events in the window (bad included). */
  readonly all: string;
}

/** One SLO: a catalog kind with the subjects of {@link BURN_WINDOWS}, its target and its SLI. */
export interface SloSpec {
  readonly kind: AlarmKind;
  /** The SLI's name in labels, e.g. `availability`. */
  readonly sli: string;
  /** The deploy config key of the target, named in the error when the target is refused. */
  readonly targetKey: string;
  /** Percent of good events over 30 days, above 0 and below 100. */
  readonly target: number;
  /** Bad and all events over a window of this length. */
  readonly counts: (window: Duration) => SliCounts;
}

/** `FILL(a, 0) + FILL(b, 0) + …`: a sum that reads a missing series as 0. */
export function sumOf(ids: readonly string[]): string {
  return ids.map((id) => `FILL(${id}, 0)`).join(" + ");
}

/**
 * The error budget of a target: the share of events allowed to be bad (99.9 → 0.001).
 *
 * @throws when the target is no percentage strictly between 0 and 100 (100 leaves no budget:
 *   every burn rate would divide by zero).
 */
export function errorBudget(targetKey: string, target: number): number {
  if (!(target > 0 && target < 100)) {
    throw new Error(
      `${targetKey} ${target} must be a percentage above 0 and below 100 (e.g. 99.9)`,
    );
  }
  return Number((1 - target / 100).toPrecision(6));
}

/** The burn rate over one window: bad / all / budget (1 = spending the budget on schedule). */
export function burnRate(spec: SloSpec, seconds: number): cloudwatch.MathExpression {
  const budget = errorBudget(spec.targetKey, spec.target);
  const period = Duration.seconds(seconds);
  const c = spec.counts(period);
  return new cloudwatch.MathExpression({
    expression: `(${c.bad}) / MAX([${c.all}, 1]) / ${budget}`,
    usingMetrics: { ...c.metrics },
    period,
    label: `${spec.sli} burn rate (SLO ${spec.target} %)`,
  });
}

/**
 * The `Fast`, `Slow` and `Budget` alarms of one SLO: per {@link BURN_WINDOWS} row a composite
 * `ALARM(long) AND ALARM(short)` over one metric alarm per window, named, described and routed
 * by the factory from the catalog (`<stage>-BoundedSsh-<Kind>-<Subject>`, windows
 * `…-<Subject>-<window>`).
 *
 * @param f the stage's alarm factory.
 * @param spec the kind, target and SLI.
 * @returns the routed composites, in {@link BURN_WINDOWS} order.
 */
export function createSloAlarms(f: AlarmFactory, spec: SloSpec): cloudwatch.CompositeAlarm[] {
  errorBudget(spec.targetKey, spec.target);
  return BURN_WINDOWS.map((w) =>
    f.createMultiWindow({
      kind: spec.kind,
      subject: w.subject,
      windows: [
        { label: w.long[0], metric: burnRate(spec, w.long[1]), threshold: w.burn },
        { label: w.short[0], metric: burnRate(spec, w.short[1]), threshold: w.burn },
      ],
    }),
  );
}
