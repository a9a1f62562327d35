/**
 * The metrics middleware: measures leaked sockets when an invocation starts and publishes the
 * invocation's SPEC §7 datums once when it ends, from `after` or `onError`, whichever runs.
 * Register it first (`.use(metricsMiddleware())` before the others) so its `after`/`onError`
 * run last and see the invocation as the response leaves. Needs the invocation middleware
 * (`createInvocation`) registered before it.
 */

import type { CloudWatchClient } from "@aws-sdk/client-cloudwatch";
import type { MiddlewareObj, Request } from "@middy/core";
import type { Context } from "aws-lambda";
import { type MetricDatum, type MetricError, toMetricDatums } from "../../lib/metrics.ts";
import { DEFAULT_METRICS_MODE, type MetricsMode } from "../../operations/environment.ts";
import { type Invocation, invocationOf } from "../invocation/invocation.ts";
import { toEngineError } from "../invocation/to-engine-error.ts";
import { withDefaults } from "../invocation/with-defaults.ts";
import { preload } from "../runtime/lazy.ts";
import { defaultLeakGauge, type LeakGauge } from "./leak-gauge.ts";
import {
  loadCloudWatchSdk,
  loadEmfEncoder,
  type PublishReport,
  publishMetrics,
} from "./publisher.ts";

export interface MetricsMiddlewareOptions {
  /** @default env `BSSH_METRICS_NAMESPACE`, else `BoundedSsh` */
  namespace?: string;
  /** @default `emf` (`DEFAULT_METRICS_MODE`); the handlers pass `BSSH_METRICS_MODE` (functions/config) */
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

// Every option, with its default (`undefined`: none here): also the list of known options.
const defaults = {
  namespace: undefined,
  mode: undefined,
  safetyMs: 20,
  maxPublishMs: 1_000,
  minApiMs: 15,
  leakGauge: undefined,
  client: undefined,
  writeLine: undefined,
  onPublished: undefined,
} satisfies Required<{ [K in keyof MetricsMiddlewareOptions]: unknown }>;

/** Too little time for a round trip: the publisher writes EMF without trying the API. */
const ABORTED = AbortSignal.abort();

type AnyRequest = Request<unknown, unknown, Error, Context>;

/**
 * The error metrics should count: the invocation's (the error mapper has recorded whatever
 * was thrown by the time this runs), else the one its result carries, else what was thrown
 * (a stack without the error mapper), mapped but not recorded: only the mapper records.
 */
function errorFor(invocation: Invocation, thrown: unknown): MetricError | undefined {
  if (invocation.error) return { name: invocation.error.name, phase: invocation.error.phase };
  if (invocation.result?.error) return invocation.result.error;
  if (thrown === undefined) return undefined;
  const { name, phase } = toEngineError(thrown);
  return { name, phase };
}

/**
 * middy middleware for SPEC §7 metrics. `before` stores `leakedSockets` in the
 * invocation; `after` and `onError` publish once per invocation, bounded by the invocation's
 * signal and what is left of its deadline minus `safetyMs`. It never throws into the
 * response and never replaces it.
 */
export function metricsMiddleware(opts: MetricsMiddlewareOptions = {}): MiddlewareObj {
  const options = withDefaults("metricsMiddleware", defaults, opts);
  const gauge = options.leakGauge ?? defaultLeakGauge;
  const published = new WeakSet<object>();
  // The EMF encoder and the SDK are loaded on first use; start them while the first
  // invocation waits on the network.
  let preloaded = false;

  const metricsBefore = (request: AnyRequest): void => {
    if (!preloaded) {
      preloaded = true;
      const mode = options.mode ?? DEFAULT_METRICS_MODE;
      // EMF is the default and every mode's fallback: its encoder is always wanted.
      const sdk = mode !== "emf" && options.client === undefined;
      preload(sdk ? [loadEmfEncoder, loadCloudWatchSdk] : [loadEmfEncoder]);
    }
    const invocation = invocationOf(request.context);
    try {
      invocation.leakedSockets = gauge.measure();
    } catch {
      // A gauge failure must not fail the invocation; 0 is what a healthy container reports.
    }
  };

  const metricsPublish = async (request: AnyRequest): Promise<void> => {
    if (published.has(request)) return;
    published.add(request);
    try {
      const invocation = invocationOf(request.context);
      const left = invocation.slackMs();
      const datums = toMetricDatums({
        result: invocation.result,
        error: errorFor(invocation, request.error ?? undefined),
        deadlineSlackMs: Math.round(left),
        leakedSockets: invocation.leakedSockets,
      });
      // Whole milliseconds: AbortSignal.timeout() throws on a fraction (slack is fractional).
      const budgetMs = Math.floor(Math.min(options.maxPublishMs, left - options.safetyMs));
      const report = await publishMetrics(datums, {
        // The invocation's signal (its deadline), capped by maxPublishMs and the safety margin;
        // the publisher keeps no timer of its own.
        signal:
          budgetMs >= options.minApiMs
            ? AbortSignal.any([invocation.signal, AbortSignal.timeout(budgetMs)])
            : ABORTED,
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
      // publishMetrics never rejects; this guards the datum building against a malformed invocation.
    }
  };

  return { before: metricsBefore, after: metricsPublish, onError: metricsPublish };
}
