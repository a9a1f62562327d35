/**
 * Runs a synthesized state machine locally (aws-local-stepfunctions) with its Lambda task
 * bound to a local function, the way both workflow test files need it: the configured
 * retriers stay, only their waits are skipped, and every event is collected.
 */
import { StateMachine } from "aws-local-stepfunctions";

/** An execution event as the tests read it. */
export interface ExecutionEvent {
  type: string;
  state?: { name: string; output?: unknown };
  Error?: string;
  Cause?: unknown;
}

export interface LocalExecution {
  output: unknown;
  error: unknown;
  /** The `ExecutionFailed` event, if the execution failed. */
  failed: ExecutionEvent | undefined;
  events: ExecutionEvent[];
  /** Output of the named state when it exited. */
  stateOutput(name: string): unknown;
}

/** What Lambda hands Step Functions for a thrown error: Error = name, Cause = the envelope. */
export function lambdaError(err: Error, trace: string[] = []): Error {
  const envelope = { errorType: err.name, errorMessage: err.message, trace };
  return Object.assign(new Error(JSON.stringify(envelope)), { name: err.name });
}

export async function runLocally(
  definition: Record<string, unknown>,
  taskState: string,
  input: unknown,
  task: (event: unknown) => Promise<unknown>,
): Promise<LocalExecution> {
  const machine = new StateMachine(definition as never, { validationOptions: { checkArn: false } });
  const execution = machine.run(input as never, {
    overrides: {
      taskResourceLocalHandlers: { [taskState]: task as never },
      // Keep the configured retrier; only skip its (seconds-long, jittered) waits.
      retryIntervalOverrides: { [taskState]: 0 },
    },
  });
  const events: ExecutionEvent[] = [];
  const collecting = (async () => {
    for await (const e of execution.eventLogs) events.push(e as never);
  })();
  let output: unknown;
  let error: unknown;
  try {
    output = await execution.result;
  } catch (e) {
    error = e;
  }
  await collecting;
  return {
    output,
    error,
    failed: events.find((e) => e.type === "ExecutionFailed"),
    events,
    stateOutput: (name) =>
      events.find((e) => e.type === "StateExited" && e.state?.name === name)?.state?.output,
  };
}
