import { PHASES, type Phase } from "../../lib/names.ts";
import { DEFAULT_SPILL_MAX_BYTES } from "../../lib/session/output-capture.ts";
import type { PhaseCaps } from "../../lib/types.ts";
import type { ExpectedApi } from "../request/callers.ts";

/** Environment variables read by the handlers (metrics has its own: `METRICS_ENV`). */
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
  /** Comma-separated state machine ARNs the task function runs for (empty: any in its account). */
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

function nonNegative(env: NodeJS.ProcessEnv, key: string, fallback: number): number {
  const raw = env[key];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) throw new TypeError(`${key} must be a number >= 0`);
  return value;
}

function phaseCaps(raw: string | undefined): PhaseCaps {
  if (!raw) return {};
  const parsed = JSON.parse(raw) as Record<string, unknown>;
  const caps: PhaseCaps = {};
  for (const [phase, value] of Object.entries(parsed)) {
    if (!(PHASES as readonly string[]).includes(phase) || typeof value !== "number" || value < 0) {
      throw new TypeError(`${ENV.phaseCaps}: invalid cap ${JSON.stringify(phase)}`);
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
    throw new TypeError(`set all of ${ENV.apiId}, ${ENV.apiStage} and ${ENV.apiAccount}, or none`);
  }
  return { apiId, stage, accountId };
}

function taskErrorOutput(raw: string | undefined): boolean {
  if (raw === undefined || raw === "" || raw === "omit") return false;
  if (raw === "include") return true;
  throw new TypeError(`${ENV.taskErrorOutput} must be "include" or "omit"`);
}

function spillSettings(env: NodeJS.ProcessEnv): SpillSettings | undefined {
  const bucket = env[ENV.spillBucket];
  const mode = env[ENV.spillMode] || "request";
  if (mode !== "always" && mode !== "request") {
    throw new TypeError(`${ENV.spillMode} must be "always" or "request"`);
  }
  const maxBytes = nonNegative(env, ENV.spillMaxBytes, DEFAULT_SPILL_MAX_BYTES);
  if (!bucket) {
    if (env[ENV.spillMode] || env[ENV.spillMaxBytes]) {
      throw new TypeError(`${ENV.spillMode} and ${ENV.spillMaxBytes} need ${ENV.spillBucket}`);
    }
    return undefined;
  }
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) {
    throw new TypeError(`${ENV.spillMaxBytes} must be an integer >= 1`);
  }
  return { bucket, mode, maxBytes };
}

/** Settings from the environment; throws `TypeError` for a malformed value (a deploy bug). */
export function settingsFromEnv(env: NodeJS.ProcessEnv = process.env): HandlerSettings {
  const audit = env[ENV.auditCommand] ?? "plain";
  if (audit !== "plain" && audit !== "hash") {
    throw new TypeError(`${ENV.auditCommand} must be "plain" or "hash"`);
  }
  return {
    reserveMs: nonNegative(env, ENV.reserveMs, DEFAULT_SETTINGS.reserveMs),
    edgeTimeoutMs: nonNegative(env, ENV.edgeTimeoutMs, DEFAULT_SETTINGS.edgeTimeoutMs),
    minBudgetMs: nonNegative(env, ENV.minBudgetMs, DEFAULT_SETTINGS.minBudgetMs),
    credentialsTimeoutMs: nonNegative(
      env,
      ENV.credentialsTimeoutMs,
      DEFAULT_SETTINGS.credentialsTimeoutMs,
    ),
    auditCommand: audit,
    phaseCaps: phaseCaps(env[ENV.phaseCaps]),
    remoteBound: env[ENV.remoteBound] !== "false",
    api: expectedApi(env),
    stateMachineArns: (env[ENV.stateMachineArns] ?? "")
      .split(",")
      .map((arn) => arn.trim())
      .filter((arn) => arn !== ""),
    taskErrorOutput: taskErrorOutput(env[ENV.taskErrorOutput]),
    spill: spillSettings(env),
  };
}
