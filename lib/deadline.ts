import { monitorEventLoopDelay } from "node:perf_hooks";
import type { Phase } from "./names.ts";
import type { PhaseCaps, TimeoutBound } from "./types.ts";

/**
 * Default per-phase caps (ms). Each phase is bounded by its cap AND by what is left of the
 * budget; `exec` has no cap of its own, so the command may use whatever the budget leaves.
 * `teardown` is the grace for a polite close (DISCONNECT, FIN) before the socket is destroyed.
 */
export const DEFAULT_PHASE_CAPS: Readonly<Record<Phase, number>> = {
  resolve: 2_000,
  connect: 3_000,
  banner: 5_000,
  handshake: 5_000,
  auth: 5_000,
  channel: 5_000,
  exec: Number.POSITIVE_INFINITY,
  teardown: 250,
};

/**
 * The rejection {@link Deadline.wait} uses internally and never lets out: one shared instance,
 * so a pending wait (a keepalive interval, every live session has one) holds no Error of its
 * own with its captured stack.
 */
const GRACE_EXPIRED = new Error("grace expired");

// setTimeout clamps anything above this to 1 ms; longer allowances need no timer at all.
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * The one deadline of a session. Created once at the edge from a budget and/or a parent
 * signal; every wait in the engine goes through {@link Deadline.bound} or
 * {@link Deadline.wait}, so no other module invents a timeout and every timer it creates is
 * cleared before the wait settles.
 *
 * @example Bound each step of your own work by its cap and what is left of one budget.
 * ```ts
 * import { Deadline } from "bounded-ssh";
 *
 * const deadline = new Deadline({ budgetMs: 2_000, caps: { connect: 500 } });
 * const ready = new Promise<string>((resolve) => setTimeout(() => resolve("ready"), 50));
 * // Rejects with the onExpiry error once min(500 ms, budget left − teardown reserve) has passed.
 * const state = await deadline.bound(
 *   deadline.allowance("connect"),
 *   ready,
 *   () => new Error("not ready within the connect allowance"),
 *   () => new Error("cancelled"),
 * );
 * // A grace where running out is normal: true when `ready` settled in time, never rejects.
 * const settled = await deadline.wait(deadline.allowance("teardown"), ready);
 * console.log(state, settled, Math.round(deadline.remaining()));
 * ```
 *
 * @example Inside a Lambda handler: the budget is the invocation's remaining time.
 * ```ts
 * import { Deadline } from "bounded-ssh";
 *
 * export async function handler(_event: unknown, context: { getRemainingTimeInMillis(): number }) {
 *   const deadline = new Deadline({ budgetMs: context.getRemainingTimeInMillis() - 500 });
 *   return { allowanceMs: deadline.allowance("exec") };
 * }
 * ```
 */
export class Deadline {
  readonly budgetMs: number;
  readonly caps: Readonly<Record<Phase, number>>;
  readonly #now: () => number;
  readonly #start: number;
  readonly #signal: AbortSignal | undefined;
  /** Kept back from every phase but teardown, so a polite teardown fits inside the budget. */
  readonly teardownReserveMs: number;
  readonly #loopDelay: (() => number) | undefined;
  /** The largest loop margin handed out so far ({@link loopMarginMs}). */
  #marginMs = 0;
  /** When teardown began ({@link beginTeardown}): its cap counts from there. */
  #teardownStart: number | undefined;

  /**
   * Starts the clock now. Never throws; with neither a budget nor a signal nothing ever
   * expires (`remaining()` is Infinity): give at least one.
   *
   * @param options - `budgetMs`: the whole session's time (ms, default unbounded); `signal`:
   *   the caller's cancellation (an aborted signal rejects every {@link bound} with its
   *   `onAbort` error); `caps`: per-phase caps over {@link DEFAULT_PHASE_CAPS} (`undefined`
   *   entries keep the default); `now`: a monotonic clock in ms, for tests.
   */
  constructor(options: {
    budgetMs?: number;
    signal?: AbortSignal;
    caps?: PhaseCaps;
    /** Monotonic clock (ms). @default performance.now */
    now?: () => number;
    /**
     * The event loop's recent delay (ms), kept back from the allowances (see
     * {@link loopMarginMs}); `false`: none. @default {@link recentLoopDelayMs} on the real
     * clock, none with an injected `now` (a test's clock is never late).
     */
    loopDelay?: (() => number) | false;
  }) {
    this.#loopDelay =
      options.loopDelay === false
        ? undefined
        : (options.loopDelay ?? (options.now ? undefined : recentLoopDelayMs));
    this.#now = options.now ?? (() => performance.now());
    this.#start = this.#now();
    this.budgetMs = options.budgetMs ?? Number.POSITIVE_INFINITY;
    this.#signal = options.signal;
    this.caps = { ...DEFAULT_PHASE_CAPS, ...stripUndefined(options.caps ?? {}) };
    // A fifth of a short budget at most: a 300 ms session still gets 240 ms of work.
    this.teardownReserveMs = Math.min(this.caps.teardown, this.budgetMs / 5);
  }

  /** Milliseconds since the deadline was created. */
  elapsed(): number {
    return this.#now() - this.#start;
  }

  /** Milliseconds left of the budget (may be negative, or Infinity without a budget). */
  remaining(): number {
    return this.budgetMs - this.elapsed();
  }

  /** True when the caller's signal has aborted. */
  get aborted(): boolean {
    return this.#signal?.aborted ?? false;
  }

  /** The caller's signal's `reason` once it aborted (a `TimeoutError` is a timeout). */
  get abortReason(): unknown {
    return this.#signal?.aborted ? this.#signal.reason : undefined;
  }

  /**
   * Time a phase may take now: the smaller of its cap and what is left of the budget. Every
   * phase but `teardown` leaves {@link teardownReserveMs} for teardown, so signalling a timed
   * out command, DISCONNECT and FIN still happen before the budget ends. `teardown` gets what
   * is left of its cap (counted from {@link beginTeardown}) and of the budget. Both keep
   * {@link loopMarginMs} back (the other phases from the budget's side only, not their cap).
   *
   * @param phase - A SPEC §3 phase name (`resolve` … `teardown`).
   * @returns Milliseconds, never negative; `Infinity` for `exec` without a budget.
   */
  allowance(phase: Phase): number {
    // The loop margin comes off what the budget allows, not off a phase's own cap: a phase
    // that ends at its cap, late, leaves the budget to the phases after it.
    if (phase === "teardown") return Math.max(0, this.#left(phase));
    return Math.max(0, Math.min(this.caps[phase], this.#left(phase)));
  }

  /**
   * Which bound an {@link allowance} taken now is: `"phase"` when the phase's own cap is the
   * smaller (its expiry says the peer was slow), `"budget"` when what is left of the budget
   * is (the caller's shorter budget cut the phase short). Reported as a timeout error's
   * `bound` (SPEC §6), so a breaker counts only the peer's slowness.
   *
   * @param phase - A SPEC §3 phase name.
   */
  boundOf(phase: Phase): TimeoutBound {
    return this.caps[phase] <= this.#left(phase) ? "phase" : "budget";
  }

  /** What the budget (or, in teardown, teardown's own cap) leaves a phase, less the loop margin. */
  #left(phase: Phase): number {
    const margin = this.loopMarginMs();
    if (phase === "teardown") return this.#teardownLeft() - margin;
    return this.remaining() - this.teardownReserveMs - margin;
  }

  /**
   * Marks the start of teardown: from now on the teardown cap counts from here, so every
   * step of teardown (confirmation, goodbye, close) shares one cap. Idempotent.
   */
  beginTeardown(): void {
    this.#teardownStart ??= this.#now();
  }

  /** What is left of teardown's cap (from {@link beginTeardown}, else whole) and the budget. */
  #teardownLeft(): number {
    const used = this.#teardownStart === undefined ? 0 : this.#now() - this.#teardownStart;
    return Math.min(this.caps.teardown - used, this.remaining());
  }

  /**
   * Milliseconds kept back for a late event loop: a timer fires as late as the loop is
   * delayed, so a phase that would end at the budget's limit starts teardown that much early,
   * teardown's waits end that much early, and the session still ends inside its budget
   * (SPEC §3) and teardown inside its cap.
   * The process's recent loop delay ({@link recentLoopDelayMs}), at most
   * {@link LOOP_MARGIN_MAX_MS} (beyond it the bound is not promised) and a tenth of the
   * budget (a short session keeps most of its time).
   */
  loopMarginMs(): number {
    if (!this.#loopDelay) return 0;
    const now = Math.min(LOOP_MARGIN_MAX_MS, this.budgetMs / 10, Math.max(0, this.#loopDelay()));
    // Never shrinks within a session: an allowance only ever goes down, so a wait that ended
    // at the budget's limit still reads as "no time left" once the loop has calmed down.
    this.#marginMs = Math.max(this.#marginMs, now);
    return this.#marginMs;
  }

  /**
   * Settles with `work`, unless the allowance `ms` runs out first (rejects with `onExpiry()`)
   * or the caller's signal aborts (rejects with `onAbort()`). Expiry rejects at once: nothing
   * waits for the peer's cooperation. The timer and the abort listener are released before
   * the returned promise settles.
   *
   * @param ms - The allowance, usually {@link allowance}; `≤ 0` expires at once.
   * @param work - What to wait for; its later rejection is always handled (never unhandled).
   * @param onExpiry - Builds the rejection when `ms` runs out.
   * @param onAbort - Builds the rejection when the caller's signal aborts (or already has).
   * @throws The returned promise rejects with `onExpiry()`'s or `onAbort()`'s error, or with
   *   `work`'s own rejection; `bound` itself never throws synchronously.
   */
  bound<T>(ms: number, work: Promise<T>, onExpiry: () => Error, onAbort: () => Error): Promise<T> {
    // Subscribed before anything else: when the bound fails at once (no time left, already
    // aborted) the work's own later rejection must still be handled, never an unhandled
    // rejection (which ends a Lambda invocation as Runtime.UnhandledPromiseRejection).
    work.catch(() => {});
    return new Promise<T>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const signal = this.#signal;
      const cleanup = () => {
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener("abort", abort);
      };
      const abort = () => {
        cleanup();
        reject(onAbort());
      };
      if (signal?.aborted) {
        reject(onAbort());
        return;
      }
      if (ms <= 0) {
        reject(onExpiry());
        return;
      }
      signal?.addEventListener("abort", abort, { once: true });
      if (ms <= MAX_TIMER_MS) {
        timer = setTimeout(() => {
          cleanup();
          reject(onExpiry());
        }, ms);
      }
      work.then(
        (value) => {
          cleanup();
          resolve(value);
        },
        (err: unknown) => {
          cleanup();
          reject(err);
        },
      );
    });
  }

  /**
   * Waits for `work` at most `ms` (and never past an aborted signal). Resolves `true` when
   * `work` settled in time, `false` otherwise. Never rejects: used for graces (exit → close,
   * polite teardown) where running out of time is a normal outcome, not an error.
   *
   * @param ms - The grace (ms).
   * @param work - What to wait for; settling either way counts as in time.
   */
  async wait(ms: number, work: Promise<unknown>): Promise<boolean> {
    const expired = GRACE_EXPIRED;
    try {
      await this.bound(
        ms,
        work.then(
          () => undefined,
          () => undefined,
        ),
        () => expired,
        () => expired,
      );
      return true;
    } catch {
      return false;
    }
  }
}

/** The most a deadline keeps back for a late event loop (ms): the bound holds up to this delay. */
export const LOOP_MARGIN_MAX_MS = 100;
/** Resolution of the loop-delay monitor (ms); its samples include it (kept as a safety). */
const LOOP_RESOLUTION_MS = 10;
/** The loop delay is the worst of the current and the previous window of this length (ms). */
const LOOP_WINDOW_MS = 1_000;

let loopWatch:
  | {
      histogram: ReturnType<typeof monitorEventLoopDelay>;
      windowStart: number;
      previousMaxNs: number;
    }
  | undefined;

/**
 * The event loop's recent delay in this process (ms): how late a timer fires now. One
 * `monitorEventLoopDelay` per process, started by the first call (its timer is unref'd: it
 * never keeps the process alive, and no handle of it is listed), read without a timer of its
 * own: the worst sample of the current window and the previous one (windows of
 * {@link LOOP_WINDOW_MS}, rotated on read, so a window is at least that long), the monitor's
 * 10 ms resolution included (a quiet loop reads 10–15 ms). 0 on the first call.
 */
export function recentLoopDelayMs(): number {
  const now = performance.now();
  if (loopWatch === undefined) {
    const histogram = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
    histogram.enable();
    loopWatch = { histogram, windowStart: now, previousMaxNs: 0 };
    return 0;
  }
  const w = loopWatch;
  const currentMaxNs = w.histogram.count > 0 ? w.histogram.max : 0;
  if (now - w.windowStart >= LOOP_WINDOW_MS) {
    w.previousMaxNs = currentMaxNs;
    w.histogram.reset();
    w.windowStart = now;
  }
  // A sample is the time between two of the monitor's ticks: its resolution plus the delay.
  // The resolution is kept, not subtracted: the delay to come may exceed the worst one seen.
  return Math.max(w.previousMaxNs, currentMaxNs) / 1e6;
}

function stripUndefined(caps: PhaseCaps): PhaseCaps {
  const out: PhaseCaps = {};
  for (const [phase, value] of Object.entries(caps) as [Phase, number | undefined][]) {
    if (value !== undefined) out[phase] = value;
  }
  return out;
}
