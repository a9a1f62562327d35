import { createHash } from "node:crypto";
import {
  atHop,
  CommandNotAllowed,
  CredentialNotAllowed,
  CredentialUnavailable,
  DeadlineExceeded,
  type EngineError,
  errorFromJSON,
  HostQuarantined,
  InternalError,
  TargetNotAllowed,
  ValidationError,
} from "../../lib/errors.ts";
import { REQUEST_LIMITS } from "../../lib/request-schema.ts";
import { buildResult, engineErrorOf } from "../../lib/result.ts";
import { hostKeyTrust } from "../../lib/session/host-keys.ts";
import type { RunOptions, RunRequest, RunResult, Secret } from "../../lib/types.ts";
import { validateRequest } from "../../lib/validate-request.ts";
import { attemptedTarget } from "../audit/audit-facts.ts";
import { ENV } from "../config/config.ts";
import type { Authorization, Policy } from "../policy/policy.ts";
import { loadEngine } from "../runtime/lazy.ts";
import type { Runtime } from "../runtime/runtime.ts";
import type { Invocation } from "./invocation.ts";

/**
 * A §5 result for a failure before any session (policy, credentials, deadline), so API
 * callers and Step Functions `Catch` still get target, phase and timings.
 */
export function syntheticResult(
  request: RunRequest,
  error: EngineError,
  invocation: Invocation,
): RunResult {
  const totalMs = invocation.deadline.elapsed();
  return buildResult({
    requestId: invocation.requestId,
    target: {
      host: request.host,
      port: request.port ?? 22,
      address: null,
      username: request.username,
    },
    phase: error.phase,
    error: {
      ...error.toJSON(),
      commandStarted: false,
      ...(request.via !== undefined ? { hop: error.hop ?? "target" } : {}),
    },
    totalMs,
    deadline: { budgetMs: invocation.budgetMs, remainingMs: invocation.budgetMs - totalMs },
  });
}

/**
 * The SPEC §6 error of a result: the engine's own object when the session ran in this
 * invocation (its stack and cause reach the unexpected-error log), else rebuilt from the JSON
 * (a replayed idempotent result).
 */
export function errorOfResult(result: RunResult): EngineError | undefined {
  if (!result.error) return undefined;
  return engineErrorOf(result) ?? errorFromJSON(result.error);
}

/** Limits and context of one entry point beyond the request schema. */
export interface EntryLimits {
  /** Largest `maxOutputBytes` this entry point's response can carry. */
  maxOutputBytes: number;
  /**
   * Step Functions: the execution ARN. With an idempotency store, a request without its own
   * `idempotencyKey` gets one derived from it and the target, so a retried task (same
   * execution, same host) never runs its command twice.
   */
  idempotencyScope?: string;
}

/** The Step Functions task path: a state's payload is limited to 256 KiB. */
export const TASK_LIMITS: EntryLimits = { maxOutputBytes: REQUEST_LIMITS.taskMaxOutputBytes };

/** Idempotent results are recorded in one DynamoDB item (400 KB): the task path's limit. */
const IDEMPOTENT_MAX_OUTPUT_BYTES = REQUEST_LIMITS.taskMaxOutputBytes;

/**
 * The idempotency key of a Step Functions task without its own `idempotencyKey`: the
 * execution and the whole validated request (every field, nested `via` included, keys in a
 * canonical order), so a retried task replays its result and a sibling task that differs in
 * anything — stdin, pin, limits, jump host — is a session of its own. Powertools compares the
 * whole request with the record anyway: a coarser key would turn such a sibling into
 * `IdempotencyKeyReused`.
 */
export function derivedKey(scope: string, run: RunRequest): string {
  const digest = createHash("sha256")
    .update(JSON.stringify([scope, canonical(run)]))
    .digest("base64url");
  return `sfn:${digest}`;
}

/** `value` with object keys sorted at every level (JSON.stringify then depends on content only). */
function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value === null || typeof value !== "object") return value;
  return Object.fromEntries(
    Object.keys(value)
      .sort()
      .map((k) => [k, canonical((value as Record<string, unknown>)[k])]),
  );
}

/**
 * One invocation, from untrusted input to a §5 result: validate, decide the budget, authorize
 * (host name now, resolved address inside the engine), read the credential and known hosts
 * within the budget, run the session. Fills the {@link Invocation}: result, error, audit facts.
 *
 * Resolves with the engine's result (whatever its status). Throws an `EngineError` for
 * failures before a session (validation, policy, credentials, deadline); those after
 * validation carry a synthetic result in `invocation.result`.
 */
export async function execute(
  invocation: Invocation,
  runtime: Runtime,
  input: unknown,
  limits?: EntryLimits,
): Promise<RunResult> {
  const facts = invocation.audit;
  const { requestId } = invocation;
  const { settings } = runtime;
  let run: RunRequest | undefined;
  // Every read before the session (policy, credentials, known hosts, breaker) is bounded by
  // what is left of the session's budget and by its own cap.
  const readSignal = () => invocation.readSignal(settings.credentialsTimeoutMs);
  try {
    try {
      run = validateRequest(input);
    } catch (err) {
      const attempted = attemptedTarget(input);
      if (attempted) facts.attempted = attempted;
      throw err;
    }
    facts.request = run;
    if (limits && (run.maxOutputBytes ?? 0) > limits.maxOutputBytes) {
      throw new ValidationError(
        `field "maxOutputBytes" is ${run.maxOutputBytes}; this entry point keeps at most ${limits.maxOutputBytes} bytes per stream (the Step Functions state payload limit is 256 KiB)`,
        { phase: "request" },
      );
    }
    if (run.timeoutMs !== undefined) invocation.limit(run.timeoutMs);
    if (invocation.sessionRemaining() < settings.minBudgetMs) {
      throw new DeadlineExceeded(
        `only ${Math.max(0, Math.round(invocation.sessionRemaining()))} ms left for the session; at least ${settings.minBudgetMs} ms are needed`,
        { phase: "request" },
      );
    }

    const port = run.port ?? 22;

    let policy: Policy;
    try {
      policy = await runtime.policy.get({ signal: readSignal() });
    } catch (err) {
      throw new InternalError("the policy could not be loaded", { phase: "policy", cause: err });
    }
    const authorization = policy.authorize(invocation.caller, run, {
      deadlineAt: performance.now() + invocation.sessionRemaining(),
    });
    facts.command = authorization.command;
    facts.template = authorization.template;
    facts.rules = authorization.rules;

    const idempotencyKey =
      run.idempotencyKey ??
      (limits?.idempotencyScope && runtime.idempotency
        ? derivedKey(limits.idempotencyScope, run)
        : undefined);
    if (run.spill === true && !(settings.spill && runtime.spill)) {
      throw new ValidationError(
        `field "spill": this deployment has no spill bucket (set ${ENV.spillBucket})`,
        { phase: "request" },
      );
    }
    if (run.spill === true && settings.spill?.mode === "request" && !authorization.allowSpill) {
      throw new CommandNotAllowed(
        `spill is not allowed by rule ${authorization.rules.join(", ")} (allowSpill)`,
        { phase: "policy" },
      );
    }
    if (run.idempotencyKey !== undefined && !runtime.idempotency) {
      throw new ValidationError(
        `field "idempotencyKey": this deployment has no idempotency store (set ${ENV.idempotencyTable})`,
        { phase: "request" },
      );
    }
    if (idempotencyKey !== undefined && (run.maxOutputBytes ?? 0) > IDEMPOTENT_MAX_OUTPUT_BYTES) {
      throw new ValidationError(
        `field "maxOutputBytes" is ${run.maxOutputBytes}; an idempotent request keeps at most ${IDEMPOTENT_MAX_OUTPUT_BYTES} bytes per stream (its result is recorded in one DynamoDB item)`,
        { phase: "request" },
      );
    }
    // A quarantined host is refused at once: one read, before the idempotency store, the
    // credentials or a dial. The breaker is an optimisation: when its store fails, the
    // session goes ahead.
    if (runtime.breaker) {
      const hops: [string, number][] = [[run.host, port]];
      if (run.via) hops.push([run.via.host, run.via.port ?? 22]);
      // Each hop on its own: a store failure on one check never skips the other.
      for (const [host, hopPort] of hops) {
        try {
          await runtime.breaker.check(host, hopPort, readSignal());
        } catch (err) {
          if (err instanceof HostQuarantined) throw err;
        }
      }
    }
    const session = () => runSession(run!, authorization, port);
    let result: RunResult;
    if (idempotencyKey !== undefined && runtime.idempotency && invocation.caller) {
      const outcome = await runtime.idempotency.run(
        { caller: invocation.caller, key: idempotencyKey, request: run },
        session,
      );
      result = outcome.result;
      facts.idempotency = outcome.replayed ? "replayed" : "recorded";
    } else result = await session();
    if (runtime.breaker && facts.idempotency !== "replayed") {
      // The session has spent its budget: this write spends the reserve, at most half of what
      // is left of it (metrics and the response need the rest), and never costs the result.
      await runtime.breaker
        .record(result, invocation.reserveSignal(settings.credentialsTimeoutMs))
        .catch(() => undefined);
    }
    invocation.result = result;
    const error = errorOfResult(result);
    if (error) invocation.fail(error);
    return result;
  } catch (err) {
    const error = invocation.fail(err);
    if (run && !invocation.result) invocation.result = syntheticResult(run, error, invocation);
    throw error;
  }

  /** Credentials, known hosts and the session itself: what an idempotent repeat skips. */
  async function runSession(
    run: RunRequest,
    authorization: Authorization,
    port: number,
  ): Promise<RunResult> {
    // The operator's known hosts are read whether or not the request pins a key: a pin only
    // narrows them (SPEC §9).
    const signal = readSignal();
    const viaCredential = authorization.via?.credential;
    const [secret, knownHosts, viaSecret] = await Promise.all([
      runtime.credentials.get(authorization.credential, { signal }) as Promise<Secret>,
      runtime.knownHosts.get({ signal }).catch((err: unknown) => {
        throw new CredentialUnavailable("known hosts could not be read", {
          phase: "credentials",
          cause: err,
        });
      }),
      // The jump host's credential comes from the same store (`via.credential`).
      viaCredential === undefined
        ? undefined
        : (runtime.credentials.get(viaCredential, { signal }) as Promise<Secret>),
    ]);
    const isPassword = typeof secret.password === "string";
    const allowRequestPins = authorization.allowRequestPins && !isPassword;
    const trust = hostKeyTrust({
      knownHosts,
      pin: run.hostKey,
      host: run.host,
      port,
      allowPinOnly: allowRequestPins,
    });
    if (trust.kind === "none" && run.hostKey !== undefined) {
      // The pin would be the only thing vouching for this server: refuse before dialling.
      if (!authorization.allowRequestPins) {
        throw new TargetNotAllowed(
          `host ${run.host}:${port} is not in the operator's known hosts and the caller's rule does not allow request pins (allowRequestPins); add the host's key to known_hosts`,
          { phase: "policy" },
        );
      }
      throw new CredentialNotAllowed(
        `a request pin alone never vouches for a host that receives a password: add ${run.host}:${port} to the operator's known hosts, or use a key credential`,
        { phase: "policy" },
      );
    }
    if (trust.kind !== "none") facts.hostKeySource = trust.kind;
    const via = run.via && viaSecret && authorization.via ? { ...authorization.via } : undefined;
    if (run.via && via && viaSecret) {
      // The jump host's key under the same rule (known hosts authoritative, a pin narrows).
      via.allowRequestPins = via.allowRequestPins && typeof viaSecret.password !== "string";
      const viaPort = run.via.port ?? 22;
      const viaTrust = hostKeyTrust({
        knownHosts,
        pin: run.via.hostKey,
        host: run.via.host,
        port: viaPort,
        allowPinOnly: via.allowRequestPins,
      });
      if (viaTrust.kind === "none" && run.via.hostKey !== undefined) {
        const where = `jump host ${run.via.host}:${viaPort}`;
        throw atHop(
          authorization.via!.allowRequestPins
            ? new CredentialNotAllowed(
                `a request pin alone never vouches for a host that receives a password: add ${where} to the operator's known hosts, or use a key credential for via.credential`,
                { phase: "policy" },
              )
            : new TargetNotAllowed(
                `${where} (via.hostKey) is not in the operator's known hosts and the caller's rule does not allow request pins (allowRequestPins); add its key to known_hosts`,
                { phase: "policy" },
              ),
          "via",
        );
      }
    }

    // Loaded on first use (cold start); before the budget is measured, so it counts.
    const { runCommand } = await loadEngine();
    const spillStore = runtime.spill;
    const spilling =
      settings.spill !== undefined &&
      spillStore !== undefined &&
      (settings.spill.mode === "always" || run.spill === true);
    if (spilling) await spillStore.ready?.();
    const budgetMs = invocation.sessionRemaining();
    if (budgetMs < settings.minBudgetMs) {
      throw new DeadlineExceeded(
        `only ${Math.max(0, Math.round(budgetMs))} ms left after reading the credential`,
        { phase: "credentials" },
      );
    }
    const options: RunOptions = {
      budgetMs,
      secret,
      credentialName: authorization.credential,
      allowRequestPins,
      checkAddress: (address, family, hop) => {
        if (hop !== "via") facts.address = address;
        authorization.checkAddress(address, family, hop);
      },
      requestId,
      phaseCaps: settings.phaseCaps,
      remoteBound: settings.remoteBound,
      signal: invocation.signal,
    };
    if (knownHosts !== undefined) options.knownHosts = knownHosts;
    if (via && viaSecret) {
      options.via = {
        secret: viaSecret,
        credentialName: via.credential,
        allowRequestPins: via.allowRequestPins,
      };
    }
    if (runtime.lookup) options.lookup = runtime.lookup;
    if (spilling) {
      options.spill = {
        open: (stream) => spillStore!.open(requestId, stream),
        maxBytes: settings.spill!.maxBytes,
      };
    }
    return runCommand({ ...run, command: authorization.command }, options);
  }
}
