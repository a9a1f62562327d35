import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { S3Client } from "@aws-sdk/client-s3";
import { SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { GetParameterCommand, SSMClient } from "@aws-sdk/client-ssm";
import type { RunOptions } from "../../lib/types.ts";
import { HostBreaker } from "../breaker/host-breaker.ts";
import { SecretKnownHosts, SsmKnownHosts } from "../credentials/aws-known-hosts.ts";
import {
  type CredentialStore,
  type KnownHostsSource,
  TtlCache,
} from "../credentials/credential-store.ts";
import { SecretsManagerStore } from "../credentials/secrets-manager-store.ts";
import { DynamoIdempotencyStore, type IdempotencyStore } from "../idempotency/idempotency.ts";
import type { MetricsMiddlewareOptions } from "../metrics/middleware.ts";
import type { AuditLine } from "../middleware/audit-log.ts";
import { Policy, type PolicyDocument } from "../policy/policy.ts";
import { S3SpillStore, type SpillStore } from "../spill/s3-spill.ts";
import type { InvocationRecord } from "./invocation.ts";
import { ENV, type HandlerSettings, settingsFromEnv } from "./settings.ts";

/** Where the policy comes from; loaded within the invocation's deadline. */
export interface PolicySource {
  get(options: { signal: AbortSignal }): Promise<Policy>;
}

/** Everything a handler needs besides the event: one per container. */
export interface Runtime {
  settings: HandlerSettings;
  credentials: CredentialStore;
  knownHosts: KnownHostsSource;
  policy: PolicySource;
  /** Caller identity of local API requests with none in the event (local mode only). */
  localCaller?: string;
  /** DNS override handed to the engine (tests: a hosts-style resolver, never real DNS). */
  lookup?: RunOptions["lookup"];
  /** Writes the audit line. @default one line to stdout */
  writeAuditLine?: (line: string) => void;
  /** Sees each invocation's record and audit line when it ends (demo, tests). */
  observe?: (record: InvocationRecord, audit: AuditLine) => void;
  /** Options of the metrics middleware (mode, namespace, observers). */
  metrics?: MetricsMiddlewareOptions;
  /** Records idempotent runs (`idempotencyKey`). @default none: the field is refused */
  idempotency?: IdempotencyStore;
  /** Per-host circuit breaker. @default none */
  breaker?: HostBreaker;
  /**
   * Where spilled streams go (`settings.spill` says when and how much). @default none: the
   * request field `spill` is refused
   */
  spill?: SpillStore;
}

/** A policy that never changes (inline JSON, local config). */
export function staticPolicy(document: PolicyDocument): PolicySource {
  const policy = new Policy(document);
  return { get: async () => policy };
}

/** The policy document in an SSM parameter, re-read after the cache TTL. */
export function ssmPolicy(client: SSMClient, name: string, ttlMs: number): PolicySource {
  const cache = new TtlCache<Policy>(ttlMs);
  return {
    get: ({ signal }) =>
      cache.get("", async () => {
        const out = await client.send(
          new GetParameterCommand({ Name: name, WithDecryption: true }),
          {
            abortSignal: signal,
          },
        );
        return new Policy(JSON.parse(out.Parameter?.Value ?? "null") as PolicyDocument);
      }),
  };
}

const NO_KNOWN_HOSTS: KnownHostsSource = { get: async () => undefined };

/**
 * The runtime of a deployed function, from the environment: Secrets Manager credentials,
 * known hosts from SSM or Secrets Manager, the policy inline or from SSM. Missing policy
 * configuration is a deploy error (thrown), not "allow everything".
 */
export function awsRuntime(env: NodeJS.ProcessEnv = process.env): Runtime {
  const settings = settingsFromEnv(env);
  const ttlMs = Number(env[ENV.cacheTtlMs] ?? 300_000);
  // One client per container: its keep-alive connection is reused by warm invocations.
  const secrets = new SecretsManagerClient({});
  let knownHosts = NO_KNOWN_HOSTS;
  let ssm: SSMClient | undefined;
  if (env[ENV.knownHostsParameter]) {
    ssm = new SSMClient({});
    knownHosts = new SsmKnownHosts({
      client: ssm,
      parameterName: env[ENV.knownHostsParameter]!,
      ttlMs,
    });
  } else if (env[ENV.knownHostsSecret]) {
    knownHosts = new SecretKnownHosts({
      client: secrets,
      secretId: env[ENV.knownHostsSecret]!,
      ttlMs,
    });
  }
  let policy: PolicySource;
  if (env[ENV.policy]) policy = staticPolicy(JSON.parse(env[ENV.policy]!) as PolicyDocument);
  else if (env[ENV.policyParameter]) {
    policy = ssmPolicy(ssm ?? new SSMClient({}), env[ENV.policyParameter]!, ttlMs);
  } else throw new TypeError(`set ${ENV.policy} or ${ENV.policyParameter}: no policy, no access`);
  const runtime: Runtime = {
    settings,
    credentials: new SecretsManagerStore({
      client: secrets,
      prefix: env[ENV.secretPrefix] ?? "bounded-ssh/",
      ttlMs,
    }),
    knownHosts,
    policy,
  };
  if (settings.spill) {
    // A stalled upload holds the spilled stream paused (back-pressure), and the command with
    // it: an idle connection fails the part instead, the spill is dropped, the stream resumes.
    const s3 = new S3Client({
      requestHandler: { connectionTimeout: 2_000, requestTimeout: 10_000 },
    });
    runtime.spill = new S3SpillStore({ client: s3, bucket: settings.spill.bucket });
  }
  const idempotencyTable = env[ENV.idempotencyTable];
  const breakerTable = env[ENV.breakerTable];
  if (idempotencyTable || breakerTable) {
    // Short timeouts: both stores are consulted inside the session's budget.
    const dynamo = new DynamoDBClient({
      maxAttempts: 2,
      requestHandler: { connectionTimeout: 1_000, requestTimeout: 2_000 },
    });
    if (idempotencyTable) {
      runtime.idempotency = new DynamoIdempotencyStore({
        tableName: idempotencyTable,
        client: dynamo,
        expiresAfterSeconds: positiveEnv(env, ENV.idempotencyTtlSeconds, 86_400),
      });
    }
    if (breakerTable) {
      runtime.breaker = new HostBreaker({
        tableName: breakerTable,
        client: dynamo,
        threshold: positiveEnv(env, ENV.breakerThreshold, 3),
        windowSeconds: positiveEnv(env, ENV.breakerWindowSeconds, 600),
        quarantineSeconds: positiveEnv(env, ENV.breakerQuarantineSeconds, 900),
      });
    }
  }
  return runtime;
}

function positiveEnv(env: NodeJS.ProcessEnv, key: string, fallback: number): number {
  const raw = env[key];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1) throw new TypeError(`${key} must be an integer >= 1`);
  return value;
}
