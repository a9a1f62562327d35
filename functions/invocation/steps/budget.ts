import { DeadlineExceeded } from "../../../lib/errors.ts";
import type { RunResult } from "../../../lib/types.ts";
import type { Next, RunContext } from "./run-context.ts";

/**
 * Step: the session's budget — the request's `timeoutMs` narrows it; less than
 * `minBudgetMs` left is `DeadlineExceeded` before anything is read or dialled.
 */
export async function budget(ctx: RunContext, next: Next): Promise<RunResult> {
  const { invocation } = ctx;
  const { minBudgetMs } = ctx.runtime.settings;
  if (ctx.request.timeoutMs !== undefined) invocation.limit(ctx.request.timeoutMs);
  if (invocation.sessionRemaining() < minBudgetMs) {
    throw new DeadlineExceeded(
      `only ${Math.max(0, Math.round(invocation.sessionRemaining()))} ms left for the session; at least ${minBudgetMs} ms are needed`,
      { phase: "request" },
    );
  }
  return next();
}
