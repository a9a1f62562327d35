import { ValidationError } from "../../../lib/errors.ts";
import type { RunResult } from "../../../lib/types.ts";
import type { Next, RunContext } from "./run-context.ts";

/**
 * Step: the entry point's own limits beyond the schema (the Step Functions state payload
 * keeps at most 92,160 bytes per stream).
 */
export async function entryLimits(ctx: RunContext, next: Next): Promise<RunResult> {
  const { request, limits } = ctx;
  if ((request.maxOutputBytes ?? 0) > limits.maxOutputBytes) {
    throw new ValidationError(
      `field "maxOutputBytes" is ${request.maxOutputBytes}; this entry point keeps at most ${limits.maxOutputBytes} bytes per stream (the Step Functions state payload limit is 256 KiB)`,
      { phase: "request" },
    );
  }
  return next();
}
