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

/**
 * How an error reads to an HTTP caller, by kind; `functions/http` maps each to its status.
 * `invalid` 400, `forbidden` 403, `conflict` 409, `internal` 500, `upstream` 502 (the remote
 * misbehaved), `unavailable` 503, `timeout` 504.
 */
export type StatusClass =
  | "invalid"
  | "forbidden"
  | "conflict"
  | "internal"
  | "upstream"
  | "unavailable"
  | "timeout";

/** Static facts of one error name. */
export interface ErrorFacts {
  readonly status: StatusClass;
  /**
   * The command certainly did not start: a workflow may retry (SPEC §6 `retryable`). Step
   * Functions retries by name, so a name marked so must only be raised before the exec request
   * is sent, or on the server's refusal of it (`ChannelRejected` at `exec`); a timeout once the
   * request is out is `CommandTimeout`.
   */
  readonly retryable?: true;
  /** The phase whose cap this error reports (the `*Timeout` errors). */
  readonly timeoutOf?: Phase;
}

/**
 * The error-name table (SPEC §6), in the contract's order: the one source of the names, their
 * retryability, the phase each timeout reports and the HTTP status class. Each name is the
 * `name` of a class in `errors.ts`. `ConnectionLost` is retryable only when the command did
 * not start: decided per error, not here.
 */
export const ERRORS = {
  ValidationError: { status: "invalid" },
  TargetNotAllowed: { status: "forbidden" },
  CommandNotAllowed: { status: "forbidden" },
  CallerNotAllowed: { status: "forbidden" },
  CredentialNotAllowed: { status: "forbidden" },
  CredentialUnavailable: { status: "internal", retryable: true },
  CredentialInvalid: { status: "internal" },
  CommandInProgress: { status: "conflict", retryable: true },
  IdempotencyKeyReused: { status: "conflict" },
  HostQuarantined: { status: "unavailable", retryable: true },
  DeadlineExceeded: { status: "timeout" },
  DnsLookupFailed: { status: "upstream", retryable: true },
  ResolveTimeout: { status: "timeout", retryable: true, timeoutOf: "resolve" },
  ConnectRefused: { status: "upstream", retryable: true },
  ConnectTimeout: { status: "timeout", retryable: true, timeoutOf: "connect" },
  BannerTimeout: { status: "timeout", retryable: true, timeoutOf: "banner" },
  ProtocolError: { status: "upstream" },
  HandshakeTimeout: { status: "timeout", retryable: true, timeoutOf: "handshake" },
  HostKeyUnknown: { status: "upstream" },
  HostKeyMismatch: { status: "upstream" },
  AuthTimeout: { status: "timeout", retryable: true, timeoutOf: "auth" },
  AuthFailed: { status: "upstream" },
  ChannelTimeout: { status: "timeout", retryable: true, timeoutOf: "channel" },
  ChannelRejected: { status: "upstream", retryable: true },
  CommandTimeout: { status: "timeout", timeoutOf: "exec" },
  ConnectionLost: { status: "upstream" },
  OutputIncomplete: { status: "upstream" },
  CommandFailed: { status: "internal" },
  InternalError: { status: "internal" },
} as const satisfies Record<string, ErrorFacts>;

/** Error names (SPEC §6), in the table's order. */
export type ErrorName = keyof typeof ERRORS;
export const ERROR_NAMES = Object.keys(ERRORS) as readonly ErrorName[];

type Facts<N extends ErrorName> = (typeof ERRORS)[N];

/** The `*Timeout` error of each phase that has one (derived from {@link ERRORS}). */
export const PHASE_TIMEOUT_ERROR = Object.fromEntries(
  ERROR_NAMES.flatMap((name) => {
    const facts: ErrorFacts = ERRORS[name];
    return facts.timeoutOf ? [[facts.timeoutOf, name]] : [];
  }),
) as {
  readonly [N in ErrorName as Facts<N> extends { timeoutOf: infer P extends Phase } ? P : never]: N;
};

/** Errors a workflow may retry: the command certainly did not start (derived from {@link ERRORS}). */
export const RETRYABLE_ERRORS = ERROR_NAMES.filter(
  (name) => (ERRORS[name] as ErrorFacts).retryable === true,
) as readonly {
  [N in ErrorName]: Facts<N> extends { retryable: true } ? N : never;
}[ErrorName][];

/**
 * Errors that count against a host's circuit breaker by default (`BSSH_BREAKER_ERRORS`): the
 * host accepted nothing useful (no name, no TCP, no banner, no key exchange) or vanished. A
 * `*Timeout` counts only when its phase's own cap expired (`error.bound: "phase"`),
 * `ConnectionLost` only before the command started. Enough distinct failed requests in a
 * window quarantine the host (docs/fleet.md).
 */
export const BREAKER_ERRORS: readonly ErrorName[] = [
  "DnsLookupFailed",
  "ConnectRefused",
  "ConnectTimeout",
  "BannerTimeout",
  "HandshakeTimeout",
  "ConnectionLost",
] satisfies readonly ErrorName[];

/** Errors that mean "the remote hung before the SSH session was up" — the incident's signature. */
export const HANDSHAKE_HANG_ERRORS = ["BannerTimeout", "HandshakeTimeout"] as const;

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
  Unbounded: "Unbounded",
} as const;
export type MetricName = (typeof METRIC)[keyof typeof METRIC];

/** Dimension names (SPEC §7). Hosts never become dimensions: they go to the audit log. */
export const DIMENSION = {
  Outcome: "Outcome",
  ErrorName: "ErrorName",
  Phase: "Phase",
} as const;
export type DimensionName = (typeof DIMENSION)[keyof typeof DIMENSION];
