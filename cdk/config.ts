/**
 * Deploy-time settings shared by the constructs: the handler environment contract and the
 * outside-in timeout order (STYLE habit 5). Kept in one module so a renamed variable or a
 * broken timeout order fails in one place, at synth.
 */
import { Duration } from "aws-cdk-lib";
import { ENV } from "../operations/environment.ts";
import {
  DEFAULT_API_TIMEOUTS_MS,
  DEFAULT_TASK_TIMEOUTS_MS,
  type DefaultTimeouts,
} from "../operations/timeouts.ts";

/**
 * Environment variables the handlers read, from `operations/environment.ts` (what deploy time
 * and run time share), so a rename cannot drift between `functions/` and `cdk/`.
 */
export const HANDLER_ENV = ENV;

/** One chain of timeouts, outermost first: edge > function > session + reserve. */
export interface TimeoutChain {
  /** Who enforces the edge, for error messages ("API Gateway integration", "Step Functions task"). */
  readonly edge: string;
  /** The outermost limit: API Gateway integration timeout or the state's task timeout. */
  readonly edgeTimeout: Duration;
  /** The Lambda function timeout. */
  readonly functionTimeout: Duration;
  /**
   * The longest SSH session the deployment promises callers (the largest useful `timeoutMs`).
   * The handler derives each budget from the remaining time minus the reserve, so this is the
   * declared maximum the order is checked against, not an extra knob.
   */
  readonly sessionBudget: Duration;
  /** Time the handler keeps back after the session (teardown, metrics, response). */
  readonly reserve: Duration;
}

/**
 * Throws when a chain is not strictly ordered from the outside in. A violation would let an
 * outer layer give up while an inner one still works (a 504 for a command that then runs on,
 * or a Lambda hard timeout that skips teardown and metrics), so synth refuses it.
 */
export function validateTimeoutOrder(chains: readonly TimeoutChain[]): void {
  const problems: string[] = [];
  for (const c of chains) {
    const edgeMs = c.edgeTimeout.toMilliseconds();
    const fnMs = c.functionTimeout.toMilliseconds();
    const innerMs = c.sessionBudget.toMilliseconds() + c.reserve.toMilliseconds();
    if (c.sessionBudget.toMilliseconds() <= 0 || c.reserve.toMilliseconds() <= 0) {
      problems.push(`${c.edge}: session budget and reserve must both be positive`);
    }
    if (!(edgeMs > fnMs)) {
      problems.push(
        `${c.edge} timeout (${edgeMs} ms) must be greater than the Lambda timeout (${fnMs} ms)`,
      );
    }
    if (!(fnMs > innerMs)) {
      problems.push(
        `${c.edge}: Lambda timeout (${fnMs} ms) must be greater than session budget + reserve ` +
          `(${c.sessionBudget.toMilliseconds()} + ${c.reserve.toMilliseconds()} = ${innerMs} ms)`,
      );
    }
  }
  if (problems.length > 0) {
    throw new Error(
      `bounded-ssh timeout order violated (must be edge > Lambda > session + reserve):\n  - ${problems.join("\n  - ")}`,
    );
  }
}

/** Settings of one function's timeouts (the edge is supplied by the API or the workflow). */
export interface FunctionTimeouts {
  /** Lambda timeout. */
  readonly functionTimeout: Duration;
  /** Longest SSH session. */
  readonly sessionBudget: Duration;
  /** Kept back for teardown, metrics and the response. */
  readonly reserve: Duration;
}

/** One function's timeouts as `Duration`s, from the plain defaults of `operations/timeouts.ts`. */
function durations(ms: DefaultTimeouts): FunctionTimeouts {
  return {
    functionTimeout: Duration.millis(ms.functionTimeoutMs),
    sessionBudget: Duration.millis(ms.sessionBudgetMs),
    reserve: Duration.millis(ms.reserveMs),
  };
}

/** Defaults: API Gateway's standard 29 s integration limit bounds the API path. */
export const DEFAULT_API_TIMEOUTS = {
  integrationTimeout: Duration.millis(DEFAULT_API_TIMEOUTS_MS.edgeMs),
  ...durations(DEFAULT_API_TIMEOUTS_MS),
} as const;

/** Defaults for the workflow path: no caller-facing edge, so longer commands fit. */
export const DEFAULT_TASK_TIMEOUTS = {
  taskTimeout: Duration.millis(DEFAULT_TASK_TIMEOUTS_MS.edgeMs),
  ...durations(DEFAULT_TASK_TIMEOUTS_MS),
} as const;
