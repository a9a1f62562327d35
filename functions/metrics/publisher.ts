/**
 * Ships one invocation's datums (SPEC §7): one `PutMetricData` call, bounded by the time the
 * caller gives it, with an Embedded Metric Format line on stdout whenever the call did not
 * certainly succeed. A slow, hanging, failing or throttling CloudWatch endpoint costs at most
 * the given time and never a datum.
 *
 * Delivery is at-least-once: when the deadline cuts a call whose request already reached
 * CloudWatch, the datums are also written as EMF, and may be counted twice. Losing the one
 * `BannerTimeout` of the night would be worse than counting it twice.
 */
import type {
  CloudWatchClient,
  MetricDatum as CloudWatchDatum,
  StandardUnit,
} from "@aws-sdk/client-cloudwatch";
import type { MetricDatum } from "../../lib/metrics.ts";
import { DEFAULT_METRIC_NAMESPACE } from "../../lib/names.ts";
import { DEFAULT_METRICS_MODE, ENV, type MetricsMode } from "../../operations/environment.ts";
import { defaultLeakGauge } from "./leak-gauge.ts";

/** Environment variables read by the metrics adapter (named in `operations/environment.ts`). */
export const METRICS_ENV = {
  endpoint: ENV.cloudWatchEndpoint,
} as const;

/** `PutMetricData` limits: datums per call, values per datum. */
const MAX_DATUMS_PER_CALL = 1000;
const MAX_VALUES_PER_DATUM = 150;

/**
 * Transport bounds of the shared client. They cap each attempt on their own; the per-call
 * deadline (an abort signal) is what bounds the whole call, retries and backoff included.
 */
const CLIENT_TIMEOUTS = { connectionTimeout: 500, requestTimeout: 1_000 } as const;

/**
 * One immediate second attempt, for anything but a client error. The SDK's strategies back
 * off with a `setTimeout` they do not clear when the call is aborted: after a throttled call
 * cut by the deadline, that timer would outlive the invocation into the frozen container. No
 * delay means no timer; a throttled or failed batch goes to EMF instead of waiting.
 */
const immediateRetry = {
  async acquireInitialRetryToken() {
    return retryToken(0);
  },
  async refreshRetryTokenForRetry(token: { getRetryCount(): number }, info: { errorType: string }) {
    const next = token.getRetryCount() + 1;
    if (next >= MAX_ATTEMPTS || info.errorType === "CLIENT_ERROR") throw new Error("no retry");
    return retryToken(next);
  },
  recordSuccess() {},
};
const MAX_ATTEMPTS = 2;

function retryToken(count: number) {
  return { getRetryCount: () => count, getRetryDelay: () => 0 };
}

let shared: CloudWatchClient | undefined;
let sdk: Promise<typeof import("@aws-sdk/client-cloudwatch")> | undefined;

/**
 * The CloudWatch SDK, loaded on first use rather than at init (cold start); the metrics
 * middleware starts it early so it loads while the invocation waits on the network.
 */
export function loadCloudWatchSdk(): Promise<typeof import("@aws-sdk/client-cloudwatch")> {
  sdk ??= import("@aws-sdk/client-cloudwatch");
  sdk.catch(() => {
    sdk = undefined;
  });
  return sdk;
}

let emf: Promise<typeof import("./emf.ts")> | undefined;

/**
 * The EMF encoder (Powertools Metrics), loaded on first use rather than at init (cold start);
 * the metrics middleware starts it when an invocation begins.
 */
export function loadEmfEncoder(): Promise<typeof import("./emf.ts")> {
  emf ??= import("./emf.ts");
  emf.catch(() => {
    emf = undefined;
  });
  return emf;
}

/**
 * The container's CloudWatch client, created on first use. It owns its keep-alive agents so
 * their sockets can be told apart from leaks (see `leak-gauge.ts`); a second, immediate
 * attempt is allowed because a keep-alive socket closed during a freeze fails the first one.
 */
export async function sharedCloudWatchClient(): Promise<CloudWatchClient> {
  // node:https (TLS) is loaded here too, not at init: ~10 ms of a cold start.
  const [{ CloudWatchClient }, { Agent: HttpAgent }, { Agent: HttpsAgent }] = await Promise.all([
    loadCloudWatchSdk(),
    import("node:http"),
    import("node:https"),
  ]);
  if (shared) return shared;
  const httpAgent = new HttpAgent({ keepAlive: true, maxSockets: 4 });
  const httpsAgent = new HttpsAgent({ keepAlive: true, maxSockets: 4 });
  defaultLeakGauge.excludeAgent(httpAgent);
  defaultLeakGauge.excludeAgent(httpsAgent);
  const endpoint = process.env[METRICS_ENV.endpoint];
  shared = new CloudWatchClient({
    ...(endpoint ? { endpoint } : {}),
    maxAttempts: MAX_ATTEMPTS,
    retryStrategy: immediateRetry,
    requestHandler: {
      ...CLIENT_TIMEOUTS,
      throwOnRequestTimeout: true,
      httpAgent,
      httpsAgent,
    },
  });
  return shared;
}

/** Drops the shared client (tests that change `BSSH_CLOUDWATCH_ENDPOINT`). */
export function resetSharedCloudWatchClient(): void {
  shared?.destroy();
  shared = undefined;
}

export interface PublishOptions {
  /**
   * Bounds the whole publish, API call and fallback included: the invocation's signal (which
   * fires at its deadline) or a timeout the caller derives from it. On abort the API call is
   * cut, its socket destroyed, and its datums written as EMF. Already aborted: EMF only.
   * The publisher has no timer of its own; without a signal only the client's transport limits
   * (`connectionTimeout`, `requestTimeout`, 2 attempts) bound the API call.
   */
  signal?: AbortSignal;
  /** @default DEFAULT_METRIC_NAMESPACE (the handlers pass `BSSH_METRICS_NAMESPACE`, functions/config) */
  namespace?: string;
  /** @default DEFAULT_METRICS_MODE (the handlers pass `BSSH_METRICS_MODE`, functions/config) */
  mode?: MetricsMode;
  /** @default sharedCloudWatchClient() */
  client?: CloudWatchClient;
  /** Writes one EMF line. @default process.stdout.write(line + "\n") */
  writeLine?: (line: string) => void;
  /** Timestamp of the datums (ms since epoch). @default Date.now() */
  timestamp?: number;
}

/** What happened to a batch, for tests, the demo and a log line. */
export interface PublishReport {
  mode: MetricsMode;
  /** Datums CloudWatch acknowledged. */
  apiDatums: number;
  /** Datums written as EMF (fallback or mode `emf`/`both`). */
  emfDatums: number;
  emfLines: number;
  /**
   * Why the API call did not succeed: an error name (the signal's reason when it cut the call,
   * e.g. `TimeoutError`), or `NoTime` when the signal had fired before the call.
   */
  apiError?: string;
  elapsedMs: number;
}

/** Merges datums with the same name, unit and dimensions into `Values`/`Counts`. */
export function toCloudWatchData(
  datums: readonly MetricDatum[],
  timestamp: Date,
): CloudWatchDatum[] {
  const groups = new Map<string, { datum: MetricDatum; counts: Map<number, number> }>();
  const out: { datum: MetricDatum; counts: Map<number, number> }[] = [];
  for (const d of datums) {
    const dims = Object.entries(d.dimensions).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const key = JSON.stringify([d.name, d.unit, dims]);
    let g = groups.get(key);
    if (!g || (!g.counts.has(d.value) && g.counts.size >= MAX_VALUES_PER_DATUM)) {
      g = { datum: d, counts: new Map() };
      groups.set(key, g);
      out.push(g);
    }
    g.counts.set(d.value, (g.counts.get(d.value) ?? 0) + 1);
  }
  return out.map(({ datum, counts }) => {
    const base: CloudWatchDatum = {
      MetricName: datum.name,
      Unit: datum.unit as StandardUnit,
      Timestamp: timestamp,
      ...(Object.keys(datum.dimensions).length > 0
        ? {
            Dimensions: Object.entries(datum.dimensions).map(([Name, Value]) => ({ Name, Value })),
          }
        : {}),
    };
    const [only] = counts;
    if (counts.size === 1 && only && only[1] === 1) return { ...base, Value: only[0] };
    return { ...base, Values: [...counts.keys()], Counts: [...counts.values()] };
  });
}

/** Datums a CloudWatch datum stands for (a merged datum counts each of its values' counts). */
function datumCount(d: CloudWatchDatum): number {
  return d.Counts ? d.Counts.reduce((a, b) => a + b, 0) : (d.Values?.length ?? 1);
}

/**
 * Sends `datums` to CloudWatch (mode `api`/`both`) or writes them as EMF (mode `emf`, and the
 * fallback whenever the call fails, is throttled or is cut by `options.signal`). Never rejects.
 */
export async function publishMetrics(
  datums: readonly MetricDatum[],
  options: PublishOptions = {},
): Promise<PublishReport> {
  const started = performance.now();
  const mode = options.mode ?? DEFAULT_METRICS_MODE;
  const namespace = options.namespace ?? DEFAULT_METRIC_NAMESPACE;
  const timestamp = options.timestamp ?? Date.now();
  const writeLine = options.writeLine ?? ((line: string) => process.stdout.write(`${line}\n`));
  const report: PublishReport = { mode, apiDatums: 0, emfDatums: 0, emfLines: 0, elapsedMs: 0 };

  // Loading while the API call runs: a fallback after the signal fired must not wait for it.
  const encoder = loadEmfEncoder();
  encoder.catch(() => {});
  const writeEmf = async (batch: readonly MetricDatum[]) => {
    try {
      const { toEmfLines } = await encoder;
      // Encoded in full before the first write: a batch is written whole or not at all.
      for (const line of toEmfLines(batch, namespace, timestamp)) {
        writeLine(line);
        report.emfLines++;
      }
      report.emfDatums += batch.length;
    } catch {
      // stdout gone (or the encoder failed to load): nothing left to report to, and the
      // response must still go out.
    }
  };

  if (datums.length === 0) return { ...report, elapsedMs: 0 };
  if (mode === "emf") {
    await writeEmf(datums);
  } else if (options.signal?.aborted) {
    report.apiError = "NoTime";
    await writeEmf(datums);
  } else {
    const call = { namespace, timestamp: new Date(timestamp), signal: options.signal };
    const failed = await send(datums, call, options.client, report);
    if (mode === "both") await writeEmf(datums);
    else if (failed.length > 0) await writeEmf(failed);
  }
  report.elapsedMs = performance.now() - started;
  return report;
}

/** A signal that never aborts: the race below then waits for the SDK alone. */
const NEVER = new AbortController().signal;

/** Sends every batch until `call.signal` aborts; returns the datums CloudWatch did not acknowledge. */
async function send(
  datums: readonly MetricDatum[],
  call: { namespace: string; timestamp: Date; signal: AbortSignal | undefined },
  client: CloudWatchClient | undefined,
  report: PublishReport,
): Promise<readonly MetricDatum[]> {
  const signal = call.signal ?? NEVER;
  // The SDK destroys the request's socket on the signal; the race makes the signal hold even
  // in a step that does not watch it (credential resolution).
  let onAbort = () => {};
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason ?? new Error("aborted"));
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
  });
  aborted.catch(() => {});
  try {
    // The SDK's first load (cold start) counts against the same signal.
    const [cw, { PutMetricDataCommand }] = await Promise.race([
      Promise.all([client ?? sharedCloudWatchClient(), loadCloudWatchSdk()]),
      aborted,
    ]);
    // Each model datum becomes at most one CloudWatch datum, so slicing the model datums keeps
    // every call within the limit and tells exactly which datums a failed call carried.
    const batches: { data: CloudWatchDatum[]; source: readonly MetricDatum[] }[] = [];
    for (let i = 0; i < datums.length; i += MAX_DATUMS_PER_CALL) {
      const source = datums.slice(i, i + MAX_DATUMS_PER_CALL);
      batches.push({ data: toCloudWatchData(source, call.timestamp), source });
    }
    const failed: MetricDatum[] = [];
    await Promise.all(
      batches.map(async (b) => {
        const sent = cw.send(
          new PutMetricDataCommand({ Namespace: call.namespace, MetricData: b.data }),
          call.signal ? { abortSignal: call.signal } : {},
        );
        sent.catch(() => {});
        try {
          await Promise.race([sent, aborted]);
          report.apiDatums += b.data.reduce((n, d) => n + datumCount(d), 0);
        } catch (err) {
          report.apiError ??= errorName(err);
          failed.push(...b.source);
        }
      }),
    );
    return failed;
  } catch (err) {
    // Client construction or serialisation: still a fallback, never a thrown error.
    report.apiError ??= errorName(err);
    return datums;
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}

function errorName(err: unknown): string {
  if (err instanceof Error) return err.name;
  return "Unknown";
}
