import type { Deadline } from "./deadline.ts";
import { callerAbortError, phaseTimeoutError } from "./errors.ts";
import type { ErrorPhase, Phase } from "./names.ts";
import type { SessionProgress } from "./session/connection.ts";

/**
 * Runs the phases of one session: each bounded by its allowance (cap and budget left, the
 * teardown reserve kept back) and by the caller's signal, timed, and announced to `onPhase`.
 * This is where each phase is bounded; what a phase waits for is the connection's milestone.
 */
export class PhaseRunner implements SessionProgress {
  /** The phase in progress (or the edge before a session); errors are attributed to it. */
  phase: ErrorPhase = "request";
  /**
   * The command started or may have started: set by the connection the moment the exec
   * request is written (and back to false when the server refuses it).
   */
  commandStarted = false;
  /** Milliseconds each phase took; a phase that never ran has no entry. */
  readonly timings: Partial<Record<Phase, number>> = {};
  readonly #deadline: Deadline;
  readonly #onPhase: ((phase: Phase) => void) | undefined;

  constructor(deadline: Deadline, onPhase?: (phase: Phase) => void) {
    this.#deadline = deadline;
    this.#onPhase = onPhase;
  }

  /**
   * Runs one phase: `work` (a milestone) against the phase's allowance. Expiry fails at once
   * with the phase's timeout error; the caller's abort with DeadlineExceeded
   * ({@link callerAbortError}: a timeout when the signal's reason is a `TimeoutError`).
   */
  async step<T>(phase: Phase, work: () => Promise<T>): Promise<T> {
    this.phase = phase;
    const start = performance.now();
    this.#onPhase?.(phase);
    const allowance = this.#deadline.allowance(phase);
    const bound = this.#deadline.boundOf(phase);
    try {
      return await this.#deadline.bound(
        allowance,
        work(),
        () => phaseTimeoutError(phase, allowance, this.commandStarted, bound),
        () =>
          callerAbortError(this.#deadline.abortReason, `during ${phase}`, {
            phase,
            commandStarted: this.commandStarted,
          }),
      );
    } finally {
      this.timings[phase] = performance.now() - start;
    }
  }

  /**
   * Teardown: timed and announced like a phase, but it never fails and does not move
   * {@link phase} (the result reports where the session ended, not that it was torn down).
   * `work` bounds itself with the teardown reserve.
   */
  async teardown<T>(work: () => Promise<T>): Promise<T> {
    const start = performance.now();
    // The teardown cap bounds the whole of it, every step together, from here.
    this.#deadline.beginTeardown();
    this.#onPhase?.("teardown");
    try {
      return await work();
    } finally {
      this.timings.teardown = performance.now() - start;
    }
  }
}
