import { CommandNotAllowed, ValidationError } from "../../../lib/errors.ts";
import type { RunResult } from "../../../lib/types.ts";
import { ENV } from "../../config/config.ts";
import type { Next, RunContext } from "./run-context.ts";

/**
 * Step: request `spill` needs a spill bucket, and in `request` mode a rule that allows it
 * (`allowSpill`).
 */
export async function spillGate(ctx: RunContext, next: Next): Promise<RunResult> {
  if (ctx.request.spill === true) {
    const { settings, spill } = ctx.runtime;
    if (!(settings.spill && spill)) {
      throw new ValidationError(
        `field "spill": this deployment has no spill bucket (set ${ENV.spillBucket})`,
        { phase: "request" },
      );
    }
    const { allowSpill, rules } = ctx.authorization;
    if (settings.spill.mode === "request" && !allowSpill) {
      throw new CommandNotAllowed(`spill is not allowed by rule ${rules.join(", ")} (allowSpill)`, {
        phase: "policy",
      });
    }
  }
  return next();
}
