/**
 * Runs pre-session steps the way `execute` does, inside the real composer (real middy core,
 * the test runtime, a fake Lambda context): `steps` in order, then a recording last step
 * standing in for the rest of the path.
 */
import { compose } from "../../../functions/invocation/compose.ts";
import type { Invocation } from "../../../functions/invocation/invocation.ts";
import {
  API_LIMITS,
  type EntryLimits,
  RunContext,
  runSteps,
  type Step,
} from "../../../functions/invocation/steps/run-context.ts";
import type { Runtime } from "../../../functions/runtime/runtime.ts";
import { buildResult } from "../../../lib/result.ts";
import type { RunResult } from "../../../lib/types.ts";
import { CALLER, fakeContext } from "../support.ts";

export interface StepRun {
  ctx: RunContext;
  invocation: Invocation;
  /** What the steps settled with, when they did not throw. */
  result?: RunResult;
  /** What a step threw. */
  thrown?: unknown;
  /** How many times the rest of the path ran. */
  nextCalls: number;
}

/** A `succeeded` result for `host`, as the engine would settle it. */
export function okResult(host = "127.0.0.1"): RunResult {
  return buildResult({
    requestId: "r-test",
    target: { host, port: 22, address: host, username: "u" },
    phase: "exec",
    exit: { code: 0, signal: null },
    totalMs: 1,
    deadline: { budgetMs: 1000, remainingMs: 999 },
  });
}

export async function runStepsUnderTest(
  steps: readonly Step[],
  options: {
    runtime: Runtime;
    input: unknown;
    limits?: EntryLimits;
    caller?: string | null;
    /** The rest of the path. @default a `succeeded` result */
    rest?: (ctx: RunContext) => Promise<RunResult>;
  },
): Promise<StepRun> {
  let run: StepRun | undefined;
  const handler = compose<unknown, string>(
    { source: "api", runtime: options.runtime, adapter: [] },
    async (_event, invocation) => {
      if (options.caller !== null) invocation.caller = options.caller ?? CALLER;
      const ctx = new RunContext(
        invocation,
        options.runtime,
        options.input,
        options.limits ?? API_LIMITS,
      );
      const current: StepRun = { ctx, invocation, nextCalls: 0 };
      run = current;
      const rest: Step = async (c) => {
        current.nextCalls++;
        return options.rest ? options.rest(c) : okResult(c.request.host);
      };
      try {
        current.result = await runSteps(ctx, [...steps, rest]);
      } catch (err) {
        current.thrown = err;
      }
      return "done";
    },
  );
  await handler({}, fakeContext());
  return run!;
}
