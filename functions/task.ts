/**
 * Step Functions task entry point: the input is the SPEC §4 request; the output is the §5
 * result for `succeeded`/`failed`. Anything else is thrown as an error whose `name` is the
 * SPEC §6 name (for `Retry`/`Catch`) and whose message is the JSON result.
 * Entry point → {@link compose} → the invocation → `execute()` → lib `runCommand`.
 */
import type { Context } from "aws-lambda";
import type { RunResult } from "../lib/types.ts";
import { compose } from "./invocation/compose.ts";
import { execute } from "./invocation/execute.ts";
import { TASK_LIMITS } from "./invocation/steps/run-context.ts";
import { verifiedTask } from "./request/callers.ts";
import { defaultRuntime } from "./runtime/default-runtime.ts";
import type { Runtime } from "./runtime/runtime.ts";
import { stepFunctionsError } from "./step-functions/step-functions-error.ts";

/**
 * Builds the Step Functions handler over a runtime (tests and local mode pass their own): the
 * caller is the state machine named by the payload's execution context, then `execute`
 * settles `task.request`.
 *
 * @param runtime settings, stores and policy of the container (`awsRuntime`, `testRuntime`).
 * @returns a middy handler `(event, context) => Promise<RunResult>`.
 * @throws an error whose `name` is the SPEC §6 name (what `Retry`/`Catch` match) and whose
 *   message is the JSON result (or `{"error": …}`): every error, `CommandFailed` for a `failed`
 *   result with `failOnNonZeroExit` included (`stepFunctionsError`).
 * @example
 * const handler = createTaskHandler(runtime);
 * const result = await handler(
 *   { request: { host, username, command }, execution: { id: executionArn, stateMachine } },
 *   lambdaContext,
 * ); // result.status: "succeeded" | "failed"
 */
export function createTaskHandler(runtime: Runtime) {
  return compose<unknown, RunResult>(
    {
      source: "task",
      runtime,
      adapter: [stepFunctionsError({ includeOutput: runtime.settings.taskErrorOutput })],
    },
    async (event, invocation) => {
      // The caller is the state machine named by the payload's execution context (SPEC §9).
      const task = verifiedTask(event, invocation.functionArn, runtime.settings.stateMachineArns);
      invocation.caller = task.caller;
      invocation.audit.executionArn = task.executionArn;
      const { result, error } = await execute(invocation, runtime, task.request, {
        ...TASK_LIMITS,
        idempotencyScope: task.executionArn,
      });
      // Any error (failOnNonZeroExit: CommandFailed): stepFunctionsError() throws its name.
      if (error) throw error;
      return result;
    },
  );
}

let cached: Promise<ReturnType<typeof createTaskHandler>> | undefined;

/**
 * The deployed handler: the AWS runtime from the container's configuration (functions/config),
 * built on the first invocation and kept for the container.
 *
 * @param event `{ request, execution: { id, stateMachine } }` as the state machine builds it.
 * @param context the Lambda context.
 * @throws as {@link createTaskHandler}'s handler.
 */
export const handler = (event: unknown, context: Context): Promise<RunResult> => {
  cached ??= defaultRuntime().then(createTaskHandler);
  cached.catch(() => {
    cached = undefined;
  });
  return cached.then((handle) => handle(event, context));
};
