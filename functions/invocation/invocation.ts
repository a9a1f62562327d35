import { Deadline } from "../../lib/deadline.ts";
import type { EngineError } from "../../lib/errors.ts";
import type { RunResult } from "../../lib/types.ts";
import type { AuditFacts } from "../audit/audit-facts.ts";
import { errorOfResult, type Settled } from "./outcome.ts";
import { toEngineError } from "./to-engine-error.ts";

// Node clamps a longer timer to 1 ms.
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Options of {@link Invocation}. */
export interface InvocationOptions {
  source: AuditFacts["source"];
  /** Lambda's request id (the result's and the audit line's `requestId`). */
  requestId: string;
  /** The function's ARN as invoked (`context.invokedFunctionArn`). */
  functionArn?: string;
  /**
   * Milliseconds, counted from now, by which the handler must have returned: the tighter of
   * Lambda's remaining time and the edge's, less the time the response needs to leave.
   */
  mustReturnWithinMs: number;
  /** Kept back from the session for teardown, metrics and the response. */
  reserveMs: number;
  /** Signals that cancel the invocation besides its deadline (local mode's Ctrl-C). */
  signals?: readonly AbortSignal[];
  /** Monotonic clock of the deadline (tests). @default performance.now */
  now?: () => number;
}

/**
 * One invocation: its deadline, its signal, who called, what the audit line says and how it
 * ended. Created once per invocation by {@link createInvocation} (the first middleware), kept
 * on the Lambda context, ended by the same middleware after everything else ran.
 *
 * Every time budget of an invocation is derived here, from the one {@link Deadline} (whose
 * budget ends when the handler must have returned) on one monotonic clock:
 * - the session's budget: that end less `reserveMs`, narrowed by the request's `timeoutMs`;
 * - the reads before the session: what is left of the session's budget, and their own cap;
 * - the writes after it (breaker, metrics): what is left before the end.
 */
export class Invocation {
  readonly source: AuditFacts["source"];
  readonly requestId: string;
  readonly functionArn: string | undefined;
  /** Ends when the handler must have returned. */
  readonly deadline: Deadline;
  readonly reserveMs: number;
  /** What the audit line says beyond the result (request, policy decision, address…). */
  readonly audit: AuditFacts;
  /** Caller identity (IAM principal ARN or the state machine), once verified. */
  caller?: string;
  /** The engine's result, when a session ran (or a synthetic one for early failures). */
  result?: RunResult;
  /** The error the caller sees, when there is one. */
  error?: EngineError;
  /** TCP sockets found open at invocation start (leaks carried across a freeze). */
  leakedSockets = 0;

  #timeoutMs = Number.POSITIVE_INFINITY;
  readonly #signal: AbortSignal;
  readonly #expired = new AbortController();
  readonly #timer: NodeJS.Timeout;

  constructor(options: InvocationOptions) {
    this.source = options.source;
    this.requestId = options.requestId;
    this.functionArn = options.functionArn;
    this.reserveMs = options.reserveMs;
    this.audit = { source: options.source };
    const budgetMs = Math.max(0, options.mustReturnWithinMs);
    this.deadline = new Deadline(options.now ? { budgetMs, now: options.now } : { budgetMs });
    this.#signal = AbortSignal.any([this.#expired.signal, ...(options.signals ?? [])]);
    this.#timer = setTimeout(
      () =>
        this.#expired.abort(new DOMException("the invocation's deadline passed", "TimeoutError")),
      Math.min(budgetMs, MAX_TIMER_MS),
    );
    // Only the invocation's own work keeps the process alive, never its deadline.
    this.#timer.unref();
  }

  /**
   * Aborts when this invocation must return (its own deadline) or when its own caller cancels
   * (local mode's Ctrl-C), and for no other reason: not middy's `{ signal }`, which middy 6
   * shares across every invocation of a process. Goes to every read, the session and the
   * metrics call; `reason.name` is `TimeoutError` for the deadline.
   */
  get signal(): AbortSignal {
    return this.#signal;
  }

  /**
   * Settles with `work`, or rejects with a `TimeoutError` once this invocation's own deadline
   * has passed: the backstop that makes a handler return in time even when a wait inside it
   * ignores the signal (it replaces middy's early timeout, which the composer disables).
   * Only the deadline ends it: a cancellation (Ctrl-C) reaches the work through
   * {@link signal}, so the session still tears down and reports it.
   *
   * @param work the handler's work, started already.
   * @returns what `work` settles with, if it settles first.
   * @throws (as a rejection) `work`'s own error, or the deadline's `TimeoutError`
   *   (`DeadlineExceeded` once mapped).
   * @example
   * return invocation.within(handle(event, invocation));
   */
  within<T>(work: Promise<T>): Promise<T> {
    const expired = this.#expired.signal;
    return new Promise<T>((resolve, reject) => {
      const onExpired = () => reject(expired.reason);
      if (expired.aborted) onExpired();
      else expired.addEventListener("abort", onExpired, { once: true });
      work.then(
        (value) => {
          expired.removeEventListener("abort", onExpired);
          resolve(value);
        },
        (err: unknown) => {
          expired.removeEventListener("abort", onExpired);
          reject(err);
        },
      );
    });
  }

  /** Narrows the session's budget to the request's own `timeoutMs`. */
  limit(timeoutMs: number): void {
    this.#timeoutMs = Math.min(this.#timeoutMs, timeoutMs);
  }

  /** The session's budget as planned at the start (ms): the audit line's `budgetMs`. */
  get budgetMs(): number {
    return Math.min(Math.max(0, this.deadline.budgetMs - this.reserveMs), this.#timeoutMs);
  }

  /** What is left of the session's budget now (ms; negative once spent). */
  sessionRemaining(): number {
    return this.budgetMs - this.deadline.elapsed();
  }

  /** Time left before the handler must return (ms): `DeadlineSlack`, the audit's `slackMs`. */
  slackMs(): number {
    return this.deadline.remaining();
  }

  /**
   * The signal of one read before the session (policy, credentials, known hosts, breaker):
   * at most `capMs`, and never past the session's budget.
   */
  readSignal(capMs: number): AbortSignal {
    return this.#within(Math.min(capMs, this.sessionRemaining()));
  }

  /**
   * The signal of one write after the session (the breaker's record): at most `capMs`, and at
   * most half of what is left before the end, so metrics and the response keep the rest.
   */
  reserveSignal(capMs: number): AbortSignal {
    return this.#within(Math.min(capMs, this.slackMs() / 2));
  }

  /**
   * Records how the request path ended (`execute`, once): its result, when there is one, and
   * its error unless one is already recorded (a deadline that fired first stays the error).
   * Returns what the entry point answers with.
   */
  settle(result: RunResult | undefined, error: EngineError | undefined): Settled {
    if (result) this.result = result;
    if (error) this.error ??= error;
    return this.error
      ? { result: this.result, error: this.error }
      : { result: this.result as RunResult };
  }

  /**
   * Records a thrown error unless one is already recorded, and returns the recorded one: the
   * error its result carries when there is one (a session that ended in `BannerTimeout` stays
   * that, whatever is thrown afterwards), else `err` mapped by {@link toEngineError}. Called by
   * the error mapper (`engineErrors`) only.
   */
  fail(err: unknown): EngineError {
    this.error ??=
      (this.result && errorOfResult(this.result)) ??
      toEngineError(err, this.result?.phase ?? "request");
    return this.error;
  }

  /** Releases the deadline's timer: nothing of this invocation outlives it. Idempotent. */
  end(): void {
    clearTimeout(this.#timer);
  }

  #within(ms: number): AbortSignal {
    const timeout = AbortSignal.timeout(Math.min(MAX_TIMER_MS, Math.max(0, Math.floor(ms))));
    return AbortSignal.any([this.#signal, timeout]);
  }
}

const INVOCATION = Symbol.for("bounded-ssh.invocation");

/** A Lambda context that carries its {@link Invocation}. */
export type InvocationContext = { [INVOCATION]?: Invocation };

/** Keeps `invocation` on its Lambda context (the invocation middleware only). */
export function attachInvocation(context: object, invocation: Invocation): void {
  (context as InvocationContext)[INVOCATION] = invocation;
}

/** True when the invocation middleware has attached an invocation to `context`. */
export function hasInvocation(context: object): boolean {
  return (context as InvocationContext)[INVOCATION] !== undefined;
}

/** The invocation of a Lambda context; throws when the invocation middleware did not run. */
export function invocationOf(context: object): Invocation {
  const invocation = (context as InvocationContext)[INVOCATION];
  if (!invocation)
    throw new TypeError("no invocation on this context: createInvocation() is missing");
  return invocation;
}

/**
 * Key of an optional `AbortSignal` on the invocation context that cancels the session. Only
 * local mode's server sets it (Ctrl-C); Lambda's context never carries it, so the deployed
 * path is unchanged.
 */
export const CANCEL_SIGNAL = "bsshCancelSignal";

/** A context that may carry {@link CANCEL_SIGNAL}. */
export interface CancellableContext {
  [CANCEL_SIGNAL]?: AbortSignal;
}
