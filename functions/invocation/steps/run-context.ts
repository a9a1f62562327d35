/**
 * The request path's step script: a {@link RunContext} the steps read and fill, and the
 * {@link Step} type. `execute` (`../execute.ts`) is the ordered list; docs/engine.md, "Adding
 * a pre-session step", says how to add one.
 */
import { REQUEST_LIMITS } from "../../../lib/request-schema.ts";
import type { RunRequest, RunResult, Secret } from "../../../lib/types.ts";
import type { Authorization } from "../../policy/policy.ts";
import type { Runtime } from "../../runtime/runtime.ts";
import type { Invocation } from "../invocation.ts";

/** Limits and context of one entry point beyond the request schema. */
export interface EntryLimits {
  /** Largest `maxOutputBytes` this entry point's response can carry. */
  maxOutputBytes: number;
  /**
   * Step Functions: the execution ARN. With an idempotency store, a request without its own
   * `idempotencyKey` gets one derived from it and the request, so a retried task (same
   * execution, same request) never runs its command twice.
   */
  idempotencyScope?: string;
  /** Honour the request's `failOnNonZeroExit` (Step Functions). @default false */
  failOnNonZeroExit?: boolean;
}

/** The API path: the request schema's own limits. */
export const API_LIMITS: EntryLimits = { maxOutputBytes: REQUEST_LIMITS.maxOutputBytes };

/** The Step Functions task path: a state's payload is limited to 256 KiB. */
export const TASK_LIMITS: EntryLimits = {
  maxOutputBytes: REQUEST_LIMITS.taskMaxOutputBytes,
  failOnNonZeroExit: true,
};

/** The credentials and known hosts a session uses, read within the budget. */
export interface Secrets {
  secret: Secret;
  /** The jump host's credential (request `via`). */
  viaSecret?: Secret;
  /** The operator's known hosts (OpenSSH text), when configured. */
  knownHosts?: string;
}

/** What host trust allows per hop: a request pin may vouch alone (SPEC §9). */
export interface PinAllowance {
  allowRequestPins: boolean;
  via?: { allowRequestPins: boolean };
}

/** Runs the rest of the list and settles with its result. */
export type Next = () => Promise<RunResult>;

/**
 * One step of the request path. A step reads and fills the context, then either returns
 * `next()` (a check: throw to refuse), wraps it (an "around" step: idempotency, the breaker),
 * or settles the result itself (the last step: the engine). A thrown error ends the path:
 * `execute` turns it into the invocation's error and a synthetic result.
 */
export type Step = (ctx: RunContext, next: Next) => Promise<RunResult>;

/**
 * Per-invocation state of the request path. Fields a step fills are read through getters
 * that name the step which should have filled them, so a list in the wrong order fails loudly.
 */
export class RunContext {
  readonly invocation: Invocation;
  readonly runtime: Runtime;
  /** The untrusted input (the API body, the task's `request`). */
  readonly input: unknown;
  readonly limits: EntryLimits;
  /** Set by `idempotencyGate`: the key this run is recorded under, if any. */
  idempotencyKey?: string;
  /**
   * Set by `idempotencyGate`: what the key is scoped to beyond the caller — a task's own
   * `idempotencyKey` is scoped to its execution unless the rule sets `shareIdempotencyKeys`.
   */
  idempotencyNamespace?: string;

  #request?: RunRequest;
  #authorization?: Authorization;
  #secrets?: Secrets;
  #pins?: PinAllowance;

  constructor(invocation: Invocation, runtime: Runtime, input: unknown, limits: EntryLimits) {
    this.invocation = invocation;
    this.runtime = runtime;
    this.input = input;
    this.limits = limits;
  }

  /** The validated request, once `validate` ran (else `undefined`). */
  get validated(): RunRequest | undefined {
    return this.#request;
  }

  /** The validated request (step `validate`). */
  get request(): RunRequest {
    return filled(this.#request, "validate");
  }
  set request(request: RunRequest) {
    this.#request = request;
  }

  /** The target's port. */
  get port(): number {
    return this.request.port ?? 22;
  }

  /** The policy's decision (step `authorize`). */
  get authorization(): Authorization {
    return filled(this.#authorization, "authorize");
  }
  set authorization(authorization: Authorization) {
    this.#authorization = authorization;
  }

  /** Credentials and known hosts (step `readSecrets`). */
  get secrets(): Secrets {
    return filled(this.#secrets, "readSecrets");
  }
  set secrets(secrets: Secrets) {
    this.#secrets = secrets;
  }

  /** Whether a request pin may vouch alone, per hop (step `hostTrust`). */
  get pins(): PinAllowance {
    return filled(this.#pins, "hostTrust");
  }
  set pins(pins: PinAllowance) {
    this.#pins = pins;
  }

  /**
   * The signal of one read before the session (policy, credentials, known hosts, breaker):
   * bounded by what is left of the session's budget and by the reads' own cap.
   */
  readSignal(): AbortSignal {
    return this.invocation.readSignal(this.runtime.settings.credentialsTimeoutMs);
  }
}

function filled<T>(value: T | undefined, step: string): T {
  if (value === undefined) {
    throw new TypeError(`the request path read a field before step ${step} filled it`);
  }
  return value;
}

/**
 * Runs `steps` in order over `ctx`: each step gets `next`, which runs the ones after it. The
 * last step must settle a result without calling `next`.
 *
 * @param ctx the invocation's context.
 * @param steps the ordered list.
 * @returns the result the steps settled with.
 * @throws whatever a step threw (a refusal before the session): `execute` maps it.
 * @example
 * await runSteps(ctx, [validate, budget, engine]);
 */
export function runSteps(ctx: RunContext, steps: readonly Step[]): Promise<RunResult> {
  const at = async (index: number): Promise<RunResult> => {
    const step = steps[index];
    if (!step) throw new TypeError("the last step of the request path called next()");
    return step(ctx, () => at(index + 1));
  };
  return at(0);
}
