import type { EngineError } from "../../lib/errors.ts";
import type { RunResult } from "../../lib/types.ts";

/**
 * What one invocation knows about itself, shared between the handler (which fills it) and the
 * metrics/audit middlewares (which read it in `after` and `onError`). Stored on middy's
 * `request.internal` under {@link INVOCATION_KEY}.
 */
export interface InvocationRecord {
  /** `Date.now()` when the invocation started. */
  startedAt: number;
  /** `Date.now()` value by which the handler must have returned (start + remaining − safety). */
  mustReturnBy: number;
  /** Budget given to the SSH session (ms), once computed. */
  budgetMs?: number;
  /** TCP sockets found open at invocation start (leaks carried across a freeze). */
  leakedSockets: number;
  /** The engine's result, when a session ran (or a synthetic one for early failures). */
  result?: RunResult;
  /** The error the caller sees, when there is one (validation, policy, session error...). */
  error?: EngineError;
  /** Caller identity (IAM principal ARN or the workflow role), for the audit line. */
  caller?: string;
}

export const INVOCATION_KEY = "boundedSsh";

interface HasInternal {
  internal: Record<string, unknown>;
}

/** Returns the invocation record of a middy request, creating it on first use. */
export function invocationOf(request: HasInternal, now = Date.now()): InvocationRecord {
  const existing = request.internal[INVOCATION_KEY] as InvocationRecord | undefined;
  if (existing) return existing;
  const created: InvocationRecord = { startedAt: now, mustReturnBy: now, leakedSockets: 0 };
  request.internal[INVOCATION_KEY] = created;
  return created;
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
