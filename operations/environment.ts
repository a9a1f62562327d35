/**
 * Every environment variable that passes between deploy time and run time, named once: the
 * CDK app sets them (`cdk/`), the handlers parse them (`functions/config/config.ts`), local
 * mode reads its own (`local/`). Plain data: this folder imports neither side, so a rename is
 * one edit here and `tsc` finds every use.
 */

/** Environment variables read by the deployed handlers (parsed in `functions/config/config.ts`). */
export const ENV = {
  /** Kept back from the Lambda's remaining time for teardown, metrics and the response. */
  reserveMs: "BSSH_RESERVE_MS",
  /** API Gateway's integration timeout, counted from the request's own timestamp. */
  edgeTimeoutMs: "BSSH_EDGE_TIMEOUT_MS",
  /** Below this budget an invocation answers `DeadlineExceeded` at once. */
  minBudgetMs: "BSSH_MIN_BUDGET_MS",
  /** Longest a credential / known hosts / policy read may take. */
  credentialsTimeoutMs: "BSSH_CREDENTIALS_TIMEOUT_MS",
  /** `plain` (default) or `hash`: how the audit line records the command. */
  auditCommand: "BSSH_AUDIT_COMMAND",
  /** JSON object of per-phase caps, e.g. `{"banner":3000}`. */
  phaseCaps: "BSSH_PHASE_CAPS",
  /** `false` disables the remote `timeout -k` wrapper (targets without coreutils). */
  remoteBound: "BSSH_REMOTE_BOUND",
  /** The API the API function serves: every event's requestContext must name it. */
  apiId: "BSSH_API_ID",
  apiStage: "BSSH_API_STAGE",
  apiAccount: "BSSH_API_ACCOUNT",
  /** Comma-separated state machine ARNs the task function runs for (empty or unset: none; every task is refused). */
  stateMachineArns: "BSSH_STATE_MACHINE_ARNS",
  /** `include` puts stdout/stderr in Step Functions error messages (default: counts and hashes). */
  taskErrorOutput: "BSSH_TASK_ERROR_OUTPUT",
  /** Secrets Manager: secret id = prefix + credential name. */
  secretPrefix: "BSSH_SECRET_PREFIX",
  /** Per-container cache lifetime of secrets, known hosts and policy (each below overrides it). */
  cacheTtlMs: "BSSH_CACHE_TTL_MS",
  /** Cache lifetime of the policy: a changed rule takes effect within it. */
  policyCacheTtlMs: "BSSH_POLICY_CACHE_TTL_MS",
  /** Cache lifetime of known_hosts: a new `@revoked` line takes effect within it. */
  knownHostsCacheTtlMs: "BSSH_KNOWN_HOSTS_CACHE_TTL_MS",
  /** Cache lifetime of a credential: a rotated or deleted secret stops being used within it. */
  credentialsCacheTtlMs: "BSSH_CREDENTIALS_CACHE_TTL_MS",
  /** known_hosts text: an SSM parameter name, or a Secrets Manager secret id. */
  knownHostsParameter: "BSSH_KNOWN_HOSTS_PARAMETER",
  knownHostsSecret: "BSSH_KNOWN_HOSTS_SECRET",
  /** The policy document: inline JSON, or an SSM parameter name holding it. */
  policy: "BSSH_POLICY",
  policyParameter: "BSSH_POLICY_PARAMETER",
  /** DynamoDB table of idempotent runs (request `idempotencyKey`); unset refuses the field. */
  idempotencyTable: "BSSH_IDEMPOTENCY_TABLE",
  /** Lifetime of an idempotency record, seconds (default 86400). */
  idempotencyTtlSeconds: "BSSH_IDEMPOTENCY_TTL_S",
  /** DynamoDB table of the per-host circuit breaker; unset disables it. */
  breakerTable: "BSSH_BREAKER_TABLE",
  /** Breaker: failures within the window that quarantine a host (default 3). */
  breakerThreshold: "BSSH_BREAKER_THRESHOLD",
  /** Breaker: the window, seconds (default 600). */
  breakerWindowSeconds: "BSSH_BREAKER_WINDOW_S",
  /** Breaker: how long a host stays quarantined, seconds (default 900). */
  breakerQuarantineSeconds: "BSSH_BREAKER_TTL_S",
  /** Breaker: longest a half-open probe holds a host, seconds (default 120). */
  breakerProbeSeconds: "BSSH_BREAKER_PROBE_S",
  /** Breaker: comma-separated error names that count against a host (default BREAKER_ERRORS). */
  breakerErrors: "BSSH_BREAKER_ERRORS",
  /** S3 bucket for full output (`output.stdoutObject`); unset refuses request `spill`. */
  spillBucket: "BSSH_SPILL_BUCKET",
  /** `request` (default: spill when the request says `spill: true`) or `always`. */
  spillMode: "BSSH_SPILL_MODE",
  /** Largest stream spilled, bytes (default 1 GiB); a longer one's upload is aborted. */
  spillMaxBytes: "BSSH_SPILL_MAX_BYTES",
  /** Local mode: path of the JSON config file (credentials, known hosts, policy, caller). */
  config: "BSSH_CONFIG",
  /** Where metric datums go: `emf` (default), `api` or `both` (docs/metrics.md). */
  metricsMode: "BSSH_METRICS_MODE",
  /** CloudWatch namespace of the metrics (default `BoundedSsh`). */
  metricsNamespace: "BSSH_METRICS_NAMESPACE",
  /** CloudWatch endpoint override (tests, benchmarks). */
  cloudWatchEndpoint: "BSSH_CLOUDWATCH_ENDPOINT",
} as const;

/** Where metric datums go: the API (EMF only as fallback), EMF only, or both every time. */
export const METRICS_MODES = ["api", "emf", "both"] as const;

/** A value of `BSSH_METRICS_MODE` (docs/metrics.md, "Choosing the mode"). */
export type MetricsMode = (typeof METRICS_MODES)[number];

/**
 * The default mode: EMF. Cheaper per invocation, ~0.1 ms inside the deadline and nothing in
 * flight at a freeze; the price is metrics that arrive with log ingestion (docs/metrics.md,
 * "Choosing the mode"). The CDK app sets it explicitly; the handlers fall back to it.
 */
export const DEFAULT_METRICS_MODE: MetricsMode = "emf";

/**
 * Variables of local mode's commands only (`npm start`, `invoke`, `demo`): named here with the
 * others, parsed by local mode itself (its usage errors), never read by a deployed handler.
 */
export const LOCAL_ENV = {
  /** Port of `npm start` (127.0.0.1). @default 8787 */
  port: "BSSH_PORT",
  /** `2.0` makes `npm start` build HTTP API (v2) events. @default "1.0" */
  payloadVersion: "BSSH_PAYLOAD_VERSION",
  /** Where `npm start` writes its per-run token. @default ".tmp/local-api-token" */
  tokenFile: "BSSH_TOKEN_FILE",
  /** The Lambda-like context's timeout. @default the deployed function's */
  functionTimeoutMs: "BSSH_FUNCTION_TIMEOUT_MS",
  /** `1`: the local commands print stack traces of unexpected errors. */
  debug: "BSSH_DEBUG",
} as const;

/** Environment of the alarm-enrichment function (set by `cdk/monitoring/enrichment.ts`). */
export const ENRICHMENT_ENV = {
  stage: "BSSH_STAGE",
  enrichedTopicArn: "BSSH_ENRICHED_TOPIC_ARN",
  functionLogGroups: "BSSH_FUNCTION_LOG_GROUPS",
  workflowLogGroups: "BSSH_WORKFLOW_LOG_GROUPS",
  runbookBaseUrl: "BSSH_RUNBOOK_BASE_URL",
  dashboardUrl: "BSSH_DASHBOARD_URL",
} as const;
