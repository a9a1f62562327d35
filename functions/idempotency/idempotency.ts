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
 * - The in-progress record has no in-progress expiry (no Lambda context is registered): an
 *   invocation that dies after starting the command leaves its key `CommandInProgress` until
 *   the record expires, so no retry can run the command a second time.
 */
import {
  IdempotencyAlreadyInProgressError,
  IdempotencyConfig,
  IdempotencyValidationError,
  makeIdempotent,
} from "@aws-lambda-powertools/idempotency";
import { DynamoDBPersistenceLayer } from "@aws-lambda-powertools/idempotency/dynamodb";
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import {
  CommandInProgress,
  EngineError,
  IdempotencyKeyReused,
  InternalError,
} from "../../lib/errors.ts";
import type { RunRequest, RunResult } from "../../lib/types.ts";

/** The outcome of an idempotent run. */
export interface IdempotentOutcome {
  result: RunResult;
  /** True when the result was recorded by an earlier invocation (nothing was dialled). */
  replayed: boolean;
}

/** Where idempotent runs are recorded. */
export interface IdempotencyStore {
  run(
    scope: { caller: string; key: string; request: RunRequest },
    work: () => Promise<RunResult>,
  ): Promise<IdempotentOutcome>;
}

/** Options of {@link DynamoIdempotencyStore}. */
export interface DynamoIdempotencyOptions {
  tableName: string;
  client: DynamoDBClient;
  /** How long a record (and a stuck in-progress key) lives. @default 86400 */
  expiresAfterSeconds?: number;
}

/** Thrown inside the idempotent function so Powertools deletes the record; never escapes. */
class NotStarted extends Error {
  constructor(readonly result: RunResult) {
    super("the command did not start");
  }
}

/** The Powertools-backed store: one DynamoDB table with TTL (`expiration`). */
export class DynamoIdempotencyStore implements IdempotencyStore {
  readonly #persistence: DynamoDBPersistenceLayer;
  readonly #config: IdempotencyConfig;

  constructor(options: DynamoIdempotencyOptions) {
    this.#persistence = new DynamoDBPersistenceLayer({
      tableName: options.tableName,
      awsSdkV3Client: options.client,
    });
    this.#config = new IdempotencyConfig({
      eventKeyJmesPath: "[caller, key]",
      payloadValidationJmesPath: "request",
      expiresAfterSeconds: options.expiresAfterSeconds ?? 86_400,
      throwOnNoIdempotencyKey: true,
    });
  }

  async run(
    scope: { caller: string; key: string; request: RunRequest },
    work: () => Promise<RunResult>,
  ): Promise<IdempotentOutcome> {
    let fresh: RunResult | undefined;
    const once = makeIdempotent(
      async (_payload: { caller: string; key: string; request: unknown }) => {
        const result = await work();
        fresh = result;
        if (result.error && !result.error.commandStarted) throw new NotStarted(result);
        return result;
      },
      { persistenceStore: this.#persistence, config: this.#config },
    );
    const { idempotencyKey: _key, ...request } = scope.request;
    try {
      const result = (await once({ caller: scope.caller, key: scope.key, request })) as RunResult;
      return { result, replayed: fresh === undefined };
    } catch (err) {
      if (err instanceof NotStarted) return { result: err.result, replayed: false };
      // Refused before the session (deadline, credentials, breaker): the record is gone.
      if (err instanceof EngineError) throw err;
      // The session ran but its result could not be recorded: the caller still gets it, and
      // the key stays in progress (a retry can not run the command again).
      if (fresh !== undefined) return { result: fresh, replayed: false };
      if (err instanceof IdempotencyAlreadyInProgressError) {
        throw new CommandInProgress(
          `a request with idempotency key ${JSON.stringify(scope.key)} is still running, or died after its command started; retry later, or use a new key to run the command again`,
          { phase: "request" },
        );
      }
      if (err instanceof IdempotencyValidationError) {
        throw new IdempotencyKeyReused(
          `idempotency key ${JSON.stringify(scope.key)} was used with a different request; use a new key`,
          { phase: "request" },
        );
      }
      throw new InternalError("the idempotency store could not be used; nothing was run", {
        phase: "request",
        cause: err,
      });
    }
  }
}
