/**
 * `bounded-ssh/client`: a small typed client of the deployed API (`POST /run`, IAM auth).
 * It signs each request with SigV4 for `execute-api` (aws4fetch: ~10 KB, no dependencies,
 * WebCrypto), returns the result of a command that ran (`succeeded`/`failed`), and throws a
 * typed error otherwise. It retries exactly what the contract marks retryable, inside one
 * total deadline:
 *
 * - an error envelope whose `error.retryable` is true (the command certainly did not start);
 * - API Gateway's 429 (throttled: nothing ran);
 *
 * each after a full-jitter backoff. Nothing else is retried: not a gateway 502/504 (the
 * integration timed out or the function failed: the command may be running), not a network
 * error (the request may have arrived). Credentials come from the caller (no AWS SDK here):
 * pass them, or a function that returns them (called for every attempt, so refreshed
 * credentials are used).
 *
 * @example
 * import { BoundedSshClient } from "bounded-ssh/client";
 * const client = new BoundedSshClient({
 *   url: "https://abc123.execute-api.eu-west-1.amazonaws.com/v1",
 *   region: "eu-west-1",
 *   credentials: { accessKeyId, secretAccessKey, sessionToken },
 * });
 * const result = await client.run({ host: "10.0.3.7", username: "deploy", command: "uptime" });
 */
import { AwsV4Signer } from "aws4fetch";
import type { ErrorName } from "../names.ts";
import type { ResultError, RunRequest, RunResult } from "../types.ts";

/** AWS credentials of the signing principal (the caller the policy sees). */
export interface AwsCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
}

/** Credentials, or a function returning them (called once per attempt). */
export type CredentialSource = AwsCredentials | (() => AwsCredentials | Promise<AwsCredentials>);

/** The error body of the handler (schemas/error.schema.json). */
export interface ErrorEnvelope {
  readonly error: ResultError;
  readonly result?: RunResult;
}

/** Options of {@link BoundedSshClient}. */
export interface BoundedSshClientOptions {
  /** The stage's invoke URL (stack output `RunUrl`), with or without the trailing `/run`. */
  readonly url: string;
  /** The API's region (SigV4 scope). */
  readonly region: string;
  readonly credentials: CredentialSource;
  /** Most attempts of one call, the first included. @default 3 */
  readonly maxAttempts?: number;
  /** Backoff cap of the first retry; doubles per retry (full jitter below it). @default 200 */
  readonly baseDelayMs?: number;
  /** Largest backoff. @default 5000 */
  readonly maxDelayMs?: number;
  /**
   * Total deadline of one call, every attempt and backoff included, when the call names none.
   * @default 60000 (two attempts of API Gateway's 29 s)
   */
  readonly deadlineMs?: number;
  /** @default globalThis.fetch */
  readonly fetch?: typeof fetch;
  /** Uniform in [0, 1): the jitter's source. @default Math.random */
  readonly random?: () => number;
}

/** Options of one {@link BoundedSshClient.run} call. */
export interface RunCallOptions {
  /** Aborts the call (and the attempt in flight). */
  readonly signal?: AbortSignal;
  /** This call's total deadline. @default the client's `deadlineMs` */
  readonly deadlineMs?: number;
}

/** The handler answered an error (SPEC §6): the envelope, with its result when one exists. */
export class BoundedSshError extends Error {
  override readonly name = "BoundedSshError";
  /** The SPEC §6 name, e.g. `BannerTimeout`. */
  readonly errorName: ErrorName;
  readonly status: number;
  readonly envelope: ErrorEnvelope;
  /** The command certainly did not start (a retry never runs it twice). */
  readonly retryable: boolean;
  readonly commandStarted: boolean;
  /** Attempts made, this one included. */
  readonly attempts: number;
  constructor(status: number, envelope: ErrorEnvelope, attempts: number) {
    super(`${envelope.error.name} (${status}): ${envelope.error.message}`);
    this.status = status;
    this.envelope = envelope;
    this.errorName = envelope.error.name;
    this.retryable = envelope.error.retryable;
    this.commandStarted = envelope.error.commandStarted;
    this.attempts = attempts;
  }
  /** The result (target, phase, timings), whenever one exists. */
  get result(): RunResult | undefined {
    return this.envelope.result;
  }
}

/**
 * API Gateway answered by itself (`{ message }`): 403 unsigned or denied, 429 throttled,
 * 413 too large, 504 integration timeout, 502 function failure. Whether the command started
 * is unknown except for 403/413/429 (it did not).
 */
export class ApiGatewayError extends Error {
  override readonly name = "ApiGatewayError";
  readonly status: number;
  /** API Gateway's text, e.g. "Too Many Requests". */
  readonly gatewayMessage: string;
  readonly attempts: number;
  constructor(status: number, gatewayMessage: string, attempts: number) {
    super(`API Gateway ${status}: ${gatewayMessage}`);
    this.status = status;
    this.gatewayMessage = gatewayMessage;
    this.attempts = attempts;
  }
}

/**
 * The call's total deadline passed, or its signal aborted (`cause` is the signal's reason),
 * before an answer; `lastError` is the last retryable answer, if any.
 */
export class ClientDeadlineError extends Error {
  override readonly name = "ClientDeadlineError";
  readonly attempts: number;
  readonly lastError: BoundedSshError | ApiGatewayError | undefined;
  constructor(
    message: string,
    attempts: number,
    lastError: BoundedSshError | ApiGatewayError | undefined,
    cause: unknown,
  ) {
    super(message, { cause });
    this.attempts = attempts;
    this.lastError = lastError;
  }
}

/** The answer of an attempt could not be read as the contract's (not JSON, wrong shape). */
export class UnexpectedResponseError extends Error {
  override readonly name = "UnexpectedResponseError";
  readonly status: number;
  readonly body: string;
  constructor(status: number, body: string) {
    super(`unexpected ${status} answer: ${body.slice(0, 200)}`);
    this.status = status;
    this.body = body;
  }
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** A client of one deployed API. */
export class BoundedSshClient {
  readonly #url: string;
  readonly #options: BoundedSshClientOptions;
  readonly #maxAttempts: number;

  constructor(options: BoundedSshClientOptions) {
    const url = new URL(options.url);
    if (url.protocol !== "https:" && url.protocol !== "http:") {
      throw new TypeError(`url must be http(s), got ${url.protocol}`);
    }
    this.#url = url.pathname.endsWith("/run") ? url.href : `${url.href.replace(/\/+$/, "")}/run`;
    const maxAttempts = options.maxAttempts ?? 3;
    if (!Number.isInteger(maxAttempts) || maxAttempts < 1) {
      throw new RangeError(`maxAttempts must be an integer >= 1, got ${maxAttempts}`);
    }
    this.#maxAttempts = maxAttempts;
    this.#options = options;
  }

  /**
   * Runs one command. Resolves with the result when the command ran (`succeeded`, or `failed`
   * with its exit code); rejects with {@link BoundedSshError}, {@link ApiGatewayError},
   * {@link ClientDeadlineError} or {@link UnexpectedResponseError}, or fetch's own network
   * error (not retried: the request may have arrived).
   */
  async run(request: RunRequest, options: RunCallOptions = {}): Promise<RunResult> {
    const deadlineMs = options.deadlineMs ?? this.#options.deadlineMs ?? 60_000;
    const timeout = AbortSignal.timeout(deadlineMs);
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
    const endsAt = Date.now() + deadlineMs;
    const body = JSON.stringify(request);
    let last: BoundedSshError | ApiGatewayError | undefined;
    let attempts = 0;
    const stopped = (cause: unknown) =>
      new ClientDeadlineError(
        timeout.aborted
          ? `no answer within the call's deadline of ${deadlineMs} ms (${attempts} attempts)`
          : `the call was aborted (${attempts} attempts)`,
        attempts,
        last,
        cause,
      );
    for (;;) {
      if (signal.aborted) throw stopped(signal.reason);
      attempts += 1;
      let response: Response;
      let text: string;
      try {
        response = await this.#send(body, signal);
        text = await response.text();
      } catch (err) {
        if (signal.aborted) throw stopped(signal.reason);
        throw err;
      }
      const answer = this.#read(response.status, text, attempts);
      if (!(answer instanceof Error)) return answer;
      if (answer instanceof UnexpectedResponseError) throw answer;
      const retry = answer instanceof BoundedSshError ? answer.retryable : answer.status === 429;
      if (!retry || attempts >= this.#maxAttempts) throw answer;
      last = answer;
      const delay = this.#backoff(attempts);
      // A wait the deadline would cut short is no retry: answer now with what is known.
      if (Date.now() + delay >= endsAt) throw answer;
      await sleep(delay, signal).catch((reason: unknown) => {
        throw stopped(reason);
      });
    }
  }

  async #send(body: string, signal: AbortSignal): Promise<Response> {
    const source = this.#options.credentials;
    const credentials = typeof source === "function" ? await source() : source;
    const signed = await new AwsV4Signer({
      method: "POST",
      url: this.#url,
      headers: { "content-type": "application/json" },
      body,
      accessKeyId: credentials.accessKeyId,
      secretAccessKey: credentials.secretAccessKey,
      ...(credentials.sessionToken ? { sessionToken: credentials.sessionToken } : {}),
      service: "execute-api",
      region: this.#options.region,
    }).sign();
    const doFetch = this.#options.fetch ?? fetch;
    return doFetch(signed.url, {
      method: signed.method,
      headers: signed.headers,
      body,
      signal,
    });
  }

  #read(
    status: number,
    text: string,
    attempts: number,
  ): RunResult | BoundedSshError | ApiGatewayError | UnexpectedResponseError {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return new UnexpectedResponseError(status, text);
    }
    if (status === 200 && isObject(value) && typeof value.status === "string") {
      return value as unknown as RunResult;
    }
    if (isObject(value) && isObject(value.error) && typeof value.error.name === "string") {
      return new BoundedSshError(status, value as unknown as ErrorEnvelope, attempts);
    }
    if (status !== 200 && isObject(value) && typeof value.message === "string") {
      return new ApiGatewayError(status, value.message, attempts);
    }
    return new UnexpectedResponseError(status, text);
  }

  /** Full jitter: uniform in [0, min(max, base · 2^(attempt−1))). */
  #backoff(attempt: number): number {
    const base = this.#options.baseDelayMs ?? 200;
    const max = this.#options.maxDelayMs ?? 5_000;
    const cap = Math.min(max, base * 2 ** (attempt - 1));
    return Math.floor((this.#options.random ?? Math.random)() * cap);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
