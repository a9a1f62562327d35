/**
 * How an invocation ends: a §5 result and the SPEC §6 error the caller sees, if any. The one
 * place a result becomes an error ({@link errorOfResult}); the entry points' adapters map that
 * error to HTTP (`functions/http/`) or to Step Functions (`functions/step-functions/`).
 */
import { CommandFailed, type EngineError, errorFromJSON } from "../../lib/errors.ts";
import { attachEngineError, buildResult, engineErrorOf } from "../../lib/result.ts";
import type { RunRequest, RunResult } from "../../lib/types.ts";

/**
 * What `execute` settles with. `result` is absent only when the input was not a request at
 * all (a `ValidationError` before there is a target to report); `error` is absent when the
 * caller gets the result as it is (`succeeded`, or `failed` without `failOnNonZeroExit`).
 */
export type Settled =
  | { result: RunResult; error?: undefined }
  | { result: RunResult | undefined; error: EngineError };

/** Options of {@link errorOfResult}. */
export interface ErrorOfResultOptions {
  /** A `failed` result is `CommandFailed` (Step Functions, request `failOnNonZeroExit`). */
  failOnNonZeroExit?: boolean;
}

/**
 * The SPEC §6 error of a result, the one place a result becomes an error: the engine's own
 * object when the session ran in this invocation (its stack and cause reach the
 * unexpected-error log), else rebuilt from the JSON (a replayed idempotent result); with
 * `failOnNonZeroExit`, a `failed` result is `CommandFailed`.
 *
 * @param result a §5 result, the engine's or a synthetic one.
 * @param options whether a `failed` result is an error at this entry point.
 * @returns the error, or `undefined` when the caller gets the result as it is.
 * @example
 * errorOfResult(result, { failOnNonZeroExit: true })?.name; // "CommandFailed" for exit 1
 */
export function errorOfResult(
  result: RunResult,
  options: ErrorOfResultOptions = {},
): EngineError | undefined {
  if (result.error) return engineErrorOf(result) ?? errorFromJSON(result.error);
  if (options.failOnNonZeroExit && result.status === "failed") {
    return new CommandFailed(
      `command exited with ${result.exitCode ?? `signal ${result.signal}`}`,
      {
        phase: "exec",
        commandStarted: true,
      },
    );
  }
  return undefined;
}

/** What a synthetic result needs of the invocation. */
export interface SyntheticClock {
  requestId: string;
  budgetMs: number;
  deadline: { elapsed(): number };
}

/**
 * A §5 result for a failure before any session (policy, credentials, deadline), so API
 * callers and Step Functions `Catch` still get target, phase and timings. The error object
 * rides on it ({@link errorOfResult} gives it back, stack and cause included).
 *
 * @param request the validated request.
 * @param error the failure, already a SPEC §6 error.
 * @param invocation its request id, budget and clock.
 */
export function syntheticResult(
  request: RunRequest,
  error: EngineError,
  invocation: SyntheticClock,
): RunResult {
  const totalMs = invocation.deadline.elapsed();
  const result = buildResult({
    requestId: invocation.requestId,
    target: {
      host: request.host,
      port: request.port ?? 22,
      address: null,
      username: request.username,
    },
    phase: error.phase,
    error: {
      ...error.toJSON(),
      commandStarted: false,
      ...(request.via !== undefined ? { hop: error.hop ?? "target" } : {}),
    },
    totalMs,
    deadline: { budgetMs: invocation.budgetMs, remainingMs: invocation.budgetMs - totalMs },
  });
  attachEngineError(result, error);
  return result;
}
