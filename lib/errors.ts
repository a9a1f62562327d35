import {
  ERRORS,
  type ErrorFacts,
  type ErrorName,
  type ErrorPhase,
  type Hop,
  PHASE_TIMEOUT_ERROR,
  type Phase,
} from "./names.ts";
import type { ResultError, TimeoutBound } from "./types.ts";

export interface EngineErrorOptions {
  phase: ErrorPhase;
  /** Whether the remote command may have started. Decides `retryable` for `ConnectionLost`. */
  commandStarted?: boolean;
  cause?: unknown;
  /** With a jump host (`via`): the hop the error happened at. */
  hop?: Hop;
  /** A phase timeout: which bound expired (`Deadline.boundOf`). */
  bound?: TimeoutBound;
}

/**
 * Base of every error the project reports. `name` is one of SPEC §6's names exactly:
 * Step Functions `Retry`/`Catch` and alarms match on it.
 */
export abstract class EngineError extends Error {
  abstract override readonly name: ErrorName;
  readonly phase: ErrorPhase;
  readonly commandStarted: boolean;
  /** With a jump host (`via`): the hop the error happened at; set once ({@link atHop}). */
  hop: Hop | undefined;
  /** A phase timeout: the phase's own cap or the caller's budget expired (SPEC §6 `bound`). */
  readonly bound: TimeoutBound | undefined;

  constructor(message: string, options: EngineErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.phase = options.phase;
    this.commandStarted = options.commandStarted ?? false;
    this.hop = options.hop;
    this.bound = options.bound;
  }

  /**
   * The session's time ran out (result `status: "timed_out"`, SPEC §5): every `*Timeout`
   * error, and a {@link DeadlineExceeded} from a caller's signal that timed out.
   */
  get timedOut(): boolean {
    return this.name.endsWith("Timeout");
  }

  /** True only when the command certainly did not start (SPEC §5). */
  get retryable(): boolean {
    if (this.name === "ConnectionLost") return !this.commandStarted;
    return (ERRORS[this.name] as ErrorFacts).retryable === true;
  }

  /**
   * The error as the contract writes it (SPEC §6: a result's `error`, the API's `error`, a
   * Step Functions cause): the one place its JSON shape is decided. Never the cause.
   */
  toJSON(): ResultError {
    return {
      name: this.name,
      phase: this.phase,
      message: this.message,
      retryable: this.retryable,
      commandStarted: this.commandStarted,
      ...(this.hop !== undefined ? { hop: this.hop } : {}),
      ...(this.bound !== undefined ? { bound: this.bound } : {}),
    };
  }
}

export class ValidationError extends EngineError {
  override readonly name = "ValidationError";
}
export class TargetNotAllowed extends EngineError {
  override readonly name = "TargetNotAllowed";
}
export class CommandNotAllowed extends EngineError {
  override readonly name = "CommandNotAllowed";
}
/** The event does not come from a verified caller (wrong API, stage or account; a task without its execution context). */
export class CallerNotAllowed extends EngineError {
  override readonly name = "CallerNotAllowed";
}
/** The caller's rule does not grant the credential the request names. */
export class CredentialNotAllowed extends EngineError {
  override readonly name = "CredentialNotAllowed";
}
/** The credential store could not be reached in time (throttled, unreachable, timed out): retryable. */
export class CredentialUnavailable extends EngineError {
  override readonly name = "CredentialUnavailable";
}
/**
 * The credential itself is unusable until someone fixes it (not configured, unreadable key
 * file, bad format, missing or wrong passphrase): not retryable. The message names the
 * credential and the fix, never any part of the secret.
 */
export class CredentialInvalid extends EngineError {
  override readonly name = "CredentialInvalid";
}
/** A request with the same idempotency key is still running (or died without a result). */
export class CommandInProgress extends EngineError {
  override readonly name = "CommandInProgress";
}
/** The idempotency key was used before with a different request. */
export class IdempotencyKeyReused extends EngineError {
  override readonly name = "IdempotencyKeyReused";
}
/** The per-host breaker holds this host after repeated hangs; retry after its TTL. */
export class HostQuarantined extends EngineError {
  override readonly name = "HostQuarantined";
}
/**
 * Too little time left to start or continue, or the caller's `AbortSignal` aborted (see
 * {@link callerAbortError}). `timedOut` is true when the caller's signal said its time ran
 * out (its reason a `TimeoutError`): the result's status is then `timed_out`, not `error`.
 */
export class DeadlineExceeded extends EngineError {
  override readonly name = "DeadlineExceeded";
  readonly #timedOut: boolean;

  constructor(message: string, options: EngineErrorOptions & { timedOut?: boolean }) {
    super(message, options);
    this.#timedOut = options.timedOut ?? false;
  }

  override get timedOut(): boolean {
    return this.#timedOut;
  }
}

/**
 * True when an abort reason says time ran out: a `TimeoutError` (`AbortSignal.timeout()`'s
 * DOMException, or any error so named) — the convention (WHATWG, Deno std, ky) that tells a
 * timeout from a cancellation (`AbortError`, or any other reason) by `reason.name`.
 */
export function isTimeoutReason(reason: unknown): boolean {
  return (reason as { name?: unknown } | null | undefined)?.name === "TimeoutError";
}

/**
 * The one error for a caller's aborted signal, wherever the engine was waiting: a
 * `DeadlineExceeded` that is a timeout (`status: "timed_out"`) when the signal's reason is a
 * `TimeoutError`, a cancellation (`status: "error"`) otherwise.
 *
 * @param reason - The signal's `reason`.
 * @param during - Where it happened, for the message: e.g. `"during banner"`.
 */
export function callerAbortError(
  reason: unknown,
  during: string,
  options: EngineErrorOptions,
): DeadlineExceeded {
  const timedOut = isTimeoutReason(reason);
  const message = timedOut
    ? `the caller's signal timed out ${during} (its reason is a TimeoutError)`
    : `cancelled by the caller ${during}`;
  return new DeadlineExceeded(message, { ...options, timedOut });
}
export class DnsLookupFailed extends EngineError {
  override readonly name = "DnsLookupFailed";
}
export class ResolveTimeout extends EngineError {
  override readonly name = "ResolveTimeout";
}
export class ConnectRefused extends EngineError {
  override readonly name = "ConnectRefused";
}
export class ConnectTimeout extends EngineError {
  override readonly name = "ConnectTimeout";
}
export class BannerTimeout extends EngineError {
  override readonly name = "BannerTimeout";
}
export class ProtocolError extends EngineError {
  override readonly name = "ProtocolError";
}
export class HandshakeTimeout extends EngineError {
  override readonly name = "HandshakeTimeout";
}
export class HostKeyUnknown extends EngineError {
  override readonly name = "HostKeyUnknown";
}
export class HostKeyMismatch extends EngineError {
  override readonly name = "HostKeyMismatch";
}
export class AuthTimeout extends EngineError {
  override readonly name = "AuthTimeout";
}
export class AuthFailed extends EngineError {
  override readonly name = "AuthFailed";
}
export class ChannelTimeout extends EngineError {
  override readonly name = "ChannelTimeout";
}
export class ChannelRejected extends EngineError {
  override readonly name = "ChannelRejected";
}
export class CommandTimeout extends EngineError {
  override readonly name = "CommandTimeout";
}
export class ConnectionLost extends EngineError {
  override readonly name = "ConnectionLost";
}
/**
 * The command reported its exit status, but its output was not read to the end (EOF or channel
 * close): the session's time ran out with output still arriving, the streams went silent
 * without ending, or the connection dropped. Byte counts and SHA-256 cover what was read.
 */
export class OutputIncomplete extends EngineError {
  override readonly name = "OutputIncomplete";
}
export class CommandFailed extends EngineError {
  override readonly name = "CommandFailed";
}
export class InternalError extends EngineError {
  override readonly name = "InternalError";
}

type EngineErrorClass = new (message: string, options: EngineErrorOptions) => EngineError;

/** Name → class, for code that must build an error from a name (timeouts, deserialisation). */
export const ERROR_CLASSES: Record<ErrorName, EngineErrorClass> = {
  ValidationError,
  TargetNotAllowed,
  CommandNotAllowed,
  CallerNotAllowed,
  CredentialNotAllowed,
  CredentialUnavailable,
  CredentialInvalid,
  CommandInProgress,
  IdempotencyKeyReused,
  HostQuarantined,
  DeadlineExceeded,
  DnsLookupFailed,
  ResolveTimeout,
  ConnectRefused,
  ConnectTimeout,
  BannerTimeout,
  ProtocolError,
  HandshakeTimeout,
  HostKeyUnknown,
  HostKeyMismatch,
  AuthTimeout,
  AuthFailed,
  ChannelTimeout,
  ChannelRejected,
  CommandTimeout,
  ConnectionLost,
  OutputIncomplete,
  CommandFailed,
  InternalError,
};

/** Tags an error with the hop it happened at, unless it already names one; returns it. */
export function atHop<E extends EngineError>(err: E, hop: Hop): E {
  if (err.hop === undefined) err.hop = hop;
  return err;
}

/** The error class of a contract error (a result's `error`): the inverse of `toJSON()`. */
export function errorFromJSON(
  error: Pick<ResultError, "name" | "phase" | "message" | "commandStarted" | "hop" | "bound">,
): EngineError {
  const Cls = ERROR_CLASSES[error.name] ?? InternalError;
  return new Cls(error.message, {
    phase: error.phase,
    commandStarted: error.commandStarted,
    ...(error.hop !== undefined ? { hop: error.hop } : {}),
    ...(error.bound !== undefined ? { bound: error.bound } : {}),
  });
}

/** The timeout error of a phase, e.g. `BannerTimeout` for `banner`. */
export function phaseTimeoutError(
  phase: Phase,
  elapsedMs: number,
  commandStarted: boolean,
  bound?: TimeoutBound,
): EngineError {
  if (phase === "teardown") {
    return new InternalError("teardown has no timeout error", { phase, commandStarted });
  }
  const name = PHASE_TIMEOUT_ERROR[phase];
  const Cls = ERROR_CLASSES[name];
  const by = bound === "budget" ? " (the request's budget left no more)" : "";
  return new Cls(`${phase} phase did not finish within ${Math.round(elapsedMs)} ms${by}`, {
    phase,
    commandStarted,
    ...(bound !== undefined ? { bound } : {}),
  });
}

/** What the engine knew when an error arrived; the classifier needs nothing else. */
export interface ClassifyContext {
  phase: Phase;
  commandStarted: boolean;
  /** Set by the host verifier when it refused the server's key. */
  hostKeyRefusal?: HostKeyUnknown | HostKeyMismatch;
}

const REFUSED_CODES = new Set(["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "EADDRNOTAVAIL"]);
const SESSION_PHASES_BEFORE_KEX: ReadonlySet<Phase> = new Set(["banner", "handshake"]);

/**
 * The one place where anything thrown or emitted by ssh2, a socket or DNS becomes a SPEC §6
 * error. Classification uses ssh2's `level`, socket `code`s and the engine's own state (phase,
 * host-key decision) — never message text.
 */
export function classifyError(err: unknown, ctx: ClassifyContext): EngineError {
  if (err instanceof EngineError) return err;
  const { phase, commandStarted } = ctx;
  const base = { phase, commandStarted, cause: err };
  if (!(err instanceof Error)) {
    // The detail stays in `cause` (logged with its stack, redacted); never in the message a
    // caller sees.
    return new InternalError(`internal error during ${phase} (a non-error was thrown)`, base);
  }
  if (ctx.hostKeyRefusal) return ctx.hostKeyRefusal;
  // A bug in this process, never something the remote did: ssh2 reports protocol faults as
  // plain Errors (or RangeErrors from reading a short packet).
  if (err instanceof TypeError || err instanceof ReferenceError || err instanceof SyntaxError) {
    return new InternalError(`internal error during ${phase}`, base);
  }
  const level = (err as { level?: unknown }).level;
  const code = (err as { code?: unknown }).code;
  const detail = err.message;

  if (phase === "resolve") {
    return new DnsLookupFailed(`name did not resolve: ${detail}`, base);
  }
  if (phase === "connect") {
    if (typeof code === "string" && REFUSED_CODES.has(code)) {
      return new ConnectRefused(`connection refused or unreachable (${code})`, base);
    }
    return new ConnectRefused(`TCP connect failed: ${detail}`, base);
  }
  if (level === "client-authentication") {
    return new AuthFailed(`authentication failed: ${detail}`, base);
  }
  if (level === "handshake") {
    return new ProtocolError(`key exchange failed: ${detail}`, base);
  }
  if (level === "client-timeout") {
    // readyTimeout is disabled (the engine owns the deadline), so this is SSH keepalive.
    return new ConnectionLost(`peer stopped answering SSH keepalive: ${detail}`, base);
  }
  if (level === "client-socket" || typeof code === "string") {
    return new ConnectionLost(`connection lost (${String(code ?? "socket error")})`, base);
  }
  if (level === undefined && SESSION_PHASES_BEFORE_KEX.has(phase)) {
    // ssh2 emits packet/ident parse errors without a level.
    return new ProtocolError(`protocol error: ${detail}`, base);
  }
  if (level === "protocol") {
    return new ConnectionLost(`connection lost: ${detail}`, base);
  }
  return new ProtocolError(`protocol error: ${detail}`, base);
}
