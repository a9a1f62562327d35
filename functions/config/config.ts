import { PHASES, type Phase } from "../../lib/names.ts";
import { DEFAULT_SPILL_MAX_BYTES } from "../../lib/session/output-capture.ts";
import type { PhaseCaps } from "../../lib/types.ts";
import type { MetricsMode } from "../metrics/publisher.ts";
import type { PolicyDocument } from "../policy/policy.ts";
import type { ExpectedApi } from "../request/callers.ts";

/**
 * The one configuration module of the deployed handlers: every `BSSH_*` variable they read is
 * named here (the CDK app imports these names to set them) and parsed here, once per
 * container ({@link containerConfig}). A malformed value is a {@link ConfigError} naming the
 * variable, what it holds and the fix. The one other reader is the metrics publisher, which
 * takes `BSSH_CLOUDWATCH_ENDPOINT` (named here; a test and local-mode override of the
 * CloudWatch endpoint) when it creates its client.
 */

/** Environment variables read by the handlers. */
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
  /** Per-container cache lifetime of secrets, known hosts and policy. */
  cacheTtlMs: "BSSH_CACHE_TTL_MS",
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

/** Settings every invocation needs before any I/O. */
export interface HandlerSettings {
  /** @default 1500 */
  reserveMs: number;
  /** @default 29000 */
  edgeTimeoutMs: number;
  /** @default 250 */
  minBudgetMs: number;
  /** @default 3000 */
  credentialsTimeoutMs: number;
  /** @default "plain" */
  auditCommand: "plain" | "hash";
  /** @default {} (the engine's defaults) */
  phaseCaps: PhaseCaps;
  /** @default true */
  remoteBound: boolean;
  /** The deployed API; unset refuses every API event (`CallerNotAllowed`). @default undefined */
  api: ExpectedApi | undefined;
  /** State machines the task function serves. @default [] (every task is refused) */
  stateMachineArns: string[];
  /** Step Functions error messages carry stdout/stderr. @default false */
  taskErrorOutput: boolean;
  /** Full-output spilling; undefined without a bucket. @default undefined */
  spill: SpillSettings | undefined;
}

/** Where and when a stream that outgrows `maxOutputBytes` is uploaded whole. */
export interface SpillSettings {
  bucket: string;
  /**
   * `always`: every stream over `maxOutputBytes` is spilled. `request`: only when the request
   * sets `spill: true` and its rule sets `allowSpill`. @default "request"
   */
  mode: "always" | "request";
  /** @default 1073741824 (1 GiB) */
  maxBytes: number;
}

export const DEFAULT_SETTINGS: HandlerSettings = {
  reserveMs: 1_500,
  edgeTimeoutMs: 29_000,
  minBudgetMs: 250,
  credentialsTimeoutMs: 3_000,
  auditCommand: "plain",
  phaseCaps: {},
  remoteBound: true,
  api: undefined,
  stateMachineArns: [],
  taskErrorOutput: false,
  spill: undefined,
};

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

/** A `BSSH_*` variable holds something the handlers cannot use: a deploy bug, fixed there. */
export class ConfigError extends TypeError {
  override readonly name = "ConfigError";
}

const FIX =
  "fix the function's environment (the CDK app sets BSSH_* from cdk/config.ts), or unset it for the default";

/** The error for `key`: what it holds, what it must be, and the fix. */
function invalid(
  env: NodeJS.ProcessEnv,
  key: string,
  expected: string,
  fix: string = FIX,
): ConfigError {
  const raw = env[key];
  const shown =
    raw === undefined ? "unset" : JSON.stringify(raw.length > 80 ? `${raw.slice(0, 80)}…` : raw);
  return new ConfigError(`${key} is ${shown}: it must be ${expected}; ${fix}`);
}

function nonNegative(env: NodeJS.ProcessEnv, key: string, fallback: number): number {
  const raw = env[key];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) throw invalid(env, key, "a number >= 0");
  return value;
}

function positiveInteger(env: NodeJS.ProcessEnv, key: string, fallback: number): number {
  const raw = env[key];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1) throw invalid(env, key, "an integer >= 1");
  return value;
}

/**
 * `BSSH_METRICS_MODE` and `BSSH_METRICS_NAMESPACE`, when set (an unknown mode is a
 * `ConfigError`); unset fields take the metrics adapter's defaults (`emf`, `BoundedSsh`).
 */
export function metricsConfigFromEnv(env: NodeJS.ProcessEnv = process.env): {
  mode?: MetricsMode;
  namespace?: string;
} {
  const metrics: { mode?: MetricsMode; namespace?: string } = {};
  if (env[ENV.metricsMode]) {
    metrics.mode = oneOf(env, ENV.metricsMode, ["api", "emf", "both"] as const, "emf");
  }
  if (env[ENV.metricsNamespace]) metrics.namespace = env[ENV.metricsNamespace];
  return metrics;
}

function oneOf<T extends string>(
  env: NodeJS.ProcessEnv,
  key: string,
  values: readonly T[],
  fallback: T,
): T {
  const raw = env[key];
  if (raw === undefined || raw === "") return fallback;
  if (!(values as readonly string[]).includes(raw)) {
    throw invalid(env, key, values.map((v) => JSON.stringify(v)).join(" or "));
  }
  return raw as T;
}

function json(env: NodeJS.ProcessEnv, key: string, expected: string): unknown {
  try {
    return JSON.parse(env[key]!);
  } catch {
    throw invalid(env, key, expected);
  }
}

function phaseCaps(env: NodeJS.ProcessEnv): PhaseCaps {
  if (!env[ENV.phaseCaps]) return {};
  const expected = `a JSON object of per-phase caps in ms, e.g. {"banner":3000} (phases: ${PHASES.join(", ")})`;
  const parsed = json(env, ENV.phaseCaps, expected);
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw invalid(env, ENV.phaseCaps, expected);
  }
  const caps: PhaseCaps = {};
  for (const [phase, value] of Object.entries(parsed)) {
    if (!(PHASES as readonly string[]).includes(phase) || typeof value !== "number" || value < 0) {
      throw invalid(env, ENV.phaseCaps, expected);
    }
    caps[phase as Phase] = value;
  }
  return caps;
}

function expectedApi(env: NodeJS.ProcessEnv): ExpectedApi | undefined {
  const apiId = env[ENV.apiId];
  const stage = env[ENV.apiStage];
  const accountId = env[ENV.apiAccount];
  if (!apiId && !stage && !accountId) return undefined;
  if (!apiId || !stage || !accountId) {
    throw new ConfigError(
      `set all of ${ENV.apiId}, ${ENV.apiStage} and ${ENV.apiAccount}, or none (the API function needs the three to verify its caller); ${FIX}`,
    );
  }
  return { apiId, stage, accountId };
}

function spillSettings(env: NodeJS.ProcessEnv): SpillSettings | undefined {
  const bucket = env[ENV.spillBucket];
  const mode = oneOf(env, ENV.spillMode, ["always", "request"] as const, "request");
  const maxBytes = nonNegative(env, ENV.spillMaxBytes, DEFAULT_SPILL_MAX_BYTES);
  if (!bucket) {
    if (env[ENV.spillMode] || env[ENV.spillMaxBytes]) {
      throw new ConfigError(
        `${ENV.spillMode} and ${ENV.spillMaxBytes} need ${ENV.spillBucket} (the bucket spilled output goes to); ${FIX}`,
      );
    }
    return undefined;
  }
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) {
    throw invalid(env, ENV.spillMaxBytes, "an integer >= 1 (bytes)");
  }
  return { bucket, mode, maxBytes };
}

/** Settings from the environment; throws {@link ConfigError} for a malformed value. */
export function settingsFromEnv(env: NodeJS.ProcessEnv = process.env): HandlerSettings {
  return {
    reserveMs: nonNegative(env, ENV.reserveMs, DEFAULT_SETTINGS.reserveMs),
    edgeTimeoutMs: nonNegative(env, ENV.edgeTimeoutMs, DEFAULT_SETTINGS.edgeTimeoutMs),
    minBudgetMs: nonNegative(env, ENV.minBudgetMs, DEFAULT_SETTINGS.minBudgetMs),
    credentialsTimeoutMs: nonNegative(
      env,
      ENV.credentialsTimeoutMs,
      DEFAULT_SETTINGS.credentialsTimeoutMs,
    ),
    auditCommand: oneOf(env, ENV.auditCommand, ["plain", "hash"] as const, "plain"),
    phaseCaps: phaseCaps(env),
    remoteBound: oneOf(env, ENV.remoteBound, ["true", "false"] as const, "true") === "true",
    api: expectedApi(env),
    stateMachineArns: (env[ENV.stateMachineArns] ?? "")
      .split(",")
      .map((arn) => arn.trim())
      .filter((arn) => arn !== ""),
    taskErrorOutput:
      oneOf(env, ENV.taskErrorOutput, ["include", "omit"] as const, "omit") === "include",
    spill: spillSettings(env),
  };
}

/** Where the policy document comes from. */
export type PolicyConfig = { document: PolicyDocument } | { parameter: string };

/** Where the operator's known_hosts text comes from (none: only request pins, if allowed). */
export type KnownHostsConfig = { parameter: string } | { secret: string } | undefined;

/** Everything the deployed handlers read from the environment. */
export interface HandlerConfig {
  settings: HandlerSettings;
  policy: PolicyConfig;
  knownHosts: KnownHostsConfig;
  /** @default "bounded-ssh/" */
  secretPrefix: string;
  /** Per-container cache lifetime of secrets, known hosts and policy. @default 300000 */
  cacheTtlMs: number;
  idempotency: { table: string; ttlSeconds: number } | undefined;
  breaker:
    | { table: string; threshold: number; windowSeconds: number; quarantineSeconds: number }
    | undefined;
  /** `mode` and `namespace` are unset when the variable is (local mode picks its own). */
  metrics: { mode?: MetricsMode; namespace?: string };
}

/** The whole configuration from the environment; throws {@link ConfigError}. */
export function configFromEnv(env: NodeJS.ProcessEnv = process.env): HandlerConfig {
  if (env[ENV.config]) {
    // Local mode builds its handlers over its own runtime (local/): the deployed
    // handlers never load it, so a config file here is a mistake, not a mode.
    throw new ConfigError(
      `${ENV.config} is set: it names a local-mode config file, which the deployed handlers never read; run local mode with npm start / npm run invoke, or unset it`,
    );
  }
  let policy: PolicyConfig;
  if (env[ENV.policy]) {
    policy = {
      document: json(env, ENV.policy, "the policy document as JSON") as PolicyDocument,
    };
  } else if (env[ENV.policyParameter]) policy = { parameter: env[ENV.policyParameter]! };
  else {
    throw new ConfigError(
      `set ${ENV.policy} (the policy as JSON) or ${ENV.policyParameter} (an SSM parameter holding it): no policy, no access`,
    );
  }
  let knownHosts: KnownHostsConfig;
  if (env[ENV.knownHostsParameter]) knownHosts = { parameter: env[ENV.knownHostsParameter]! };
  else if (env[ENV.knownHostsSecret]) knownHosts = { secret: env[ENV.knownHostsSecret]! };
  const idempotencyTable = env[ENV.idempotencyTable];
  const breakerTable = env[ENV.breakerTable];
  const metrics = metricsConfigFromEnv(env);
  return {
    settings: settingsFromEnv(env),
    policy,
    knownHosts,
    secretPrefix: env[ENV.secretPrefix] || "bounded-ssh/",
    cacheTtlMs: nonNegative(env, ENV.cacheTtlMs, 300_000),
    idempotency: idempotencyTable
      ? {
          table: idempotencyTable,
          ttlSeconds: positiveInteger(env, ENV.idempotencyTtlSeconds, 86_400),
        }
      : undefined,
    breaker: breakerTable
      ? {
          table: breakerTable,
          threshold: positiveInteger(env, ENV.breakerThreshold, 3),
          windowSeconds: positiveInteger(env, ENV.breakerWindowSeconds, 600),
          quarantineSeconds: positiveInteger(env, ENV.breakerQuarantineSeconds, 900),
        }
      : undefined,
    metrics,
  };
}

let parsed: HandlerConfig | undefined;

/**
 * The container's configuration: parsed from `process.env` on first use, then kept (a
 * function's environment does not change while its container lives). A malformed value
 * throws on every call, so each invocation reports it.
 */
export function containerConfig(): HandlerConfig {
  parsed ??= configFromEnv(process.env);
  return parsed;
}

/** Configuration of the alarm-enrichment function. */
export interface EnrichmentConfig {
  readonly stage: string;
  readonly enrichedTopicArn: string;
  readonly functionLogGroups: readonly string[];
  readonly workflowLogGroups: readonly string[];
  readonly runbookBaseUrl: string;
  readonly dashboardUrl: string;
  /** Kept back from the Lambda time for the publish. @default 3000 */
  readonly reserveMs?: number;
  /** @default 1000 */
  readonly pollIntervalMs?: number;
  /** Hosts listed in the message. @default 20 */
  readonly maxHosts?: number;
}

const ENRICHMENT_FIX =
  "the CDK app sets it (cdk/monitoring/enrichment.ts): redeploy the monitoring stack";

/** The alarm-enrichment function's configuration; throws {@link ConfigError}. */
export function enrichmentConfigFromEnv(env: NodeJS.ProcessEnv = process.env): EnrichmentConfig {
  const get = (key: keyof typeof ENRICHMENT_ENV) => {
    const value = env[ENRICHMENT_ENV[key]];
    if (value === undefined) throw invalid(env, ENRICHMENT_ENV[key], "set", ENRICHMENT_FIX);
    return value;
  };
  const logGroups = (key: "functionLogGroups" | "workflowLogGroups"): string[] => {
    const expected = "a JSON array of log group names";
    get(key);
    let value: unknown;
    try {
      value = JSON.parse(env[ENRICHMENT_ENV[key]]!);
    } catch {
      throw invalid(env, ENRICHMENT_ENV[key], expected, ENRICHMENT_FIX);
    }
    if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) {
      throw invalid(env, ENRICHMENT_ENV[key], expected, ENRICHMENT_FIX);
    }
    return value as string[];
  };
  return {
    stage: get("stage"),
    enrichedTopicArn: get("enrichedTopicArn"),
    functionLogGroups: logGroups("functionLogGroups"),
    workflowLogGroups: logGroups("workflowLogGroups"),
    runbookBaseUrl: get("runbookBaseUrl"),
    dashboardUrl: get("dashboardUrl"),
  };
}
