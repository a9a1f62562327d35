/**
 * A handler invoked the way Lambda invokes it for Step Functions, for the tests and labs that
 * run the synthesized workflows locally: JSON in and out, a fresh Lambda-like context per
 * invocation (its remaining time counting down from the function timeout), a thrown error
 * reported as Error = its `name` and Cause = the Node runtime's
 * `{"errorType","errorMessage","trace"}` envelope, and an invocation that outlives the function
 * timeout reported as `Sandbox.Timedout` ("Task timed out after N.NN seconds").
 *
 * (test/drill/drill.ts keeps its own copy: it also records Lambda's metrics and log lines.)
 */
import type { Context } from "aws-lambda";
import { lambdaContext } from "../../local/lambda-context.ts";
import { lambdaError } from "../cdk/local-sfn.ts";

export interface LambdaInvokeOptions {
  /** The function timeout each invocation's context counts down from. */
  timeoutMs: number;
  /** Called with each invocation's event (after the JSON round trip), before the handler. */
  onEvent?: (event: unknown) => void;
}

/** Wraps `handler` as Lambda would run it behind a Step Functions Lambda task. */
export function asLambda(
  handler: (event: never, context: Context) => Promise<unknown>,
  options: LambdaInvokeOptions,
): (input: unknown) => Promise<unknown> {
  const { timeoutMs } = options;
  return async (input) => {
    const event = JSON.parse(JSON.stringify(input)) as never;
    options.onEvent?.(event);
    let timer: NodeJS.Timeout | undefined;
    const hardTimeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const cause = {
          errorType: "Sandbox.Timedout",
          errorMessage: `Task timed out after ${(timeoutMs / 1000).toFixed(2)} seconds`,
        };
        reject(Object.assign(new Error(JSON.stringify(cause)), { name: "Sandbox.Timedout" }));
      }, timeoutMs);
    });
    try {
      const invocation = handler(event, lambdaContext({ timeoutMs })).then(
        (result) => JSON.parse(JSON.stringify(result)) as unknown,
        (err: unknown) => {
          const error = err as Error;
          throw lambdaError(error, (error.stack ?? "").split("\n"));
        },
      );
      return await Promise.race([invocation, hardTimeout]);
    } finally {
      clearTimeout(timer);
    }
  };
}
