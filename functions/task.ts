/**
 * Step Functions task entry point: the input is the SPEC §4 request; the output is the §5
 * result for `succeeded`/`failed`. Anything else is thrown as an error whose `name` is the
 * SPEC §6 name (for `Retry`/`Catch`) and whose message is the JSON result.
 */
import middy from "@middy/core";
import type { Context } from "aws-lambda";
import { CommandFailed } from "../lib/errors.ts";
import type { RunResult } from "../lib/types.ts";
import { auditFactsOf } from "./audit/audit-facts.ts";
import { auditLog } from "./audit/audit-log.ts";
import { auditOptions } from "./audit/audit-options.ts";
import { bindRequest, requestOf } from "./invocation/bind-request.ts";
import { errorOfResult, execute, TASK_LIMITS } from "./invocation/execute.ts";
import { invocationOf } from "./invocation/invocation.ts";
import { invocationDeadline } from "./invocation/invocation-deadline.ts";
import { metricsMiddleware } from "./metrics/middleware.ts";
import { verifiedTask } from "./request/callers.ts";
import { defaultRuntime } from "./runtime/default-runtime.ts";
import { preloadModules } from "./runtime/lazy.ts";
import type { Runtime } from "./runtime/runtime.ts";
import { stepFunctionsError } from "./step-functions/step-functions-error.ts";

/** Builds the Step Functions handler over a runtime (tests and local mode pass their own). */
export function createTaskHandler(runtime: Runtime) {
  return middy<unknown, RunResult, Error, Context>()
    .use(metricsMiddleware(runtime.metrics))
    .use(auditLog(auditOptions(runtime)))
    .use(invocationDeadline({ settings: runtime.settings }))
    .use(preloadModules(runtime.preload))
    .use(stepFunctionsError({ includeOutput: runtime.settings.taskErrorOutput }))
    .use(bindRequest())
    .handler(async (event, context) => {
      const request = requestOf(context);
      const facts = auditFactsOf(request, "task");
      // The caller is the state machine named by the payload's execution context (SPEC §9).
      const task = verifiedTask(
        event,
        context.invokedFunctionArn,
        runtime.settings.stateMachineArns,
      );
      invocationOf(request).caller = task.caller;
      facts.executionArn = task.executionArn;
      const result = await execute({ internal: request.internal, context }, runtime, task.request, {
        ...TASK_LIMITS,
        idempotencyScope: task.executionArn,
      });
      const error = errorOfResult(result);
      if (error) throw error;
      if (
        result.status === "failed" &&
        (task.request as { failOnNonZeroExit?: boolean }).failOnNonZeroExit
      ) {
        const failed = new CommandFailed(
          `command exited with ${result.exitCode ?? `signal ${result.signal}`}`,
          { phase: "exec", commandStarted: true },
        );
        invocationOf(request).error = failed;
        throw failed;
      }
      return result;
    });
}

let cached: Promise<ReturnType<typeof createTaskHandler>> | undefined;

/** The deployed handler: runtime from the environment (AWS, or local mode via BSSH_CONFIG). */
export const handler = (event: unknown, context: Context): Promise<RunResult> => {
  cached ??= defaultRuntime().then(createTaskHandler);
  cached.catch(() => {
    cached = undefined;
  });
  return cached.then((handle) => handle(event, context));
};
