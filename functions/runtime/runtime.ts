import type { RunOptions } from "../../lib/types.ts";
import type { AuditLine } from "../audit/audit-log.ts";
import type { HostBreaker } from "../breaker/host-breaker.ts";
import type { HandlerConfig, HandlerSettings } from "../config/config.ts";
import type { CredentialStore, KnownHostsSource } from "../credentials/credential-store.ts";
import type { IdempotencyStore } from "../idempotency/idempotency.ts";
import type { Invocation } from "../invocation/invocation.ts";
import type { MetricsMiddlewareOptions } from "../metrics/middleware.ts";
import { type PolicySource, ssmPolicy, staticPolicy } from "../policy/policy-source.ts";
import type { SpillStore } from "../spill/s3-spill.ts";
import {
  dynamoDbClient,
  raceSignal,
  s3Client,
  secretsManagerClient,
  ssmClient,
} from "./aws-clients.ts";
import { loadEngine, once } from "./lazy.ts";

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
  /** Sees each invocation and its audit line when it ends (demo, tests). */
  observe?: (invocation: Invocation, audit: AuditLine) => void;
  /** Options of the metrics middleware (mode, namespace, observers). */
  metrics?: MetricsMiddlewareOptions;
  /** Records idempotent runs (`idempotencyKey`). @default none: the field is refused */
  idempotency?: IdempotencyStore;
  /** Per-host circuit breaker. @default none */
  breaker?: Pick<HostBreaker, "check" | "record">;
  /**
   * Modules to load while an invocation's first network call is in flight (the deployed
   * runtime's SDK clients and engine, see `lazy.ts`). @default none
   */
  preload?: readonly (() => Promise<unknown>)[];
  /**
   * Where spilled streams go (`settings.spill` says when and how much). @default none: the
   * request field `spill` is refused
   */
  spill?: SpillStore;
}

const NO_KNOWN_HOSTS: KnownHostsSource = { get: async () => undefined };

/**
 * The runtime of a deployed function, from its configuration (`functions/config`): Secrets
 * Manager credentials, known hosts from SSM or Secrets Manager, the policy inline or from SSM.
 * Missing policy configuration is a deploy error (thrown), not "allow everything".
 */
export function awsRuntime(config: HandlerConfig): Runtime {
  const { settings } = config;
  const ttl = config.cacheTtl;
  // One client per container, created on first use: its keep-alive connection is reused by
  // warm invocations, and its SDK is not loaded at init (cold start, see lazy.ts). Every
  // client comes from aws-clients.ts (bounded transport and retries), and every call is sent
  // with the invocation's signal joined with its own cap.
  const secrets = once(() => secretsManagerClient());
  const ssm = once(() => ssmClient());
  const preload: (() => Promise<unknown>)[] = [loadEngine];
  let knownHosts = NO_KNOWN_HOSTS;
  const knownHostsParameter =
    config.knownHosts && "parameter" in config.knownHosts ? config.knownHosts.parameter : undefined;
  const knownHostsSecret =
    config.knownHosts && "secret" in config.knownHosts ? config.knownHosts.secret : undefined;
  if (knownHostsParameter) {
    knownHosts = lazyKnownHosts(async () => {
      const [{ SsmKnownHosts }, client] = await Promise.all([awsKnownHosts(), ssm()]);
      return new SsmKnownHosts({
        client,
        parameterName: knownHostsParameter,
        ttlMs: ttl.knownHostsMs,
      });
    });
    preload.push(ssm);
  } else if (knownHostsSecret) {
    knownHosts = lazyKnownHosts(async () => {
      const [{ SecretKnownHosts }, client] = await Promise.all([awsKnownHosts(), secrets()]);
      return new SecretKnownHosts({ client, secretId: knownHostsSecret, ttlMs: ttl.knownHostsMs });
    });
  }
  const policy: PolicySource =
    "document" in config.policy
      ? staticPolicy(config.policy.document)
      : ssmPolicy(ssm, config.policy.parameter, ttl.policyMs);
  const prefix = config.secretPrefix;
  const credentialStore = once(async () => {
    const [{ SecretsManagerStore }, client] = await Promise.all([secretsManagerStore(), secrets()]);
    return new SecretsManagerStore({ client, prefix, ttlMs: ttl.credentialsMs });
  });
  preload.push(credentialStore);
  const runtime: Runtime = {
    settings,
    credentials: {
      get: async (name, options) =>
        (await raceSignal(credentialStore(), options.signal)).get(name, options),
    },
    knownHosts,
    policy,
    preload,
    metrics: { ...config.metrics },
  };
  if (settings.spill) {
    const bucket = settings.spill.bucket;
    // The engine opens a sink synchronously (in the channel's data handler): the S3 SDK is
    // loaded lazily like the others, and `ready()` is awaited before a spilling session.
    let loaded: SpillStore | undefined;
    const store = once(async () => {
      // A stalled upload holds the spilled stream paused (back-pressure), and the command
      // with it: each S3 call is capped (CALL_CAPS.spillPartMs), a stalled part fails the
      // spill, its multipart upload is aborted, the stream resumes (s3-spill.ts).
      const [{ S3SpillStore }, client] = await Promise.all([spillSdk(), s3Client()]);
      loaded = new S3SpillStore({ client, bucket });
      return loaded;
    });
    preload.push(store);
    runtime.spill = {
      ready: async () => {
        await store();
      },
      open: (requestId, stream, caller) => {
        if (!loaded) throw new Error("the spill store is not loaded (ready() was not awaited)");
        return loaded.open(requestId, stream, caller);
      },
      settle: async (requestId, signal) => loaded?.settle?.(requestId, signal),
    };
  }
  const idempotencyTable = config.idempotency?.table;
  const breakerTable = config.breaker?.table;
  if (idempotencyTable || breakerTable) {
    // Both stores are consulted inside the session's budget: each call is bounded by the
    // invocation's signal and its cap; the client bounds each attempt (aws-clients.ts).
    const dynamo = once(() => dynamoDbClient());
    if (idempotencyTable) {
      const expiresAfterSeconds = config.idempotency!.ttlSeconds;
      const store = once(async () => {
        const [{ DynamoIdempotencyStore }, client] = await Promise.all([
          import("../idempotency/idempotency.ts"),
          dynamo(),
        ]);
        return new DynamoIdempotencyStore({
          tableName: idempotencyTable,
          client,
          expiresAfterSeconds,
        });
      });
      runtime.idempotency = {
        run: async (scope, work) => {
          // Loading the store (a cold start's SDK) counts against the invocation too.
          return (await loaded(store(), scope.bounds?.signal)).run(scope, work);
        },
      };
      preload.push(store);
    }
    if (breakerTable) {
      const { table: _table, ...settings } = config.breaker!;
      const options = { tableName: breakerTable, ...settings };
      const breaker = once(async () => {
        const [{ HostBreaker }, client] = await Promise.all([
          import("../breaker/host-breaker.ts"),
          dynamo(),
        ]);
        return new HostBreaker({ ...options, client });
      });
      runtime.breaker = {
        check: async (host, port, signal) =>
          (await loaded(breaker(), signal)).check(host, port, signal),
        record: async (result, signal, requestKey) =>
          (await loaded(breaker(), signal)).record(result, signal, requestKey),
      };
      preload.push(breaker);
    }
  }
  return runtime;
}

const spillSdk = once(() => import("../spill/s3-spill.ts"));
const awsKnownHosts = once(() => import("../credentials/aws-known-hosts.ts"));
const secretsManagerStore = once(() => import("../credentials/secrets-manager-store.ts"));

function lazyKnownHosts(load: () => Promise<KnownHostsSource>): KnownHostsSource {
  const source = once(load);
  return { get: async (options) => (await raceSignal(source(), options.signal)).get(options) };
}

/** A lazily loaded module or store, waited for no longer than the call's signal. */
function loaded<T>(load: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  return signal ? raceSignal(load, signal) : load;
}
