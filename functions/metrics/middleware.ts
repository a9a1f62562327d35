/**
 * The metrics middleware: measures leaked sockets when an invocation starts and publishes the
 * invocation's SPEC §7 datums once when it ends, from `after` or `onError`, whichever runs.
 * Register it first (`.use(metricsMiddleware())` before the others) so its `after`/`onError`
 * run last and see the record as the response leaves.
 */

import type { CloudWatchClient } from "@aws-sdk/client-cloudwatch";
import type { MiddlewareObj, Request } from "@middy/core";
import type { Context } from "aws-lambda";
import { type MetricDatum, type MetricError, toMetricDatums } from "../../lib/metrics.ts";
import { ERROR_NAMES, type ErrorName } from "../../lib/names.ts";
import { type InvocationRecord, invocationOf } from "../shared/invocation.ts";
import { preload } from "../shared/lazy.ts";
import { defaultLeakGauge, type LeakGauge } from "./leak-gauge.ts";
import {
  loadCloudWatchSdk,
  loadEmfEncoder,
  type MetricsMode,
  metricsConfigFromEnv,
  type PublishReport,
  publishMetrics,
} from "./publisher.ts";

export interface MetricsMiddlewareOptions {
  /** @default env `BSSH_METRICS_NAMESPACE`, else `BoundedSsh` */
  namespace?: string;
  /** @default env `BSSH_METRICS_MODE`, else `emf` (`DEFAULT_METRICS_MODE`) */
  mode?: MetricsMode;
  /** Kept back from the invocation's deadline for the EMF fallback and the response (ms). @default 20 */
  safetyMs?: number;
  /** Longest a `PutMetricData` call may hold the response even with time to spare (ms). @default 1000 */
  maxPublishMs?: number;
  /** Below this much time the API is not tried at all: EMF only (ms). @default 15 */
  minApiMs?: number;
  /** @default the container's gauge */
  leakGauge?: LeakGauge;
  /** @default the container's shared client */
  client?: CloudWatchClient;
  /** Writes one EMF line. @default stdout */
  writeLine?: (line: string) => void;
  /** Sees every published batch (demo output, tests). Errors it throws are ignored. */
  onPublished?: (datums: MetricDatum[], report: PublishReport) => void;
}

const defaults = {
  safetyMs: 20,
  maxPublishMs: 1_000,
  minApiMs: 15,
};

/** Too little time for a round trip: the publisher writes EMF without trying the API. */
const ABORTED = AbortSignal.abort();

const KNOWN_OPTIONS: ReadonlySet<string> = new Set([
  "namespace",
  "mode",
  "safetyMs",
  "maxPublishMs",
  "minApiMs",
  "leakGauge",
  "client",
  "writeLine",
  "onPublished",
]);

const SPEC_ERRORS: ReadonlySet<string> = new Set(ERROR_NAMES);

type AnyRequest = Request<unknown, unknown, Error, Context>;

/**
 * The error metrics should count. The handler's record wins; an error that never reached it
 * (another middleware threw, middy's early timeout) is named after the SPEC error it stands
 * for, so `ErrorName` keeps to SPEC §6's names.
 */
function errorFor(record: InvocationRecord, thrown: unknown): MetricError | undefined {
  if (record.error) return { name: record.error.name, phase: record.error.phase };
  if (record.result?.error) return record.result.error;
  if (thrown === undefined || thrown === null) return undefined;
  const name = (thrown as { name?: unknown }).name;
  const phase = (thrown as { phase?: unknown }).phase;
  const where = typeof phase === "string" ? phase : (record.result?.phase ?? "request");
  if (typeof name === "string" && SPEC_ERRORS.has(name)) return { name, phase: where };
  // middy's `timeoutEarlyInMillis` fired: the invocation ran out of time.
  if (name === "TimeoutError")
    return { name: "DeadlineExceeded" satisfies ErrorName, phase: where };
  const status = (thrown as { statusCode?: unknown }).statusCode;
  // Input rejected by a middleware (an HTTP 400 from middy middleware) before the handler saw it.
  if (status === 400) return { name: "ValidationError" satisfies ErrorName, phase: "request" };
  return { name: "InternalError" satisfies ErrorName, phase: where };
}

/** Time left of the invocation (ms): the tighter of the Lambda clock and the handler's plan. */
function timeLeft(record: InvocationRecord, context: Partial<Context>, now: number): number {
  const lambda =
    typeof context.getRemainingTimeInMillis === "function"
      ? context.getRemainingTimeInMillis()
      : Number.POSITIVE_INFINITY;
  // invocationOf() initialises mustReturnBy to startedAt: only a later value is a real plan.
  const planned =
    record.mustReturnBy > record.startedAt ? record.mustReturnBy - now : Number.POSITIVE_INFINITY;
  return Math.min(lambda, planned);
}

/**
 * middy middleware for SPEC §7 metrics. `before` stores `leakedSockets` in the
 * {@link InvocationRecord}; `after` and `onError` publish once per invocation, within the time
 * left before `mustReturnBy` (and the Lambda clock) minus `safetyMs`. It never throws into the
 * response and never replaces it.
 */
export function metricsMiddleware(opts: MetricsMiddlewareOptions = {}): MiddlewareObj {
  for (const key of Object.keys(opts)) {
    if (!KNOWN_OPTIONS.has(key)) throw new TypeError(`metricsMiddleware: unknown option ${key}`);
  }
  const options = { ...defaults, ...opts };
  const gauge = options.leakGauge ?? defaultLeakGauge;
  const published = new WeakSet<object>();
  // The EMF encoder and the SDK are loaded on first use; start them while the first
  // invocation waits on the network.
  let preloaded = false;

  const before = (request: AnyRequest): void => {
    if (!preloaded) {
      preloaded = true;
      const mode = options.mode ?? metricsConfigFromEnv().mode;
      // EMF is the default and every mode's fallback: its encoder is always wanted.
      const sdk = mode !== "emf" && options.client === undefined;
      preload(sdk ? [loadEmfEncoder, loadCloudWatchSdk] : [loadEmfEncoder]);
    }
    const record = invocationOf(request);
    try {
      record.leakedSockets = gauge.measure();
    } catch {
      // A gauge failure must not fail the invocation; 0 is what a healthy container reports.
    }
  };

  const publish = async (request: AnyRequest): Promise<void> => {
    if (published.has(request)) return;
    published.add(request);
    try {
      const now = Date.now();
      const record = invocationOf(request, now);
      const left = timeLeft(record, request.context ?? {}, now);
      const datums = toMetricDatums({
        result: record.result,
        error: errorFor(record, request.error),
        deadlineSlackMs: Number.isFinite(left) ? Math.round(left) : 0,
        leakedSockets: record.leakedSockets,
      });
      // Until the invocation's own signal reaches this hook (issue 13 item 1), the bound is a
      // timeout derived from the time left; the publisher keeps no timer of its own.
      const budgetMs = Math.min(options.maxPublishMs, left - options.safetyMs);
      const report = await publishMetrics(datums, {
        signal: budgetMs >= options.minApiMs ? AbortSignal.timeout(budgetMs) : ABORTED,
        namespace: options.namespace,
        mode: options.mode,
        client: options.client,
        writeLine: options.writeLine,
      });
      try {
        options.onPublished?.(datums, report);
      } catch {
        // An observer's bug is not the caller's problem.
      }
    } catch {
      // publishMetrics never rejects; this guards the datum building against a malformed record.
    }
  };

  return { before, after: publish, onError: publish };
}
