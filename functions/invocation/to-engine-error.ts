import { DeadlineExceeded, EngineError, InternalError, ValidationError } from "../../lib/errors.ts";
import type { ErrorPhase } from "../../lib/names.ts";

/**
 * The one place where anything thrown in `functions/` becomes a SPEC §6 error:
 * - an `EngineError` is itself;
 * - a timeout — middy's early timeout (`TimeoutError`, cause `@middy/core`) or an aborted
 *   `AbortSignal.timeout` — is `DeadlineExceeded`: the invocation ran out of time;
 * - a middy HTTP 400 (a middleware refused the input before the handler) is `ValidationError`;
 * - anything else is a bug or an unexpected failure: `InternalError` with a generic message
 *   and the original as `cause` (logged with its stack, never shown to the caller).
 *
 * @param err whatever was thrown or rejected.
 * @param phase the phase a mapped (non-`EngineError`) failure is reported in.
 * @example
 * toEngineError(new TypeError("bug")).name; // "InternalError"
 */
export function toEngineError(err: unknown, phase: ErrorPhase = "request"): EngineError {
  if (err instanceof EngineError) return err;
  const name = (err as { name?: unknown } | null)?.name;
  if (name === "TimeoutError") {
    return new DeadlineExceeded("the invocation ran out of time", { phase, cause: err });
  }
  if ((err as { statusCode?: unknown } | null)?.statusCode === 400) {
    return new ValidationError("the request was refused before it was read", {
      phase: "request",
      cause: err,
    });
  }
  return new InternalError("internal error", { phase, cause: err });
}
