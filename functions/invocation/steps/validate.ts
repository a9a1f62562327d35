import type { RunResult } from "../../../lib/types.ts";
import { validateRequest } from "../../../lib/validate-request.ts";
import { attemptedTarget } from "../../audit/audit-facts.ts";
import type { Next, RunContext } from "./run-context.ts";

/**
 * Step: the untrusted input against the request schema (SPEC §4), once. A refusal is a
 * `ValidationError` naming the field; the audit line still says what was attempted.
 */
export async function validate(ctx: RunContext, next: Next): Promise<RunResult> {
  const facts = ctx.invocation.audit;
  try {
    ctx.request = validateRequest(ctx.input);
  } catch (err) {
    const attempted = attemptedTarget(ctx.input);
    if (attempted) facts.attempted = attempted;
    throw err;
  }
  facts.request = ctx.request;
  return next();
}
