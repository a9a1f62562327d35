import {
  BREAKER_ERRORS,
  ERROR_NAMES,
  type ErrorName,
  PHASES,
  type Phase,
} from "../../lib/names.ts";
import { DEFAULT_SPILL_MAX_BYTES } from "../../lib/session/output-capture.ts";
import type { PhaseCaps } from "../../lib/types.ts";
import {
  ENRICHMENT_ENV,
  ENV,
  METRICS_MODES,
  type MetricsMode,
} from "../../operations/environment.ts";
import { DEFAULT_BREAKER, DEFAULT_IDEMPOTENCY_TTL_SECONDS } from "../../operations/fleet-state.ts";
import { DEFAULT_CACHE_TTL_MS, MAX_CACHE_TTL_MS } from "../../operations/timeouts.ts";

export { DEFAULT_CACHE_TTL_MS, MAX_CACHE_TTL_MS };

import type { PolicyDocument } from "../policy/policy.ts";
import type { ExpectedApi } from "../request/callers.ts";

/**
 * The one configuration module of the deployed handlers: every `BSSH_*` variable they read is
 * parsed here, once per container ({@link containerConfig}). The names live in
 * `operations/environment.ts`, which the CDK app imports to set them (neither side imports the
 * other). A malformed value is a {@link ConfigError} naming the variable, what it holds and the
 * fix. The one other reader is the metrics publisher, which takes `BSSH_CLOUDWATCH_ENDPOINT` (a
 * test and local-mode override of the CloudWatch endpoint) when it creates its client.
 */

/**
 * Environment variables read by the handlers, defined with everything else deploy time and run
 * time share in `operations/` (re-exported here: the handlers' one configuration module).
 */
export { ENV };

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

/** `BSSH_BREAKER_ERRORS`: SPEC §6 names, comma-separated; unset: `BREAKER_ERRORS`. */
function breakerErrors(env: NodeJS.ProcessEnv): readonly ErrorName[] {
  const raw = env[ENV.breakerErrors];
  if (raw === undefined || raw.trim() === "") return BREAKER_ERRORS;
  const names = raw.split(",").map((n) => n.trim());
  const unknown = names.filter((n) => !(ERROR_NAMES as readonly string[]).includes(n));
  if (unknown.length > 0 || names.includes("")) {
    throw new ConfigError(
      `${ENV.breakerErrors} names ${unknown.map((n) => JSON.stringify(n)).join(", ") || "an empty entry"}, not a SPEC §6 error name; expected comma-separated names such as ${BREAKER_ERRORS.join(",")}`,
    );
  }
  return names as ErrorName[];
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
    metrics.mode = oneOf(env, ENV.metricsMode, METRICS_MODES, "emf");
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

/** Cache lifetimes of the operator's stores, ms (0: read on every invocation). */
export interface CacheTtls {
  policyMs: number;
  knownHostsMs: number;
  credentialsMs: number;
}

function cacheTtl(env: NodeJS.ProcessEnv, key: string, fallback: number): number {
  const value = nonNegative(env, key, fallback);
  if (value > MAX_CACHE_TTL_MS) {
    throw invalid(
      env,
      key,
      `at most ${MAX_CACHE_TTL_MS} (one hour)`,
      "a revocation (a new @revoked line, a removed rule, a deleted credential) reaches a warm container only when its cache expires; use 0 to read on every invocation",
    );
  }
  return value;
}

/** The cache lifetimes from the environment (see {@link HandlerConfig.cacheTtl}). */
export function cacheTtlsFromEnv(env: NodeJS.ProcessEnv): CacheTtls {
  const base = cacheTtl(env, ENV.cacheTtlMs, DEFAULT_CACHE_TTL_MS);
  return {
    policyMs: cacheTtl(env, ENV.policyCacheTtlMs, base),
    knownHostsMs: cacheTtl(env, ENV.knownHostsCacheTtlMs, base),
    credentialsMs: cacheTtl(env, ENV.credentialsCacheTtlMs, base),
  };
}

/** Everything the deployed handlers read from the environment. */
export interface HandlerConfig {
  settings: HandlerSettings;
  policy: PolicyConfig;
  knownHosts: KnownHostsConfig;
  /** @default "bounded-ssh/" */
  secretPrefix: string;
  /**
   * Per-container cache lifetimes, ms: how long a change to the policy, known_hosts (a new
   * `@revoked` line) or a credential can take to reach a warm container. Each is its own
   * variable, else `BSSH_CACHE_TTL_MS`, else 300000; at most {@link MAX_CACHE_TTL_MS}.
   */
  cacheTtl: CacheTtls;
  idempotency: { table: string; ttlSeconds: number } | undefined;
  breaker:
    | {
        table: string;
        threshold: number;
        windowSeconds: number;
        quarantineSeconds: number;
        probeSeconds: number;
        /** Error names that count against a host. */
        errors: readonly ErrorName[];
      }
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
    cacheTtl: cacheTtlsFromEnv(env),
    idempotency: idempotencyTable
      ? {
          table: idempotencyTable,
          ttlSeconds: positiveInteger(
            env,
            ENV.idempotencyTtlSeconds,
            DEFAULT_IDEMPOTENCY_TTL_SECONDS,
          ),
        }
      : undefined,
    breaker: breakerTable
      ? {
          table: breakerTable,
          threshold: positiveInteger(env, ENV.breakerThreshold, DEFAULT_BREAKER.threshold),
          windowSeconds: positiveInteger(
            env,
            ENV.breakerWindowSeconds,
            DEFAULT_BREAKER.windowSeconds,
          ),
          quarantineSeconds: positiveInteger(
            env,
            ENV.breakerQuarantineSeconds,
            DEFAULT_BREAKER.quarantineSeconds,
          ),
          probeSeconds: positiveInteger(env, ENV.breakerProbeSeconds, DEFAULT_BREAKER.probeSeconds),
          errors: breakerErrors(env),
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
