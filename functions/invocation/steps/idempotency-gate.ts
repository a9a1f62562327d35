import { createHash } from "node:crypto";
import { ValidationError } from "../../../lib/errors.ts";
import { REQUEST_LIMITS } from "../../../lib/request-schema.ts";
import type { RunRequest, RunResult } from "../../../lib/types.ts";
import { ENV } from "../../config/config.ts";
import type { Next, RunContext } from "./run-context.ts";

/** Idempotent results are recorded in one DynamoDB item (400 KB): the task path's limit. */
const IDEMPOTENT_MAX_OUTPUT_BYTES = REQUEST_LIMITS.taskMaxOutputBytes;

/**
 * Step: decides the idempotency key (the request's, or one derived for a Step Functions task
 * when the deployment has a store) and its scope (a task's own key: its execution, unless
 * every rule allowing it sets `shareIdempotencyKeys`), and refuses what an idempotent run can
 * not keep: a key without a store, more output than one DynamoDB item holds.
 */
export async function idempotencyGate(ctx: RunContext, next: Next): Promise<RunResult> {
  const { request, limits, runtime } = ctx;
  const key =
    request.idempotencyKey ??
    (limits.idempotencyScope && runtime.idempotency
      ? derivedKey(limits.idempotencyScope, request)
      : undefined);
  if (request.idempotencyKey !== undefined && !runtime.idempotency) {
    throw new ValidationError(
      `field "idempotencyKey": this deployment has no idempotency store (set ${ENV.idempotencyTable})`,
      { phase: "request" },
    );
  }
  if (key !== undefined && (request.maxOutputBytes ?? 0) > IDEMPOTENT_MAX_OUTPUT_BYTES) {
    throw new ValidationError(
      `field "maxOutputBytes" is ${request.maxOutputBytes}; an idempotent request keeps at most ${IDEMPOTENT_MAX_OUTPUT_BYTES} bytes per stream (its result is recorded in one DynamoDB item)`,
      { phase: "request" },
    );
  }
  if (key !== undefined) ctx.idempotencyKey = key;
  // A task's own key: the caller is the state machine, which everyone who may start its
  // executions acts as, so the key is scoped to this execution unless the rule shares it
  // (issue 23). A derived key already holds the execution.
  if (
    request.idempotencyKey !== undefined &&
    limits.idempotencyScope !== undefined &&
    !ctx.authorization.shareIdempotencyKeys
  ) {
    ctx.idempotencyNamespace = limits.idempotencyScope;
  }
  return next();
}

/**
 * The idempotency key of a Step Functions task without its own `idempotencyKey`: the
 * execution and the whole validated request (every field, nested `via` included, keys in a
 * canonical order), so a retried task replays its result and a sibling task that differs in
 * anything — stdin, pin, limits, jump host — is a session of its own. Powertools compares the
 * whole request with the record anyway: a coarser key would turn such a sibling into
 * `IdempotencyKeyReused`.
 *
 * @param scope the execution ARN.
 * @param run the validated request.
 * @example
 * derivedKey(executionArn, request); // "sfn:<43 base64url characters>"
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
