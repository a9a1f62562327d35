import { createHash } from "node:crypto";
import { HostQuarantined } from "../../../lib/errors.ts";
import type { RunResult } from "../../../lib/types.ts";
import { derivedKey } from "./idempotency-gate.ts";
import type { Next, RunContext } from "./run-context.ts";
import { addStoreErrors, storeErrorName } from "./store-errors.ts";

/**
 * The logical request a breaker failure is counted for, once: the caller's idempotency key
 * (retries of one request share it), else a Step Functions task's execution and request (a
 * workflow's retries of one host in one execution), else the invocation. Hashed: the item
 * keeps a set of these.
 */
export function breakerRequestKey(ctx: RunContext): string {
  const { caller, requestId } = ctx.invocation;
  const scope = ctx.limits.idempotencyScope;
  const logical =
    ctx.idempotencyKey !== undefined
      ? `key|${caller ?? ""}|${ctx.idempotencyKey}`
      : scope !== undefined
        ? `sfn|${derivedKey(scope, ctx.request)}`
        : `request|${requestId}`;
  return createHash("sha256").update(logical).digest("base64url").slice(0, 22);
}

/**
 * Step (around): the per-host breaker. Before: a quarantined host — the target or the jump
 * host — is refused at once, one read each, before the idempotency store, the credentials or
 * a dial (after its quarantine, the first request probes it). After: the session's result is
 * recorded against the hop that failed, once per logical request ({@link breakerRequestKey};
 * not for a replayed result). The breaker is an optimisation: when its store fails, the
 * session goes ahead and the result is kept; a record that fails or outlives its signal is
 * named in the result's `storeErrors` (SPEC §5).
 */
export async function breaker(ctx: RunContext, next: Next): Promise<RunResult> {
  const store = ctx.runtime.breaker;
  if (!store) return next();
  const { request } = ctx;
  const hops: [string, number][] = [[request.host, ctx.port]];
  if (request.via) hops.push([request.via.host, request.via.port ?? 22]);
  // Each hop on its own: a store failure on one check never skips the other.
  for (const [host, port] of hops) {
    try {
      await store.check(host, port, ctx.readSignal());
    } catch (err) {
      if (err instanceof HostQuarantined) throw err;
    }
  }
  const result = await next();
  if (ctx.invocation.audit.idempotency !== "replayed") {
    // The session has spent its budget: this write spends the reserve, at most half of what
    // is left of it (metrics and the response need the rest), and never costs the result.
    const signal = ctx.invocation.reserveSignal(ctx.runtime.settings.credentialsTimeoutMs);
    await store.record(result, signal, breakerRequestKey(ctx)).catch((err: unknown) =>
      addStoreErrors(result, [
        {
          store: "breaker",
          operation: "recordOutcome",
          name: storeErrorName(err),
          message:
            "the session's outcome was not counted for its host: the per-host breaker may quarantine or release it later than it would have",
        },
      ]),
    );
  }
  return result;
}
