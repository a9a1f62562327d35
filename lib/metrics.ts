/**
 * The metric model of SPEC §7: what one invocation reports, as plain data. Pure on purpose —
 * no AWS SDK here — so the engine, the local emulator, the demo and the CDK alarms share it,
 * and the CloudWatch publisher (`functions/metrics/`) only has to ship what this returns.
 */
import {
  DIMENSION,
  type ErrorName,
  type ErrorPhase,
  HANDSHAKE_HANG_ERRORS,
  METRIC,
  type MetricName,
  PHASE_TIMEOUT_ERROR,
  PHASES,
  type Phase,
} from "./names.ts";
import type { PhaseTimings, RunResult } from "./types.ts";

/** Units used by the model; the string values are CloudWatch `StandardUnit`s. */
export type MetricUnit = "Count" | "Milliseconds";

/**
 * The unit of every metric. CDK alarms and dashboards import this so a graph never asks
 * CloudWatch for a unit the function does not publish (which silently shows no data).
 */
export const METRIC_UNIT = {
  [METRIC.Invocations]: "Count",
  [METRIC.Errors]: "Count",
  [METRIC.Timeouts]: "Count",
  [METRIC.HandshakeHangs]: "Count",
  [METRIC.PhaseLatency]: "Milliseconds",
  [METRIC.SessionDuration]: "Milliseconds",
  [METRIC.DeadlineSlack]: "Milliseconds",
  [METRIC.LeakedSockets]: "Count",
  [METRIC.OutputTruncated]: "Count",
  [METRIC.Unbounded]: "Count",
} as const satisfies Record<MetricName, MetricUnit>;

/** One value of one metric with its dimensions; `{}` means the metric without dimensions. */
export interface MetricDatum {
  name: MetricName;
  unit: MetricUnit;
  value: number;
  dimensions: Record<string, string>;
}

/** The error an invocation ended with, as far as metrics care. */
export interface MetricError {
  /** A SPEC §6 name; anything else is reported as-is but should not happen. */
  name: ErrorName | (string & {});
  phase: ErrorPhase | (string & {});
}

/** Everything {@link toMetricDatums} needs to know about one invocation. */
export interface MetricInput {
  /** The §5 result, when a session ran (or a synthetic result was built for an early failure). */
  result?: RunResult;
  /** The error the caller saw. @default result.error */
  error?: MetricError;
  /** Time left when the handler returned (ms); negative when it overran. */
  deadlineSlackMs: number;
  /** TCP sockets found open at invocation start (leaks carried over from earlier invocations). */
  leakedSockets: number;
}

/**
 * Whether an invocation broke its bound, as far as it can tell itself (the "bounded" SLI's bad
 * event, docs/alarms.md "SLOs"): it returned after its deadline (`deadlineSlackMs < 0`, the
 * same test as the `DeadlineOverrun` alarm's `DeadlineSlack` Minimum < 0), or it found TCP
 * sockets left open in its container (`leakedSockets > 0`: a wait without an end sits beside
 * it). A hard timeout is the third bad event, but Lambda kills that invocation before it can
 * report anything: the alarms count it from Lambda's `Duration` and the workflows' structured
 * failure events instead (cdk/constructs/monitoring.ts, `boundedBurn`).
 */
function isUnbounded(input: Pick<MetricInput, "deadlineSlackMs" | "leakedSockets">): boolean {
  return input.deadlineSlackMs < 0 || input.leakedSockets > 0;
}

/** Outcome when there is no result at all (validation failure, crash before a session). */
export const OUTCOME_WITHOUT_RESULT = "error";

const TIMEOUT_ERRORS: ReadonlySet<string> = new Set(Object.values(PHASE_TIMEOUT_ERROR));
const HANG_ERRORS: ReadonlySet<string> = new Set(HANDSHAKE_HANG_ERRORS);

/** Reads `timings.<phase>Ms` for a phase name; typed so a renamed phase fails to compile. */
function phaseTiming(timings: PhaseTimings, phase: Phase): number | null {
  return timings[`${phase}Ms`];
}

/**
 * The SPEC §7 datums of one invocation.
 *
 * @param input - The invocation: its §5 `result` (or only the `error` when no result exists),
 *   the time left when it returned (`deadlineSlackMs`) and the sockets found open at its
 *   start (`leakedSockets`).
 * @returns Plain datums (name, unit, value, dimensions) for any publisher: EMF,
 *   PutMetricData, a test. Pure: no I/O, no AWS import; never throws for any result.
 *
 * @example Publish one session's metrics with whatever client you use.
 * ```ts
 * import { readFileSync } from "node:fs";
 * import { runCommand, toMetricDatums } from "bounded-ssh";
 *
 * const budgetMs = 10_000;
 * const result = await runCommand(
 *   { host: "10.0.3.7", username: "deploy", command: "uptime" },
 *   { secret: { privateKey: readFileSync("/etc/bssh/id_ed25519", "utf8") }, budgetMs },
 * );
 * const datums = toMetricDatums({
 *   result,
 *   deadlineSlackMs: budgetMs - result.timings.totalMs,
 *   leakedSockets: 0,
 * });
 * for (const { name, unit, value, dimensions } of datums) {
 *   console.log(name, value, unit, JSON.stringify(dimensions));
 * }
 * ```
 *
 * Count metrics without dimensions (`Timeouts`, `HandshakeHangs`, `LeakedSockets`,
 * `OutputTruncated`, `Unbounded`) are always emitted, 0 when nothing happened: alarms then see data on
 * every healthy invocation instead of "missing", and `Average` reads as a rate. Metrics with
 * a dimension (`Errors` by `ErrorName`, `Timeouts` by `Phase`) are emitted only when they
 * occurred, to keep one series per value that actually exists.
 */
export function toMetricDatums(input: MetricInput): MetricDatum[] {
  const { result } = input;
  const error = input.error ?? result?.error;
  const datums: MetricDatum[] = [];
  const add = (name: MetricName, value: number, dimensions: Record<string, string> = {}) => {
    datums.push({ name, unit: METRIC_UNIT[name], value, dimensions });
  };

  const outcome = result?.status ?? OUTCOME_WITHOUT_RESULT;
  add(METRIC.Invocations, 1);
  add(METRIC.Invocations, 1, { [DIMENSION.Outcome]: outcome });

  if (error) add(METRIC.Errors, 1, { [DIMENSION.ErrorName]: error.name });

  const timedOut = error !== undefined && TIMEOUT_ERRORS.has(error.name);
  add(METRIC.Timeouts, timedOut ? 1 : 0);
  if (timedOut) add(METRIC.Timeouts, 1, { [DIMENSION.Phase]: error.phase });
  add(METRIC.HandshakeHangs, error !== undefined && HANG_ERRORS.has(error.name) ? 1 : 0);

  if (result) {
    for (const phase of PHASES) {
      const ms = phaseTiming(result.timings, phase);
      if (ms !== null) add(METRIC.PhaseLatency, ms, { [DIMENSION.Phase]: phase });
    }
    add(METRIC.SessionDuration, result.timings.totalMs);
  }

  add(METRIC.DeadlineSlack, input.deadlineSlackMs);
  add(METRIC.LeakedSockets, input.leakedSockets);
  add(METRIC.OutputTruncated, result?.output.truncated ? 1 : 0);
  add(METRIC.Unbounded, isUnbounded(input) ? 1 : 0);
  return datums;
}
