import type { MiddlewareObj } from "@middy/core";
import { type EngineError, ERROR_CLASSES } from "../../lib/errors.ts";
import { asEngineError } from "../shared/api-http.ts";
import { invocationOf } from "../shared/invocation.ts";

/**
 * Step Functions errors (SPEC §6): the thrown error's `name` is exactly the SPEC name (what
 * `Retry`/`Catch` match on) and its message is the JSON result — or `{"error": …}` when there
 * is none — so a `Catch` with `ResultPath` keeps timings and phase.
 */
export function stepFunctionsError(): MiddlewareObj {
  return {
    onError: (request) => {
      const record = invocationOf(request);
      const cause: EngineError = asEngineError(request.error);
      record.error ??= cause;
      const payload = record.result ?? {
        error: {
          name: cause.name,
          phase: cause.phase,
          message: cause.message,
          retryable: cause.retryable,
          commandStarted: cause.commandStarted,
        },
      };
      const Cls = ERROR_CLASSES[cause.name];
      request.error = new Cls(JSON.stringify(payload), {
        phase: cause.phase,
        commandStarted: cause.commandStarted,
        cause,
      });
    },
  };
}
