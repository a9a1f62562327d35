import type { RunResult } from "../../../lib/types.ts";
import type { StoreBounds } from "../../idempotency/idempotency.ts";
import type { Next, RunContext } from "./run-context.ts";
import { addStoreErrors } from "./store-errors.ts";

/**
 * Step (around): with a key (`idempotencyGate`), the rest of the path — credentials, host
 * trust, the session — runs inside the idempotency store, once per caller and key; a repeat
 * gets the recorded result without dialling (`replayed`). A refusal inside (credentials, a
 * pin) leaves no record and ends the path as it would without a key.
 *
 * The store is bounded by the invocation (SPEC §5): its calls before the session are reads of
 * the session's budget, after it writes of the reserve, the whole run is raced against the
 * invocation's signal, and its in-progress record expires at the invocation's deadline. A
 * result that could not be recorded is still the answer, with the failure in `storeErrors`.
 */
export async function idempotency(ctx: RunContext, next: Next): Promise<RunResult> {
  const store = ctx.runtime.idempotency;
  const { invocation } = ctx;
  const { caller, audit } = invocation;
  const key = ctx.idempotencyKey;
  if (key === undefined || !store || !caller) return next();
  const bounds: StoreBounds = {
    signal: invocation.signal,
    read: () => ctx.readSignal(),
    write: () => invocation.reserveSignal(ctx.runtime.settings.credentialsTimeoutMs),
    remainingMs: () => invocation.slackMs(),
  };
  // The record's owner: the caller, and for a task's own key its execution (idempotencyGate).
  // Powertools hashes [caller, key], so another execution's record is never found.
  const owner =
    ctx.idempotencyNamespace === undefined ? caller : `${caller} ${ctx.idempotencyNamespace}`;
  const outcome = await store.run({ caller: owner, key, request: ctx.request, bounds }, next);
  audit.idempotency = outcome.replayed ? "replayed" : "recorded";
  return addStoreErrors(outcome.result, outcome.storeErrors);
}
