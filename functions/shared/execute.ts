import { createHash } from "node:crypto";
import {
  CommandNotAllowed,
  CredentialNotAllowed,
  CredentialUnavailable,
  DeadlineExceeded,
  EngineError,
  ERROR_CLASSES,
  HostQuarantined,
  InternalError,
  TargetNotAllowed,
  ValidationError,
} from "../../lib/errors.ts";
import type { ErrorName, ErrorPhase } from "../../lib/names.ts";
import { REQUEST_LIMITS } from "../../lib/request-schema.ts";
import { buildResult, resultError } from "../../lib/result.ts";
import { hostKeyTrust } from "../../lib/session/host-keys.ts";
import type { RunOptions, RunRequest, RunResult, Secret } from "../../lib/types.ts";
import { validateRequest } from "../../lib/validate-request.ts";
import type { Authorization, Policy } from "../policy/policy.ts";
import { attemptedTarget, auditFactsOf } from "./audit-facts.ts";
import {
  CANCEL_SIGNAL,
  type CancellableContext,
  type InvocationRecord,
  invocationOf,
} from "./invocation.ts";
import { loadEngine } from "./lazy.ts";
import type { Runtime } from "./runtime.ts";

/** The part of a middy request the flow touches. */
export interface InvocationRequest {
  internal: Record<string, unknown>;
  context: { awsRequestId?: string };
}

/**
 * A §5 result for a failure before any session (policy, credentials, deadline), so API
 * callers and Step Functions `Catch` still get target, phase and timings.
 */
export function syntheticResult(
  request: RunRequest,
  error: EngineError,
  record: InvocationRecord,
  requestId: string,
): RunResult {
  const totalMs = Date.now() - record.startedAt;
  return buildResult({
    requestId,
    target: {
      host: request.host,
      port: request.port ?? 22,
      address: null,
      username: request.username,
    },
    phase: error.phase,
    error: { ...resultError(error), commandStarted: false },
    totalMs,
    deadline: { budgetMs: record.budgetMs ?? 0, remainingMs: (record.budgetMs ?? 0) - totalMs },
  });
}

/** Rebuilds the error class of a result's error, so callers get the SPEC §6 class. */
export function errorOfResult(result: RunResult): EngineError | undefined {
  const e = result.error;
  if (!e) return undefined;
  return errorFromParts(e.name, e.message, e.phase, e.commandStarted);
}

function errorFromParts(
  name: ErrorName,
  message: string,
  phase: ErrorPhase,
  commandStarted: boolean,
): EngineError {
  const Cls = ERROR_CLASSES[name] ?? InternalError;
  return new Cls(message, { phase, commandStarted });
}

/**
 * Runs `work` with a signal that aborts after `ms`; the timer is cleared before returning, so
 * nothing of this invocation outlives it.
 */
async function withTimeout<T>(ms: number, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const timer = setTimeout(
    () => controller.abort(new DeadlineExceeded("timed out", { phase: "credentials" })),
    Math.max(0, ms),
  );
  try {
    return await work(controller.signal);
  } finally {
    clearTimeout(timer);
  }
}

function remainingBudget(record: InvocationRecord): number {
  return (record.budgetMs ?? 0) - (Date.now() - record.startedAt);
}

/**
 * One invocation, from untrusted input to a §5 result: validate, decide the budget, authorize
 * (host name now, resolved address inside the engine), read the credential and known hosts
 * within the budget, run the session. Fills the {@link InvocationRecord} and the audit facts.
 *
 * Resolves with the engine's result (whatever its status). Throws an `EngineError` for
 * failures before a session (validation, policy, credentials, deadline); those after
 * validation carry a synthetic result in `record.result`.
 */
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

function derivedKey(scope: string, run: RunRequest): string {
  const digest = createHash("sha256")
    .update(JSON.stringify([scope, run.host, run.port ?? 22, run.username, run.command]))
    .digest("base64url");
  return `sfn:${digest}`;
}

export async function execute(
  request: InvocationRequest,
  runtime: Runtime,
  input: unknown,
  limits?: EntryLimits,
): Promise<RunResult> {
  const record = invocationOf(request);
  const facts = auditFactsOf(request);
  const requestId = request.context.awsRequestId ?? crypto.randomUUID();
  const { settings } = runtime;
  let run: RunRequest | undefined;
  // Every read before the session (policy, credentials, known hosts, breaker) is bounded by
  // what is left of the budget and by its own cap.
  const bounded = <T>(work: (signal: AbortSignal) => Promise<T>) =>
    withTimeout(Math.min(settings.credentialsTimeoutMs, remainingBudget(record)), work);
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
    if (run.timeoutMs !== undefined) {
      record.budgetMs = Math.min(record.budgetMs ?? run.timeoutMs, run.timeoutMs);
    }
    if (remainingBudget(record) < settings.minBudgetMs) {
      throw new DeadlineExceeded(
        `only ${Math.max(0, Math.round(remainingBudget(record)))} ms left for the session; at least ${settings.minBudgetMs} ms are needed`,
        { phase: "request" },
      );
    }

    const port = run.port ?? 22;

    let policy: Policy;
    try {
      policy = await bounded((signal) => runtime.policy.get({ signal }));
    } catch (err) {
      throw new InternalError("the policy could not be loaded", { phase: "policy", cause: err });
    }
    const authorization = policy.authorize(record.caller, run);
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
        'field "spill": this deployment has no spill bucket (set BSSH_SPILL_BUCKET)',
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
        'field "idempotencyKey": this deployment has no idempotency store (set BSSH_IDEMPOTENCY_TABLE)',
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
      try {
        await bounded((signal) => runtime.breaker!.check(run!.host, port, signal));
      } catch (err) {
        if (err instanceof HostQuarantined) throw err;
      }
    }
    const session = () => runSession(run!, authorization, port);
    let result: RunResult;
    if (idempotencyKey !== undefined && runtime.idempotency && record.caller) {
      const outcome = await runtime.idempotency.run(
        { caller: record.caller, key: idempotencyKey, request: run },
        session,
      );
      result = outcome.result;
      facts.idempotency = outcome.replayed ? "replayed" : "recorded";
    } else result = await session();
    if (runtime.breaker && facts.idempotency !== "replayed") {
      // The session has spent its budget: this write spends the reserve, at most half of what
      // is left of it (metrics and the response need the rest), and never costs the result.
      const reserveLeft = (record.mustReturnBy - Date.now()) / 2;
      await withTimeout(Math.min(settings.credentialsTimeoutMs, reserveLeft), (signal) =>
        runtime.breaker!.record(result, signal),
      ).catch(() => undefined);
    }
    record.result = result;
    record.error = errorOfResult(result);
    return result;
  } catch (err) {
    const error =
      err instanceof EngineError
        ? err
        : new InternalError("internal error", { phase: "request", cause: err });
    record.error = error;
    if (run && !record.result) record.result = syntheticResult(run, error, record, requestId);
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
    const [secret, knownHosts] = await bounded((signal) =>
      Promise.all([
        runtime.credentials.get(authorization.credential, { signal }) as Promise<Secret>,
        runtime.knownHosts.get({ signal }).catch((err: unknown) => {
          throw new CredentialUnavailable("known hosts could not be read", {
            phase: "credentials",
            cause: err,
          });
        }),
      ]),
    );
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

    // Loaded on first use (cold start); before the budget is measured, so it counts.
    const { runCommand } = await loadEngine();
    const spillStore = runtime.spill;
    const spilling =
      settings.spill !== undefined &&
      spillStore !== undefined &&
      (settings.spill.mode === "always" || run.spill === true);
    if (spilling) await spillStore.ready?.();
    const budgetMs = remainingBudget(record);
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
      checkAddress: (address, family) => {
        facts.address = address;
        authorization.checkAddress(address, family);
      },
      requestId,
      phaseCaps: settings.phaseCaps,
      remoteBound: settings.remoteBound,
    };
    const cancel = (request.context as CancellableContext)[CANCEL_SIGNAL];
    if (cancel) options.signal = cancel;
    if (knownHosts !== undefined) options.knownHosts = knownHosts;
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
