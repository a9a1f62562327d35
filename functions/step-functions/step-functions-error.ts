import type { MiddlewareObj, Request } from "@middy/core";
import { ERROR_CLASSES } from "../../lib/errors.ts";
import type { RunResult } from "../../lib/types.ts";
import { recordedError } from "../invocation/engine-error.ts";
import { invocationOf } from "../invocation/invocation.ts";
import { withDefaults } from "../invocation/with-defaults.ts";

/**
 * Longest stdout/stderr (characters each) carried in a thrown error's message. Step Functions
 * limits a task failure's Cause to 32,768 characters, and Lambda repeats the message in its
 * `trace`; a truncated Cause would break `States.StringToJson` in the workflows' Catch path.
 * Byte counts and SHA-256 of the full streams stay in `output`.
 */
export const MAX_ERROR_STREAM_CHARS = 2_048;

/** Options of {@link stepFunctionsError}. */
export interface StepFunctionsErrorOptions {
  /**
   * Carry stdout/stderr (cut to {@link MAX_ERROR_STREAM_CHARS}) in the error message. Error
   * causes land in execution history and CloudWatch Logs, readable by more principals than the
   * task output: by default they carry only byte counts and SHA-256. @default false
   */
  includeOutput?: boolean;
}

const defaults: Required<StepFunctionsErrorOptions> = { includeOutput: false };

function forCause(result: RunResult, includeOutput: boolean): RunResult {
  if (!includeOutput) {
    if (result.stdout === "" && result.stderr === "") return result;
    return { ...result, stdout: "", stderr: "" };
  }
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
 * `Retry`/`Catch` match on) and its message is the JSON result (stdout/stderr emptied unless
 * `includeOutput`; `output` keeps their byte counts and SHA-256) — or `{"error": …}` when there
 * is none — so a `Catch` with `ResultPath` keeps timings and phase. The one place an error
 * becomes what Step Functions sees.
 *
 * @throws TypeError for an unknown option.
 * @param opts {@link StepFunctionsErrorOptions}; an unknown key is a `TypeError`.
 * @example After `createInvocation` (it reads the invocation's result) and before `engineErrors`.
 * middy(handler)
 *   .use(createInvocation({ source: "task", settings }))
 *   .use(stepFunctionsError({ includeOutput: false }))
 *   .use(engineErrors());
 */
export function stepFunctionsError(opts: StepFunctionsErrorOptions = {}): MiddlewareObj {
  const { includeOutput } = withDefaults("stepFunctionsError", defaults, opts);
  const stepFunctionsErrorOnError = (request: Request): void => {
    const invocation = invocationOf(request.context);
    const cause = recordedError(request);
    const payload = invocation.result
      ? forCause(invocation.result, includeOutput)
      : { error: cause.toJSON() };
    const Cls = ERROR_CLASSES[cause.name];
    request.error = new Cls(JSON.stringify(payload), {
      phase: cause.phase,
      commandStarted: cause.commandStarted,
      cause,
    });
  };
  return { onError: stepFunctionsErrorOnError };
}
