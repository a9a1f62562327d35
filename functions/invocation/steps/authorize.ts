import { InternalError } from "../../../lib/errors.ts";
import type { RunResult } from "../../../lib/types.ts";
import type { Policy } from "../../policy/policy.ts";
import type { Next, RunContext } from "./run-context.ts";

/**
 * Step: the policy (read within the budget) decides on caller, target name, credential and
 * command; the resolved address is checked later, inside the engine (`checkAddress`).
 */
export async function authorize(ctx: RunContext, next: Next): Promise<RunResult> {
  let policy: Policy;
  try {
    policy = await ctx.runtime.policy.get({ signal: ctx.readSignal() });
  } catch (err) {
    throw new InternalError("the policy could not be loaded", { phase: "policy", cause: err });
  }
  // Pattern matches run in a linear-time engine that also stops at the session's deadline.
  const authorization = policy.authorize(ctx.invocation.caller, ctx.request, {
    deadlineAt: performance.now() + ctx.invocation.sessionRemaining(),
  });
  const facts = ctx.invocation.audit;
  facts.command = authorization.command;
  facts.template = authorization.template;
  facts.rules = authorization.rules;
  ctx.authorization = authorization;
  return next();
}
