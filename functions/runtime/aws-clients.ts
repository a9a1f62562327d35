/**
 * The one place that builds the AWS SDK clients of every function (Secrets Manager, SSM,
 * DynamoDB, S3, CloudWatch, CloudWatch Logs, SNS), and the one rule every call follows.
 *
 * Transport: `@smithy/node-http-handler` only logs a warning when `requestTimeout` passes
 * unless `throwOnRequestTimeout` is set; every client here sets it, with a connection timeout,
 * a request timeout per attempt and at most {@link MAX_ATTEMPTS} attempts, retried at once (no
 * backoff timer that outlives an aborted call into a frozen container).
 *
 * The rule: {@link send} passes a call's signal to the SDK (which destroys the request's socket
 * on abort) AND races it, so a step that does not watch the signal (credential resolution, a
 * retry) still ends when it fires. The signal of a call is the invocation's joined with the
 * call's own cap: `invocation.readSignal(cap)` before the session, `invocation.reserveSignal(cap)`
 * after it, or {@link callSignal} where there is no invocation (alarm enrichment, spill parts).
 * Libraries that call `client.send` themselves (Powertools idempotency, lib-storage's `Upload`)
 * get the client through {@link withSignal}, which routes their calls through the same rule.
 *
 * Nothing here imports an SDK at module load: each factory loads its SDK on first use (cold
 * start, see `lazy.ts`), and this module imports no engine code (the enrichment bundle uses it).
 */
import type { CloudWatchClient } from "@aws-sdk/client-cloudwatch";
import type { CloudWatchLogsClient } from "@aws-sdk/client-cloudwatch-logs";
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { S3Client } from "@aws-sdk/client-s3";
import type { SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import type { SNSClient } from "@aws-sdk/client-sns";
import type { SSMClient } from "@aws-sdk/client-ssm";

// Node clamps a longer timer to 1 ms.
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Attempts per call: one immediate retry (a keep-alive socket closed during a freeze). */
export const MAX_ATTEMPTS = 2;

/**
 * Transport limits per attempt (ms). They bound an attempt on their own; the call's signal
 * bounds the whole call, retries included.
 *
 * The connection timeout is never under 2 s: below that, `@smithy/node-http-handler` 4.14
 * arms its connect timer at once and loses its id (`setConnectionTimeout` returns 0), so a
 * refused connection leaves that timer alive until it fires (measured: 2 timers per call with
 * 1 s, none with 2 s; a leak in the fault lab's handle check). From 2 s it defers arming by
 * 1 s with a timer the handler clears. A connect that hangs is cut by the call's signal first.
 */
export const TRANSPORT_TIMEOUTS = { connectionTimeout: 2_000, requestTimeout: 2_000 } as const;
const MIN_CONNECTION_TIMEOUT_MS = 2_000;

/**
 * Per-call caps (ms) of calls that have no setting of their own. Reads before the session use
 * the setting `credentialsTimeoutMs` (BSSH_CREDENTIALS_TIMEOUT_MS); these are the rest.
 */
export const CALL_CAPS = {
  /** One S3 part (UploadPart, CreateMultipartUpload, CompleteMultipartUpload, PutObject). */
  spillPartMs: 10_000,
  /** AbortMultipartUpload after a failed or abandoned spill. */
  spillAbortMs: 2_000,
  /** SNS Publish of an enriched alarm (inside the enrichment function's reserve). */
  publishMs: 2_000,
  /** A store call made without an invocation (tools, tests): the read cap's default. */
  standaloneMs: 3_000,
} as const;

/**
 * A retry strategy with no delay: the SDK's own strategies back off with a `setTimeout` they
 * do not clear when the call is aborted. A client error (an abort included) is not retried.
 */
export const immediateRetry = {
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

function retryToken(count: number) {
  return { getRetryCount: () => count, getRetryDelay: () => 0 };
}

/** What a caller may set on a client (tests: a loopback endpoint and fake credentials). */
export interface ClientOptions {
  endpoint?: string;
  region?: string;
  credentials?: { accessKeyId: string; secretAccessKey: string };
  /** S3 against a local stand-in. */
  forcePathStyle?: boolean;
  /** Per attempt (ms), at least 2,000 (see {@link TRANSPORT_TIMEOUTS}). @default 2,000 */
  connectionTimeout?: number;
  requestTimeout?: number;
  /** Keep-alive agents the caller owns (the metrics publisher tells them apart from leaks). */
  httpAgent?: unknown;
  httpsAgent?: unknown;
}

/** The configuration every client gets: bounded transport, bounded retries. */
export function clientConfig(options: ClientOptions = {}) {
  const { connectionTimeout, requestTimeout, httpAgent, httpsAgent, ...rest } = options;
  return {
    ...rest,
    maxAttempts: MAX_ATTEMPTS,
    retryStrategy: immediateRetry,
    requestHandler: {
      connectionTimeout: Math.max(
        MIN_CONNECTION_TIMEOUT_MS,
        connectionTimeout ?? TRANSPORT_TIMEOUTS.connectionTimeout,
      ),
      requestTimeout: requestTimeout ?? TRANSPORT_TIMEOUTS.requestTimeout,
      throwOnRequestTimeout: true,
      ...(httpAgent ? { httpAgent } : {}),
      ...(httpsAgent ? { httpsAgent } : {}),
    },
  };
}

export async function secretsManagerClient(o?: ClientOptions): Promise<SecretsManagerClient> {
  const { SecretsManagerClient } = await import("@aws-sdk/client-secrets-manager");
  return new SecretsManagerClient(clientConfig(o));
}

export async function ssmClient(o?: ClientOptions): Promise<SSMClient> {
  const { SSMClient } = await import("@aws-sdk/client-ssm");
  return new SSMClient(clientConfig(o));
}

export async function dynamoDbClient(o?: ClientOptions): Promise<DynamoDBClient> {
  const { DynamoDBClient } = await import("@aws-sdk/client-dynamodb");
  return new DynamoDBClient(clientConfig(o));
}

/** S3 for spills: an attempt may take as long as one part's cap. */
export async function s3Client(o?: ClientOptions): Promise<S3Client> {
  const { S3Client } = await import("@aws-sdk/client-s3");
  return new S3Client(clientConfig({ requestTimeout: CALL_CAPS.spillPartMs, ...o }));
}

export async function cloudWatchClient(o?: ClientOptions): Promise<CloudWatchClient> {
  const { CloudWatchClient } = await import("@aws-sdk/client-cloudwatch");
  return new CloudWatchClient(clientConfig(o));
}

export async function cloudWatchLogsClient(o?: ClientOptions): Promise<CloudWatchLogsClient> {
  const { CloudWatchLogsClient } = await import("@aws-sdk/client-cloudwatch-logs");
  return new CloudWatchLogsClient(clientConfig(o));
}

export async function snsClient(o?: ClientOptions): Promise<SNSClient> {
  const { SNSClient } = await import("@aws-sdk/client-sns");
  return new SNSClient(clientConfig(o));
}

/**
 * The signal of one call: `parent` (the invocation's, a deadline's) joined with the call's own
 * cap. Its reason on the cap is a `TimeoutError` DOMException.
 */
export function callSignal(parent: AbortSignal | undefined, capMs: number): AbortSignal {
  const cap = AbortSignal.timeout(Math.min(MAX_TIMER_MS, Math.max(0, Math.floor(capMs))));
  return parent ? AbortSignal.any([parent, cap]) : cap;
}

/** The error a call rejects with when its signal fired: the signal's reason, as an Error. */
export function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error) return reason;
  return new DOMException(String(reason ?? "the call was aborted"), "AbortError");
}

/**
 * `work`, or the signal's reason as soon as it fires, whichever settles first. `work`'s own
 * later rejection is handled (never unhandled).
 */
export function raceSignal<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  work.catch(() => {});
  if (signal.aborted) return Promise.reject(abortReason(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortReason(signal));
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(err);
      },
    );
  });
}

/**
 * The name a failed call is reported by (`storeErrors[].name`, logs): the SDK's error name
 * (`TimeoutError`, `ProvisionedThroughputExceededException`, …), or for a bare network error
 * its code (`ECONNREFUSED`, `ECONNRESET`).
 */
export function callErrorName(err: unknown): string {
  if (typeof err !== "object" || err === null) return "Error";
  const { name, code } = err as { name?: unknown; code?: unknown };
  if ((name === undefined || name === "Error") && typeof code === "string") return code;
  return typeof name === "string" ? name : "Error";
}

/** Any SDK v3 client: what {@link send} needs of it. */
export interface SdkClient {
  send(command: never, options?: { abortSignal?: AbortSignal }): Promise<unknown>;
}

/** The output type of an SDK v3 command. */
// biome-ignore lint/suspicious/noExplicitAny: matching the SDK's handler signature
export type OutputOf<C> = C extends { resolveMiddleware(...args: any[]): infer H }
  ? // biome-ignore lint/suspicious/noExplicitAny: idem
    H extends (...args: any[]) => Promise<{ output: infer O }>
    ? O
    : never
  : never;

/**
 * THE rule of every AWS call: `client.send(command)` aborted (its socket destroyed) when
 * `signal` fires, and settled by then whatever step the SDK is in. An already-fired signal
 * sends nothing.
 */
export function send<C extends object>(
  client: SdkClient,
  command: C,
  signal: AbortSignal,
): Promise<OutputOf<C>> {
  if (signal.aborted) return Promise.reject(abortReason(signal));
  const sent = (client.send as (c: C, o: { abortSignal: AbortSignal }) => Promise<OutputOf<C>>)(
    command,
    { abortSignal: signal },
  );
  return raceSignal(sent, signal);
}

/**
 * `client` as seen by a library that calls `client.send` itself: each call goes through
 * {@link send} with `signalOf(command)`, evaluated when the call starts. Everything else
 * (config, middleware stack) is the client's own.
 */
export function withSignal<T extends object>(
  client: T,
  signalOf: (command: object) => AbortSignal,
): T {
  return new Proxy(client, {
    get(target, property) {
      if (property === "send") {
        return (command: object) => send(target as SdkClient, command, signalOf(command));
      }
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}
