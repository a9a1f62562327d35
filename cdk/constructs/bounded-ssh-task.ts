/**
 * The bounded-ssh task state, for the project's own workflows and for any state machine of
 * yours: one builder, so a workflow author's task retries, catches and parses exactly as the
 * deployed ones do (`single-host-workflow.ts` and `fleet-workflow.ts` are built with it, and
 * docs/api.md's ASL is generated from it by `scripts/generate-task-asl.ts`).
 *
 * A state machine of your own must also be a known caller: add its ARN to the deploy config's
 * `callerStateMachines` (the task function serves it and grants its role invoke), name that ARN
 * in a policy rule's `callers`, and keep its definition and role to the deployer
 * (docs/security.md, "The remaining boundary: `lambda:InvokeFunction`").
 */
import { Duration } from "aws-cdk-lib";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import * as sfn from "aws-cdk-lib/aws-stepfunctions";
import * as tasks from "aws-cdk-lib/aws-stepfunctions-tasks";
import type { Construct } from "constructs";
import {
  EARLY_ERRORS,
  EXECUTION_CONTEXT,
  HARD_TIMEOUT_ERRORS,
  IN_PROGRESS_ERRORS,
  LAMBDA_SERVICE_ERRORS,
  type LambdaRetrySettings,
  parseErrorResult,
  type RetrySettings,
  SESSION_ERRORS,
  WORKFLOW_RETRY_ERRORS,
} from "./workflow-tasks.ts";

/** Properties of {@link boundedSshTask}. */
export interface BoundedSshTaskProps {
  /** The task function (stack output `TaskFunctionArn`; `lambda.Function.fromFunctionArn`). */
  readonly taskFunction: lambda.IFunction;
  /**
   * Timeout of one task attempt; must exceed the task function's timeout (the stack's
   * `taskTimeout`, 75 s by default).
   */
  readonly taskTimeout: Duration;
  /** Retry of the contract's retryable errors. @default 2 s, ×2, ≤ 30 s, 2 retries */
  readonly retry?: RetrySettings;
  /** Retry of Lambda's throttling and service errors. @default 2 s, ×2, ≤ 60 s, 6 retries */
  readonly lambdaRetry?: LambdaRetrySettings;
  /** JSONPath of the request (SPEC §3) in the state's input. @default "$" (the whole input) */
  readonly requestPath?: string;
  /**
   * JSONPath of an `{ id, stateMachine }` object already built from `$$` (a fleet's Map item).
   * @default read from the context object (`$$.Execution.Id`, `$$.StateMachine.Id`)
   */
  readonly executionPath?: string;
  /** Where the result goes in the state's output. @default "$" (replaces the input) */
  readonly resultPath?: string;
  /** Which fields of the result to keep. @default the whole result */
  readonly resultSelector?: Record<string, unknown>;
}

/**
 * A Lambda task running one bounded-ssh request, with three retriers: Lambda's throttling and
 * service errors (full jitter), `CommandInProgress` once the first attempt's deadline has
 * passed (no jitter), then the contract's retryable errors (full jitter). Its output is the
 * handler's result (`payloadResponseOnly`). Catch its errors with {@link catchBoundedSshErrors}.
 *
 * @param scope where the state is created.
 * @param id the state's name.
 * @param props the task function, timeout, retry and paths.
 * @returns the task state.
 * @example
 * const run = boundedSshTask(this, "RunCommand", {
 *   taskFunction: lambda.Function.fromFunctionArn(this, "Task", taskFunctionArn),
 *   taskTimeout: Duration.seconds(75),
 * });
 * catchBoundedSshErrors(this, run);
 * new sfn.StateMachine(this, "Mine", {
 *   definitionBody: sfn.DefinitionBody.fromChainable(run.next(new sfn.Succeed(this, "Done"))),
 * });
 */
export function boundedSshTask(
  scope: Construct,
  id: string,
  props: BoundedSshTaskProps,
): tasks.LambdaInvoke {
  const request =
    (props.requestPath ?? "$") === "$"
      ? sfn.JsonPath.entirePayload
      : sfn.JsonPath.objectAt(props.requestPath as string);
  // The execution context comes from `$$`, which the input cannot write: the task handler's
  // caller is the state machine (SPEC §9).
  const execution = props.executionPath
    ? sfn.JsonPath.objectAt(props.executionPath)
    : EXECUTION_CONTEXT;
  const task = new tasks.LambdaInvoke(scope, id, {
    lambdaFunction: props.taskFunction,
    // The task result is the handler's return value, exactly as a local run sees it.
    payloadResponseOnly: true,
    taskTimeout: sfn.Timeout.duration(props.taskTimeout),
    // Replaced by the explicit retrier below (CDK's default has no jitter and no throttles).
    retryOnServiceExceptions: false,
    payload: sfn.TaskInput.fromObject({ request, execution }),
    resultPath: props.resultPath,
    resultSelector: props.resultSelector,
  });
  // Throttles and Lambda service errors: a fleet at its concurrency ceiling backs off and
  // spreads out instead of failing (full jitter: the children throttled together retry apart).
  task.addRetry({
    errors: [...LAMBDA_SERVICE_ERRORS],
    interval: props.lambdaRetry?.interval ?? Duration.seconds(2),
    maxAttempts: props.lambdaRetry?.maxAttempts ?? 6,
    backoffRate: props.lambdaRetry?.backoffRate ?? 2,
    maxDelay: props.lambdaRetry?.maxDelay ?? Duration.seconds(60),
    jitterStrategy: sfn.JitterType.FULL,
  });
  // The first attempt may still be running for up to its timeout: wait that out (no jitter:
  // a full-jitter wait could be 0 s), then its recorded result replays.
  task.addRetry({
    errors: [...IN_PROGRESS_ERRORS],
    interval: props.taskTimeout,
    maxAttempts: 2,
    backoffRate: 1,
    jitterStrategy: sfn.JitterType.NONE,
  });
  task.addRetry({
    errors: [...WORKFLOW_RETRY_ERRORS],
    interval: props.retry?.interval ?? Duration.seconds(2),
    maxAttempts: props.retry?.maxAttempts ?? 2,
    backoffRate: props.retry?.backoffRate ?? 2,
    maxDelay: props.retry?.maxDelay ?? Duration.seconds(30),
    // Full jitter spreads the retries of a fleet that failed at once (e.g. a bastion blip).
    jitterStrategy: sfn.JitterType.FULL,
  });
  return task;
}

/** The states {@link catchBoundedSshErrors} adds. */
export interface BoundedSshCatches {
  /** Fails with the SPEC §6 name; `Cause` is Lambda's envelope whose `errorMessage` is the result. */
  readonly commandError: sfn.Fail;
  /** Fails with the refusal's name (validation, policy, credentials, bug): no session ran. */
  readonly requestRefused: sfn.Fail;
  /** Fails with `Sandbox.Timedout` / `Lambda.Unknown`: the function hit its own timeout. */
  readonly hardTimeout: sfn.Fail;
}

/**
 * The catches of the single-host workflow: a session error is parsed back
 * (`States.StringToJson` twice: Lambda's envelope, then its `errorMessage`, the JSON result)
 * and fails the execution as `CommandError`; a refusal before a session fails as
 * `RequestRefused`; a Lambda hard timeout as `LambdaHardTimeout`. Error and cause of each Fail
 * state are the task's (`$.error.Error`, `$.error.Cause`).
 *
 * @param scope where the states are created.
 * @param task a {@link boundedSshTask}.
 * @param prefix of the added states' names (unique per state machine). @default ""
 * @returns the Fail states (to replace with states of your own, build the catches yourself
 *   from `SESSION_ERRORS`, `EARLY_ERRORS` and `HARD_TIMEOUT_ERRORS`).
 */
export function catchBoundedSshErrors(
  scope: Construct,
  task: tasks.LambdaInvoke,
  prefix = "",
): BoundedSshCatches {
  const keepResult = parseErrorResult(scope, prefix, { error: "$.error" });
  const commandError = new sfn.Fail(scope, `${prefix}CommandError`, {
    comment: "Session error: Error is the SPEC §6 name, Cause carries the result",
    errorPath: "$.error.Error",
    causePath: "$.error.Cause",
  });
  const requestRefused = new sfn.Fail(scope, `${prefix}RequestRefused`, {
    comment: "Refused before a session (validation, policy, credentials, bug)",
    errorPath: "$.error.Error",
    causePath: "$.error.Cause",
  });
  const hardTimeout = new sfn.Fail(scope, `${prefix}LambdaHardTimeout`, {
    comment: "The function hit its own timeout: must never happen (alarm DeadlineOverrun)",
    errorPath: "$.error.Error",
    causePath: "$.error.Cause",
  });
  task.addCatch(keepResult.start, { errors: [...SESSION_ERRORS], resultPath: "$.error" });
  task.addCatch(requestRefused, { errors: [...EARLY_ERRORS], resultPath: "$.error" });
  task.addCatch(hardTimeout, { errors: [...HARD_TIMEOUT_ERRORS], resultPath: "$.error" });
  keepResult.end.next(commandError);
  return { commandError, requestRefused, hardTimeout };
}

export {
  EARLY_ERRORS,
  HARD_TIMEOUT_ERRORS,
  LAMBDA_SERVICE_ERRORS,
  SESSION_ERRORS,
  WORKFLOW_RETRY_ERRORS,
} from "./workflow-tasks.ts";
