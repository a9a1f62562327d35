/**
 * The deployed functions' default timeouts, outermost first, as plain milliseconds: the CDK
 * app turns them into `Duration`s and checks their order at synth (`cdk/config.ts`); local
 * mode gives its Lambda-like context the same function timeout and reserve (`local/`), so a
 * local run is bounded like the deployed one.
 */

/** One function's default timeouts: its edge, the Lambda timeout, session budget and reserve. */
export interface DefaultTimeouts {
  /** The outermost limit: API Gateway's integration timeout or the state's task timeout. */
  readonly edgeMs: number;
  /** The Lambda function timeout. */
  readonly functionTimeoutMs: number;
  /** The longest SSH session the deployment promises callers. */
  readonly sessionBudgetMs: number;
  /** Kept back after the session for teardown, metrics and the response. */
  readonly reserveMs: number;
}

/** The API path: API Gateway's standard 29 s integration limit bounds it. */
export const DEFAULT_API_TIMEOUTS_MS = {
  edgeMs: 29_000,
  functionTimeoutMs: 25_000,
  sessionBudgetMs: 20_000,
  reserveMs: 2_000,
} as const satisfies DefaultTimeouts;

/** The workflow path: no caller-facing edge, so longer commands fit. */
export const DEFAULT_TASK_TIMEOUTS_MS = {
  edgeMs: 75_000,
  functionTimeoutMs: 60_000,
  sessionBudgetMs: 50_000,
  reserveMs: 3_000,
} as const satisfies DefaultTimeouts;

/** Default cache lifetime of policy, known_hosts and credentials: 5 minutes. */
export const DEFAULT_CACHE_TTL_MS = 300_000;
/**
 * Longest cache lifetime accepted: one hour. A revocation (`@revoked`, a removed rule, a
 * deleted credential) must reach every container within a bound the operator can state.
 */
export const MAX_CACHE_TTL_MS = 3_600_000;
