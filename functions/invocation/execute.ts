import type { Runtime } from "../runtime/runtime.ts";
import type { Invocation } from "./invocation.ts";
import { errorOfResult, type Settled, syntheticResult } from "./outcome.ts";
import { authorize } from "./steps/authorize.ts";
import { breaker } from "./steps/breaker.ts";
import { budget } from "./steps/budget.ts";
import { engine } from "./steps/engine.ts";
import { entryLimits } from "./steps/entry-limits.ts";
import { hostTrust } from "./steps/host-trust.ts";
import { idempotency } from "./steps/idempotency.ts";
import { idempotencyGate } from "./steps/idempotency-gate.ts";
import { readSecrets } from "./steps/read-secrets.ts";
import {
  API_LIMITS,
  type EntryLimits,
  RunContext,
  runSteps,
  type Step,
} from "./steps/run-context.ts";
import { spillGate } from "./steps/spill-gate.ts";
import { validate } from "./steps/validate.ts";
import { toEngineError } from "./to-engine-error.ts";

/** The request path, in order (docs/engine.md, "Adding a pre-session step"). */
export const STEPS: readonly Step[] = [
  validate, // the schema, once
  entryLimits, // the entry point's own limits
  budget, // timeoutMs; minBudgetMs
  authorize, // the policy (host name; the address in the engine)
  spillGate, // spill: a bucket, and allowSpill
  idempotencyGate, // the key; a store; what one item holds
  breaker, // around: quarantined hops refused; the result recorded
  idempotency, // around: the rest runs once per caller and key
  readSecrets, // credentials and known hosts
  hostTrust, // once per hop: pins that may not vouch alone
  engine, // the session
];

/**
 * One invocation, from untrusted input to a §5 result: runs {@link STEPS} and settles the
 * invocation (`invocation.settle`) with the result and its error — a synthetic result for a
 * refusal before the session. Never rejects.
 *
 * @param invocation the invocation (its deadline, caller and audit facts).
 * @param runtime the container's settings, stores and policy.
 * @param input the untrusted request (the API body, the task's `request`).
 * @param limits the entry point's limits. @default {@link API_LIMITS}
 * @returns the settled result and the error the caller sees, if any.
 * @example
 * const { result, error } = await execute(invocation, runtime, body, TASK_LIMITS);
 * if (error) throw error; // the adapter maps it (HTTP status, Step Functions name)
 */
export async function execute(
  invocation: Invocation,
  runtime: Runtime,
  input: unknown,
  limits: EntryLimits = API_LIMITS,
): Promise<Settled> {
  const ctx = new RunContext(invocation, runtime, input, limits);
  try {
    const result = await runSteps(ctx, STEPS);
    const failOnNonZeroExit = limits.failOnNonZeroExit && ctx.request.failOnNonZeroExit;
    return invocation.settle(result, errorOfResult(result, { failOnNonZeroExit }));
  } catch (err) {
    const error = toEngineError(err);
    const request = ctx.validated;
    return invocation.settle(request && syntheticResult(request, error, invocation), error);
  }
}
