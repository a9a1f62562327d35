import middy, { type MiddlewareObj } from "@middy/core";
import type { Context } from "aws-lambda";
import { auditLog } from "../audit/audit-log.ts";
import { auditOptions } from "../audit/audit-options.ts";
import { metricsMiddleware } from "../metrics/middleware.ts";
import { preloadModules } from "../runtime/lazy.ts";
import type { Runtime } from "../runtime/runtime.ts";
import { createInvocation } from "./create-invocation.ts";
import { engineErrors } from "./engine-error.ts";
import { type Invocation, invocationOf } from "./invocation.ts";

/** What an entry point adds to the fixed stack. */
export interface ComposeOptions<TEvent, TResult> {
  source: Invocation["source"];
  runtime: Runtime;
  /** When the caller's edge started waiting (epoch ms): API Gateway's `requestTimeEpoch`. */
  edgeStart?: (event: unknown) => number | undefined;
  /**
   * The entry point's adapter (HTTP response, Step Functions error): runs inside the fixed
   * middlewares, so its `onError` sees the mapped `EngineError` and its response is settled
   * before the audit line and the metrics read it.
   */
  adapter: readonly MiddlewareObj<TEvent, TResult, Error, Context>[];
}

/**
 * The one middleware order of every deployed handler, outermost first:
 *
 * 1. {@link createInvocation}: the invocation and its deadline exist before anything else and
 *    are ended after everything else (metrics were published within that deadline);
 * 2. metrics: leaked sockets at start; datums published last, from the settled invocation;
 * 3. audit: one line once the response and its status are settled;
 * 4. preload: starts loading the SDK clients and the engine while the first call waits;
 * 5. the entry point's adapter (HTTP or Step Functions);
 * 6. {@link engineErrors}: whatever was thrown becomes the invocation's `EngineError` first.
 *
 * The handler gets the event and its {@link Invocation}. Cancellation comes only from that
 * invocation: its own deadline and its own caller ({@link Invocation.signal}). middy's early
 * timeout is off (`timeoutEarlyInMillis: 0`) and its `{ signal }` is not used: middy 6.4.5
 * keeps ONE module-level `AbortController` for every invocation of the process, so one
 * invocation's early timeout aborted every other one in flight (local mode and the fault lab
 * serve concurrent invocations in one process). The invocation's deadline (Lambda's remaining
 * time less the response safety) comes before middy's would, and {@link Invocation.within}
 * is the backstop in its place: a handler stuck in a wait that ignores the signal is answered
 * with `DeadlineExceeded` at that deadline.
 *
 * @param options the entry point's source, runtime, edge timestamp and adapter middlewares.
 * @param handle the entry point's work; throw an `EngineError` (or anything) to answer with
 *   an error: the adapter maps it.
 * @returns the middy handler.
 * @throws nothing itself; what `handle` throws reaches the caller only through the adapter
 *   (an HTTP answer, a Step Functions error), or as `InternalError` without one.
 * @example
 * const handler = compose<unknown, string>(
 *   { source: "task", runtime, adapter: [stepFunctionsError()] },
 *   async (event, invocation) => {
 *     const { result, error } = await execute(invocation, runtime, event, TASK_LIMITS);
 *     if (error) throw error;
 *     return result.stdout;
 *   },
 * );
 */
export function compose<TEvent, TResult>(
  options: ComposeOptions<TEvent, TResult>,
  handle: (event: TEvent, invocation: Invocation) => Promise<TResult>,
) {
  const { runtime } = options;
  return middy<TEvent, TResult, Error, Context>({ timeoutEarlyInMillis: 0 })
    .use(
      createInvocation({
        source: options.source,
        settings: runtime.settings,
        ...(options.edgeStart ? { edgeStart: options.edgeStart } : {}),
      }),
    )
    .use(metricsMiddleware(runtime.metrics))
    .use(auditLog(auditOptions(runtime)))
    .use(preloadModules(runtime.preload))
    .use([...options.adapter])
    .use(engineErrors())
    .handler(async (event, context) => {
      const invocation = invocationOf(context);
      return invocation.within(handle(event, invocation));
    });
}
