/**
 * The parts both workflows build from (`single-host-workflow.ts`, `fleet-workflow.ts`): which
 * errors are caught how and the two states that turn a caught error back into its result. The
 * task state itself, with the contract's `Retry`, is `boundedSshTask` (`bounded-ssh-task.ts`),
 * the one builder for the project's workflows and for callers' own state machines.
 */
import type { Duration } from "aws-cdk-lib";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import * as sfn from "aws-cdk-lib/aws-stepfunctions";
import type { Construct } from "constructs";
import { ERROR_NAMES, type ErrorName, RETRYABLE_ERRORS } from "../../lib/names.ts";

/**
 * Errors thrown before a session exists: their message is not guaranteed to be a JSON result,
 * so the workflow records them without parsing (a parse failure would replace the real error
 * name with `States.Runtime`).
 */
export const EARLY_ERRORS = [
  "ValidationError",
  "TargetNotAllowed",
  "CommandNotAllowed",
  "CallerNotAllowed",
  "CredentialNotAllowed",
  "CommandInProgress",
  "IdempotencyKeyReused",
  "HostQuarantined",
  "CredentialUnavailable",
  "CredentialInvalid",
  "InternalError",
] as const satisfies readonly ErrorName[];

/** Errors whose message is the JSON result (SPEC §6: `Catch` with `ResultPath` keeps it). */
export const SESSION_ERRORS: readonly ErrorName[] = ERROR_NAMES.filter(
  (name) => !(EARLY_ERRORS as readonly string[]).includes(name),
);

/**
 * What the task's session `Retry` matches: every retryable error but `HostQuarantined`, whose
 * quarantine lasts minutes (a retry seconds later is refused again; the next fleet run
 * after the TTL tries the host), and `CommandInProgress`, which has its own retrier
 * ({@link IN_PROGRESS_ERRORS}).
 */
export const WORKFLOW_RETRY_ERRORS: readonly ErrorName[] = RETRYABLE_ERRORS.filter(
  (name) => name !== "HostQuarantined" && name !== "CommandInProgress",
);

/**
 * A retry that met its own first attempt still running (after a Lambda service error that
 * did not stop the invocation): retried once the first attempt's deadline (the task timeout)
 * has passed, without jitter, so the retry finds the recorded result instead of giving up
 * while the command succeeds.
 */
export const IN_PROGRESS_ERRORS = ["CommandInProgress"] as const satisfies readonly ErrorName[];

/** How Lambda reports a hard timeout to Step Functions (older runtimes: `Lambda.Unknown`). */
export const HARD_TIMEOUT_ERRORS = ["Sandbox.Timedout", "Lambda.Unknown"] as const;

/**
 * Lambda's throttling and service errors, as Step Functions names them: the invocation was
 * refused (`TooManyRequestsException`, HTTP 429: the function never ran) or Lambda itself
 * failed (the 5xx of the Step Functions best practice "Handle Lambda service exceptions").
 * Every task retries them with backoff and full jitter ({@link LambdaRetrySettings}).
 * `Lambda.Unknown` is not here: Lambda reports a function timeout or an out-of-memory crash
 * with it, after the command may have run, so it is a {@link HARD_TIMEOUT_ERRORS} outcome.
 */
export const LAMBDA_SERVICE_ERRORS = [
  "Lambda.TooManyRequestsException",
  "Lambda.ServiceException",
  "Lambda.AWSLambdaException",
  "Lambda.SdkClientException",
  "Lambda.ClientExecutionTimeoutException",
] as const;

/** Retry of {@link WORKFLOW_RETRY_ERRORS}. */
export interface RetrySettings {
  /** @default Duration.seconds(2) */
  readonly interval?: Duration;
  /** Retries after the first attempt. @default 2 */
  readonly maxAttempts?: number;
  /** @default 2 */
  readonly backoffRate?: number;
  /** @default Duration.seconds(30) */
  readonly maxDelay?: Duration;
}

/**
 * Retry of {@link LAMBDA_SERVICE_ERRORS}: more attempts and longer waits than the session
 * retry, since a throttle lasts as long as the function is at its reserved concurrency.
 * Defaults: 2 s, ×2, at most 60 s apart, 6 retries (worst case about 2 minutes, full jitter).
 */
export type LambdaRetrySettings = RetrySettings;

/** What every task state of a workflow needs. */
export interface TaskSettings {
  /** The task handler (`functions/task.ts`). */
  readonly handler: lambda.IFunction;
  /** Timeout of one task attempt; must exceed the handler's timeout (checked at synth). */
  readonly taskTimeout: Duration;
  /** @default RetrySettings defaults */
  readonly retry?: RetrySettings;
  /** Retry of Lambda's throttling and service errors. @default LambdaRetrySettings defaults */
  readonly lambdaRetry?: LambdaRetrySettings;
}

/** The execution context a task payload carries (SPEC §9: the caller is the state machine). */
export const EXECUTION_CONTEXT = {
  id: sfn.JsonPath.stringAt("$$.Execution.Id"),
  stateMachine: sfn.JsonPath.stringAt("$$.StateMachine.Id"),
};

/**
 * Two Pass states that turn a caught Lambda error into `$.result`. Lambda reports a thrown
 * error as `Cause = {"errorType","errorMessage","trace"}` and the handler's message is the JSON
 * result, so it takes two parses; `$.error` (Error + Cause) is kept for the Fail state.
 *
 * @param scope where the states are created.
 * @param prefix of the state names (unique per state machine).
 * @param keep fields carried through, name → JSONPath.
 */
export function parseErrorResult(
  scope: Construct,
  prefix: string,
  keep: Record<string, string>,
): { start: sfn.Pass; end: sfn.Pass } {
  const kept = Object.fromEntries(Object.entries(keep).map(([k, v]) => [`${k}.$`, v]));
  const start = new sfn.Pass(scope, `${prefix}ReadErrorEnvelope`, {
    parameters: { ...kept, "envelope.$": "States.StringToJson($.error.Cause)" },
  });
  const end = new sfn.Pass(scope, `${prefix}KeepResult`, {
    parameters: { ...kept, "result.$": "States.StringToJson($.envelope.errorMessage)" },
  });
  start.next(end);
  return { start, end };
}
