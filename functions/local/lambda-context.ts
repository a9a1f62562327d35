import { randomUUID } from "node:crypto";
import type { Context } from "aws-lambda";

/** Options of {@link lambdaContext}. */
export interface LambdaContextOptions {
  /** The function timeout the context counts down from. @default 30000 */
  timeoutMs?: number;
  /** @default "bounded-ssh-local" */
  functionName?: string;
  /** @default a random UUID */
  awsRequestId?: string;
}

/**
 * A Lambda-like context for one invocation: `getRemainingTimeInMillis()` counts down from
 * the configured function timeout exactly like the real one, so local runs exercise the same
 * deadline arithmetic as the deployed function.
 */
export function lambdaContext(options: LambdaContextOptions = {}): Context {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const functionName = options.functionName ?? "bounded-ssh-local";
  const deadline = Date.now() + timeoutMs;
  const unsupported = () => {
    throw new TypeError("callback-style completion is not supported; return a promise");
  };
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName,
    functionVersion: "$LATEST",
    invokedFunctionArn: `arn:aws:lambda:local:000000000000:function:${functionName}`,
    memoryLimitInMB: "1024",
    awsRequestId: options.awsRequestId ?? randomUUID(),
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: "local",
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: unsupported,
    fail: unsupported,
    succeed: unsupported,
  };
}

/** Function timeout of local mode: env `BSSH_FUNCTION_TIMEOUT_MS`, default 30 s. */
export function localFunctionTimeoutMs(env: NodeJS.ProcessEnv = process.env): number {
  const raw = Number(env.BSSH_FUNCTION_TIMEOUT_MS ?? 30_000);
  return Number.isFinite(raw) && raw > 0 ? raw : 30_000;
}
