import { randomUUID } from "node:crypto";
import type { Context } from "aws-lambda";
import { CANCEL_SIGNAL, type CancellableContext } from "../functions/invocation/invocation.ts";

/** Options of {@link lambdaContext}. */
export interface LambdaContextOptions {
  /** The function timeout the context counts down from. @default 30000 */
  timeoutMs?: number;
  /** @default "bounded-ssh-local" */
  functionName?: string;
  /** @default a random UUID */
  awsRequestId?: string;
  /**
   * Cancels the invocation's session (local mode's Ctrl-C): the engine signals a running
   * command and tears down. Lambda has no such thing; the deployed path never sets it.
   */
  signal?: AbortSignal;
}

/**
 * A Lambda-like context for one invocation: `getRemainingTimeInMillis()` counts down from
 * the configured function timeout exactly like the real one, so local runs exercise the same
 * deadline arithmetic as the deployed function.
 */
export function lambdaContext(options: LambdaContextOptions = {}): Context & CancellableContext {
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
    ...(options.signal ? { [CANCEL_SIGNAL]: options.signal } : {}),
  };
}
