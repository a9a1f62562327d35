/**
 * Defaults of the fleet-state settings (idempotency records, the per-host breaker) as plain
 * numbers: the handlers fall back to them when a variable is unset
 * (`functions/config/config.ts`), the CDK app deploys them (`cdk/constructs/fleet-state.ts`).
 */

/** Lifetime of an idempotency record, seconds (`BSSH_IDEMPOTENCY_TTL_S`). */
export const DEFAULT_IDEMPOTENCY_TTL_SECONDS = 86_400;

/** The per-host circuit breaker (`BSSH_BREAKER_*`). */
export const DEFAULT_BREAKER = {
  /** Failures within the window that quarantine a host. */
  threshold: 3,
  /** The window, seconds. */
  windowSeconds: 600,
  /** How long a host stays quarantined, seconds. */
  quarantineSeconds: 900,
  /** Longest a half-open probe (the first request after a quarantine) holds a host, seconds. */
  probeSeconds: 120,
} as const;
