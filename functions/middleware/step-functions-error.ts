import type { MiddlewareObj } from "@middy/core";
import { type EngineError, ERROR_CLASSES } from "../../lib/errors.ts";
import type { RunResult } from "../../lib/types.ts";
import { asEngineError } from "../shared/api-http.ts";
import { invocationOf } from "../shared/invocation.ts";

/**
 * Longest stdout/stderr (characters each) carried in a thrown error's message. Step Functions
 * limits a task failure's Cause to 32,768 characters, and Lambda repeats the message in its
 * `trace`; a truncated Cause would break `States.StringToJson` in the workflows' Catch path.
 * Byte counts and SHA-256 of the full streams stay in `output`.
 */
export const MAX_ERROR_STREAM_CHARS = 2_048;

function forCause(result: RunResult): RunResult {
  const trim = (text: string) =>
    text.length <= MAX_ERROR_STREAM_CHARS
      ? text
      : `${text.slice(0, MAX_ERROR_STREAM_CHARS / 2)}\n[bounded-ssh: cut to fit the Step Functions error cause]\n${text.slice(-MAX_ERROR_STREAM_CHARS / 2)}`;
  const stdout = trim(result.stdout);
  const stderr = trim(result.stderr);
  if (stdout === result.stdout && stderr === result.stderr) return result;
  return { ...result, stdout, stderr, output: { ...result.output, truncated: true } };
}

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
      const payload = record.result
        ? forCause(record.result)
        : {
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
