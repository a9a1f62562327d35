import { type EngineError, OutputIncomplete } from "./errors.ts";
import { type ErrorPhase, PHASES, type Phase, type RemoteCleanup, type Status } from "./names.ts";
import type { SessionOutput } from "./session/output-capture.ts";
import type { PhaseTimings, ResultError, RunResult } from "./types.ts";

/** SHA-256 of nothing: the hash of a stream no session produced. */
const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/** Everything a SPEC §5 result is made of; absent parts mean "no session got that far". */
export interface ResultFacts {
  requestId: string;
  target: RunResult["target"];
  /** Where the session ended (SPEC §5 `phase`). */
  phase: ErrorPhase;
  error?: ResultError;
  /**
   * The error means the time ran out (`status: "timed_out"`): `EngineError.timedOut`.
   * @default the error's name ends in `Timeout`
   */
  timedOut?: boolean;
  exit?: { code: number | null; signal: string | null };
  /** The captured streams; without them the result carries empty output. */
  output?: SessionOutput;
  /** Milliseconds per phase that ran. */
  timings?: Partial<Record<Phase, number>>;
  totalMs: number;
  deadline: { budgetMs: number | null; remainingMs: number | null };
  server?: { ident: string; hostKeySha256: string };
  /** @default "not_needed" */
  remoteCleanup?: RemoteCleanup;
}

/** The one place a SPEC §5 result is assembled: the engine's, and the handlers' before a session. */
export function buildResult(facts: ResultFacts): RunResult {
  const { exit } = facts;
  let { error } = facts;
  // A command that exited, but whose output was not read to its end, did not succeed or fail
  // as far as the caller can know: its counts and hashes are those of part of the stream.
  const incomplete =
    error === undefined &&
    exit !== undefined &&
    facts.output !== undefined &&
    !facts.output.complete
      ? outputIncomplete(exit, facts.output)
      : undefined;
  if (incomplete) error = incomplete.toJSON();
  let status: Status;
  if (error) {
    const timedOut = facts.timedOut ?? error.name.endsWith("Timeout");
    status = timedOut ? "timed_out" : "error";
  } else status = exit?.code === 0 && exit.signal === null ? "succeeded" : "failed";
  const ms = facts.timings ?? {};
  const timings = Object.fromEntries(
    PHASES.map((phase) => [timingKey(phase), ms[phase] === undefined ? null : round(ms[phase])]),
  ) as Omit<PhaseTimings, "totalMs">;
  const remaining = facts.deadline.remainingMs;
  const result: RunResult = {
    requestId: facts.requestId,
    status,
    target: facts.target,
    exitCode: exit?.code ?? null,
    signal: exit?.signal ?? null,
    stdout: "",
    stderr: "",
    output: {
      stdoutBytes: 0,
      stderrBytes: 0,
      truncated: false,
      stdoutSha256: EMPTY_SHA256,
      stderrSha256: EMPTY_SHA256,
      complete: true,
      stdoutEncoding: "utf8",
      stderrEncoding: "utf8",
    },
    phase: facts.phase,
    timings: { ...timings, totalMs: round(facts.totalMs) },
    deadline: {
      budgetMs: facts.deadline.budgetMs,
      remainingMs: remaining === null ? null : round(remaining),
    },
    remoteCleanup: facts.remoteCleanup ?? "not_needed",
  };
  if (facts.output) {
    const { stdout, stderr } = facts.output;
    const out = stdout.text();
    const err = stderr.text();
    const spillErrors = (["stdout", "stderr"] as const)
      .map((name) => {
        const message = facts.output![name].spillError;
        return message === undefined ? undefined : `${name}: ${message}`;
      })
      .filter((m) => m !== undefined);
    result.stdout = out.text;
    result.stderr = err.text;
    result.output = {
      stdoutBytes: stdout.bytes,
      stderrBytes: stderr.bytes,
      truncated: stdout.truncated || stderr.truncated,
      stdoutSha256: out.sha256,
      stderrSha256: err.sha256,
      complete: facts.output.complete,
      stdoutEncoding: out.encoding,
      stderrEncoding: err.encoding,
      ...(stdout.object ? { stdoutObject: stdout.object } : {}),
      ...(stderr.object ? { stderrObject: stderr.object } : {}),
      ...(spillErrors.length > 0 ? { spillError: spillErrors.join("; ") } : {}),
    };
  }
  if (error) result.error = error;
  if (facts.server) result.server = facts.server;
  if (incomplete) attachEngineError(result, incomplete);
  return result;
}

/** SPEC §6 `OutputIncomplete`: the exit status arrived, the streams' end did not. */
function outputIncomplete(exit: NonNullable<ResultFacts["exit"]>, output: SessionOutput) {
  const how =
    exit.signal !== null
      ? `died of signal ${exit.signal}`
      : exit.code !== null
        ? `exited ${exit.code}`
        : "ended";
  const why = output.incompleteReason ?? "the session stopped reading before the output ended";
  return new OutputIncomplete(
    `the command ${how}, but its output was not read to the end: ${why}; ` +
      `stdout ${output.stdout.bytes} and stderr ${output.stderr.bytes} bytes read, their ` +
      "SHA-256 cover only those bytes",
    { phase: "exec", commandStarted: true },
  );
}

/** What the engine knows about the remote command when the session ends. */
export interface CleanupFacts {
  failed: boolean;
  commandStarted: boolean;
  exited: boolean;
  signalSent: boolean;
  confirmed: boolean;
  remoteBound: boolean;
}

/** SPEC §5 `remoteCleanup`: what was done about a command the session did not see finish. */
export function remoteCleanupOf(facts: CleanupFacts): RemoteCleanup {
  if (!facts.failed || !facts.commandStarted || facts.exited) return "not_needed";
  if (facts.signalSent) return facts.confirmed ? "confirmed" : "signalled";
  if (facts.remoteBound) return "remote_bound";
  return "unknown";
}

/** `resolve` → `resolveMs`: the timing field of a phase. */
export function timingKey(phase: Phase): keyof Omit<PhaseTimings, "totalMs"> {
  return `${phase}Ms`;
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}

/**
 * The engine's own error object behind a result's `error`, kept on the result as a
 * non-enumerable symbol: never serialized, but the handlers log an `InternalError` with its
 * real stack and cause instead of one rebuilt from JSON.
 */
const ENGINE_ERROR = Symbol.for("bounded-ssh.engine-error");

/** Attaches `error` to `result` (see {@link engineErrorOf}). */
export function attachEngineError(result: RunResult, error: EngineError): void {
  Object.defineProperty(result, ENGINE_ERROR, { value: error, enumerable: false });
}

/** The error object {@link attachEngineError} kept on `result`, if any. */
export function engineErrorOf(result: RunResult): EngineError | undefined {
  return (result as unknown as Record<symbol, EngineError | undefined>)[ENGINE_ERROR];
}
