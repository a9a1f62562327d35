/**
 * Names that are part of the public contract (SPEC §3, §6, §7). Step Functions `Retry`/`Catch`,
 * CloudWatch alarms and outside acceptance tests match on these strings: they are defined once
 * here and imported by `functions/` and `cdk/`.
 */

/** Session phases, in order (SPEC §3). */
export const PHASES = [
  "resolve",
  "connect",
  "banner",
  "handshake",
  "auth",
  "channel",
  "exec",
  "teardown",
] as const;
export type Phase = (typeof PHASES)[number];

/**
 * The hops of a session through a jump host (request `via`): every error of such a session
 * names the hop it happened at (`error.hop`).
 */
export const HOPS = ["via", "target"] as const;
export type Hop = (typeof HOPS)[number];

/** Phases an error can be attributed to: the session phases plus the edges before a session. */
export type ErrorPhase = Phase | "request" | "policy" | "credentials";

/** Error names (SPEC §6). Each is the `name` of a class in `errors.ts`. */
export const ERROR_NAMES = [
  "ValidationError",
  "TargetNotAllowed",
  "CommandNotAllowed",
  "CallerNotAllowed",
  "CredentialNotAllowed",
  "CredentialUnavailable",
  "CredentialInvalid",
  "CommandInProgress",
  "IdempotencyKeyReused",
  "HostQuarantined",
  "DeadlineExceeded",
  "DnsLookupFailed",
  "ResolveTimeout",
  "ConnectRefused",
  "ConnectTimeout",
  "BannerTimeout",
  "ProtocolError",
  "HandshakeTimeout",
  "HostKeyUnknown",
  "HostKeyMismatch",
  "AuthTimeout",
  "AuthFailed",
  "ChannelTimeout",
  "ChannelRejected",
  "CommandTimeout",
  "ConnectionLost",
  "CommandFailed",
  "InternalError",
] as const;
export type ErrorName = (typeof ERROR_NAMES)[number];

/** The `*Timeout` error of each phase that has one. */
export const PHASE_TIMEOUT_ERROR = {
  resolve: "ResolveTimeout",
  connect: "ConnectTimeout",
  banner: "BannerTimeout",
  handshake: "HandshakeTimeout",
  auth: "AuthTimeout",
  channel: "ChannelTimeout",
  exec: "CommandTimeout",
} as const satisfies Partial<Record<Phase, ErrorName>>;

/**
 * Errors that count against a host's circuit breaker: the host accepted nothing useful
 * (no TCP, no banner, no key exchange) or vanished. Enough of them in a window quarantine it.
 */
export const BREAKER_ERRORS = [
  "ConnectTimeout",
  "BannerTimeout",
  "HandshakeTimeout",
  "ConnectionLost",
] as const satisfies readonly ErrorName[];

/** Errors that mean "the remote hung before the SSH session was up" — the incident's signature. */
export const HANDSHAKE_HANG_ERRORS = ["BannerTimeout", "HandshakeTimeout"] as const;

/** Errors a workflow may retry: the command certainly did not start (SPEC §6 `retryable`). */
export const RETRYABLE_ERRORS = [
  "CredentialUnavailable",
  "CommandInProgress",
  "HostQuarantined",
  "DnsLookupFailed",
  "ResolveTimeout",
  "ConnectRefused",
  "ConnectTimeout",
  "BannerTimeout",
  "HandshakeTimeout",
  "AuthTimeout",
  "ChannelTimeout",
  "ChannelRejected",
] as const satisfies readonly ErrorName[];

/** Result status (SPEC §5). */
export const STATUSES = ["succeeded", "failed", "timed_out", "error"] as const;
export type Status = (typeof STATUSES)[number];

/** What was done about the remote process (SPEC §5 `remoteCleanup`). */
export const REMOTE_CLEANUP = [
  "not_needed",
  "confirmed",
  "signalled",
  "remote_bound",
  "unknown",
] as const;
export type RemoteCleanup = (typeof REMOTE_CLEANUP)[number];

/** CloudWatch namespace default (SPEC §7); configurable at deploy time. */
export const DEFAULT_METRIC_NAMESPACE = "BoundedSsh";

/** Metric names (SPEC §7). */
export const METRIC = {
  Invocations: "Invocations",
  Errors: "Errors",
  Timeouts: "Timeouts",
  HandshakeHangs: "HandshakeHangs",
  PhaseLatency: "PhaseLatency",
  SessionDuration: "SessionDuration",
  DeadlineSlack: "DeadlineSlack",
  LeakedSockets: "LeakedSockets",
  OutputTruncated: "OutputTruncated",
} as const;
export type MetricName = (typeof METRIC)[keyof typeof METRIC];

/** Dimension names (SPEC §7). Hosts never become dimensions: they go to the audit log. */
export const DIMENSION = {
  Outcome: "Outcome",
  ErrorName: "ErrorName",
  Phase: "Phase",
} as const;
export type DimensionName = (typeof DIMENSION)[keyof typeof DIMENSION];
