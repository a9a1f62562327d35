import type { MiddlewareObj, Request } from "@middy/core";
import type { EngineError } from "../../lib/errors.ts";
import { invocationOf } from "./invocation.ts";
import { toEngineError } from "./to-engine-error.ts";

export { toEngineError };

/**
 * middy middleware: whatever was thrown is recorded on the invocation as a SPEC §6 error (see
 * {@link toEngineError}) and replaces `request.error`, so every `onError` after it (HTTP or
 * Step Functions adapter, audit, metrics) sees the same `EngineError`. Register it last: its
 * `onError` then runs first. This is the only caller of `invocation.fail`.
 *
 * @example After `createInvocation` (it records on the invocation) and the adapter.
 * middy(handler)
 *   .use(createInvocation({ source: "api", settings }))
 *   .use(apiResponse())
 *   .use(engineErrors());
 */
export function engineErrors(): MiddlewareObj {
  const engineErrorsOnError = (request: Request): void => {
    request.error = invocationOf(request.context).fail(request.error);
  };
  return { onError: engineErrorsOnError };
}

/**
 * The error {@link engineErrors} recorded for this request: what an adapter's `onError` (HTTP,
 * Step Functions) maps, never mapping again.
 *
 * @throws TypeError when `engineErrors()` is not registered after the adapter.
 */
export function recordedError(request: Pick<Request, "context">): EngineError {
  const { error } = invocationOf(request.context);
  if (!error) {
    throw new TypeError("no error recorded: register engineErrors() after this middleware");
  }
  return error;
}
