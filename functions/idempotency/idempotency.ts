/**
 * Idempotent sessions (request `idempotencyKey`), on Powertools' idempotency utility with its
 * DynamoDB persistence layer.
 *
 * - The key is scoped by caller: `[caller, key]` is what Powertools hashes, so one caller can
 *   never read another's recorded result by guessing its key.
 * - A repeat with a recorded result gets it back without dialling (`replayed`).
 * - A repeat while the first is still running is `CommandInProgress` (409, retryable).
 * - The same key with a different request is `IdempotencyKeyReused` (409, not retryable):
 *   Powertools validates the hash of the request (the key itself excluded).
 * - A failure before the command started leaves no record (Powertools deletes the record when
 *   the function throws, and a result whose error says the command never started is thrown
 *   here for that purpose), so it can be retried freely.
 * - Every DynamoDB call is bounded (functions/runtime/aws-clients.ts): the persistence layer's
 *   client is the bounded client, each call gets the invocation's signal joined with its cap
 *   (`bounds.read()` before the session, `bounds.write()` after it), and the whole run is
 *   raced against the invocation's signal.
 * - The in-progress record expires with the invocation's deadline (`in_progress_expiration`,
 *   set by Powertools from the registered context's remaining time, here the invocation's):
 *   an invocation killed before its command started, or whose record could not be removed,
 *   locks its key until that deadline, never for the record's lifetime.
 * - When the command ran and the result could not be recorded (the store failed or stalled),
 *   the caller still gets the result, with `storeErrors` naming the failure: the key stays
 *   `CommandInProgress` until the invocation's deadline, after which a retry runs the command
 *   again (SPEC §5).
 */
import {
  IdempotencyAlreadyInProgressError,
  IdempotencyConfig,
  IdempotencyValidationError,
  makeIdempotent,
} from "@aws-lambda-powertools/idempotency";
import { DynamoDBPersistenceLayer } from "@aws-lambda-powertools/idempotency/dynamodb";
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { Context } from "aws-lambda";
import {
  CommandInProgress,
  DeadlineExceeded,
  EngineError,
  IdempotencyKeyReused,
  InternalError,
} from "../../lib/errors.ts";
import type { RunRequest, RunResult, StoreError } from "../../lib/types.ts";
import {
  CALL_CAPS,
  callErrorName,
  callSignal,
  raceSignal,
  withSignal,
} from "../runtime/aws-clients.ts";

/** The outcome of an idempotent run. */
export interface IdempotentOutcome {
  result: RunResult;
  /** True when the result was recorded by an earlier invocation (nothing was dialled). */
  replayed: boolean;
  /** Store calls that failed after the session ran (the result is still the session's). */
  storeErrors?: StoreError[];
}

/**
 * How long the store may take, from the invocation: its signal, and the signal of one call
 * before the session (record in progress, read a record) and after it (record the result,
 * remove the record), each the invocation's joined with its own cap.
 */
export interface StoreBounds {
  /** Aborts when the invocation must return. */
  signal: AbortSignal;
  read(): AbortSignal;
  write(): AbortSignal;
  /** Milliseconds until the invocation must have returned: the in-progress record's expiry. */
  remainingMs(): number;
}

/** Bounds without an invocation (tests, tools): each call capped, no in-progress expiry. */
export function standaloneBounds(capMs: number = CALL_CAPS.standaloneMs): StoreBounds {
  return {
    signal: new AbortController().signal,
    read: () => callSignal(undefined, capMs),
    write: () => callSignal(undefined, capMs),
    remainingMs: () => Number.NaN,
  };
}

/** Where idempotent runs are recorded. */
export interface IdempotencyStore {
  run(
    scope: { caller: string; key: string; request: RunRequest; bounds?: StoreBounds },
    work: () => Promise<RunResult>,
  ): Promise<IdempotentOutcome>;
}

/** Options of {@link DynamoIdempotencyStore}. */
export interface DynamoIdempotencyOptions {
  tableName: string;
  /** A client from functions/runtime/aws-clients.ts (bounded transport). */
  client: DynamoDBClient;
  /** How long a record lives. @default 86400 */
  expiresAfterSeconds?: number;
}

/** Thrown inside the idempotent function so Powertools deletes the record; never escapes. */
class NotStarted extends Error {
  constructor(readonly result: RunResult) {
    super("the command did not start");
  }
}

function nameOf(err: unknown): string {
  // Powertools wraps the SDK's error: the cause says what the store did.
  const cause = (err as { cause?: unknown })?.cause;
  return callErrorName(cause instanceof Error ? cause : err);
}

/** The Powertools-backed store: one DynamoDB table with TTL (`expiration`). */
export class DynamoIdempotencyStore implements IdempotencyStore {
  readonly #options: DynamoIdempotencyOptions;

  constructor(options: DynamoIdempotencyOptions) {
    this.#options = options;
  }

  async run(
    scope: { caller: string; key: string; request: RunRequest; bounds?: StoreBounds },
    work: () => Promise<RunResult>,
  ): Promise<IdempotentOutcome> {
    const bounds = scope.bounds ?? standaloneBounds();
    // Before the session the store's calls are reads of the session's budget; once the work
    // started, they are writes of the reserve.
    let started: Promise<RunResult> | undefined;
    let fresh: RunResult | undefined;
    let thrown: { error: unknown } | undefined;
    let abandoned = false;
    // One persistence layer and config per run: the client's signal and the registered
    // context (the in-progress expiry) are this invocation's.
    const persistence = new DynamoDBPersistenceLayer({
      tableName: this.#options.tableName,
      awsSdkV3Client: withSignal(this.#options.client, () =>
        started ? bounds.write() : bounds.read(),
      ),
    });
    const remaining = bounds.remainingMs();
    const config = new IdempotencyConfig({
      eventKeyJmesPath: "[caller, key]",
      payloadValidationJmesPath: "request",
      expiresAfterSeconds: this.#options.expiresAfterSeconds ?? 86_400,
      throwOnNoIdempotencyKey: true,
      ...(Number.isFinite(remaining)
        ? {
            // Powertools sets `in_progress_expiration` to now + this when it records the run.
            lambdaContext: {
              getRemainingTimeInMillis: () => Math.max(1, Math.floor(bounds.remainingMs())),
            } as Context,
          }
        : {}),
    });
    const once = makeIdempotent(
      async (_payload: { caller: string; key: string; request: unknown }) => {
        // The race below gave up waiting for the store: never start the session after that.
        if (abandoned) throw new Error("the invocation stopped waiting for the store");
        started = work();
        try {
          fresh = await started;
        } catch (err) {
          thrown = { error: err };
          throw err;
        }
        if (fresh.error && !fresh.error.commandStarted) throw new NotStarted(fresh);
        return fresh;
      },
      { persistenceStore: persistence, config },
    );
    const { idempotencyKey: _key, ...request } = scope.request;
    try {
      const result = (await raceSignal(
        once({ caller: scope.caller, key: scope.key, request }),
        bounds.signal,
      )) as RunResult;
      return { result, replayed: started === undefined };
    } catch (err) {
      if (!started) abandoned = true;
      // The invocation's signal fired while the session ran: the session ends on the same
      // signal, and its result is the answer.
      if (started && fresh === undefined && thrown === undefined) {
        try {
          fresh = await started;
        } catch (workErr) {
          thrown = { error: workErr };
        }
      }
      if (thrown) throw thrown.error;
      if (fresh !== undefined) {
        if (err instanceof NotStarted) return { result: err.result, replayed: false };
        const notStarted = fresh.error !== undefined && !fresh.error.commandStarted;
        const storeError: StoreError = notStarted
          ? {
              store: "idempotency",
              operation: "removeRecord",
              name: nameOf(err),
              message:
                "the command did not start, but its in-progress record could not be removed: the key is CommandInProgress until the invocation's deadline, then free",
            }
          : {
              store: "idempotency",
              operation: "recordResult",
              name: nameOf(err),
              message:
                "the command ran but its result could not be recorded: the key is CommandInProgress until the invocation's deadline; a retry with this key after that runs the command again",
            };
        return { result: fresh, replayed: false, storeErrors: [storeError] };
      }
      if (err instanceof EngineError) throw err;
      if (bounds.signal.aborted) {
        throw new DeadlineExceeded(
          "the idempotency store did not answer before the invocation's deadline; nothing was run",
          { phase: "request", cause: err },
        );
      }
      if (err instanceof IdempotencyAlreadyInProgressError) {
        throw new CommandInProgress(
          `a request with idempotency key ${JSON.stringify(scope.key)} is still running, or its invocation ended without recording a result (the key is free again after that invocation's deadline); retry later, or use a new key to run the command again`,
          { phase: "request" },
        );
      }
      if (err instanceof IdempotencyValidationError) {
        throw new IdempotencyKeyReused(
          `idempotency key ${JSON.stringify(scope.key)} was used with a different request; use a new key`,
          { phase: "request" },
        );
      }
      throw new InternalError(
        `the idempotency store could not be used (${nameOf(err)}); nothing was run`,
        { phase: "request", cause: err },
      );
    }
  }
}
