import type { RunResult } from "../../../lib/types.ts";
import type { Next, RunContext } from "./run-context.ts";

/**
 * Step (around): with a key (`idempotencyGate`), the rest of the path — credentials, host
 * trust, the session — runs inside the idempotency store, once per caller and key; a repeat
 * gets the recorded result without dialling (`replayed`). A refusal inside (credentials, a
 * pin) leaves no record and ends the path as it would without a key.
 */
export async function idempotency(ctx: RunContext, next: Next): Promise<RunResult> {
  const store = ctx.runtime.idempotency;
  const { caller, audit } = ctx.invocation;
  const key = ctx.idempotencyKey;
  if (key === undefined || !store || !caller) return next();
  const outcome = await store.run({ caller, key, request: ctx.request }, next);
  audit.idempotency = outcome.replayed ? "replayed" : "recorded";
  return outcome.result;
}
