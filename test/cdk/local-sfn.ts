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

/** A state machine ARN in the fake Lambda context's region and account (`local`, 0…0). */
export function localStateMachineArn(name: string): string {
  return `arn:aws:states:local:000000000000:stateMachine:${name}`;
}

export async function runLocally(
  definition: Record<string, unknown>,
  taskState: string,
  input: unknown,
  task: (event: unknown) => Promise<unknown>,
  stateMachineArn = localStateMachineArn("Test-SingleHost"),
): Promise<LocalExecution> {
  const machine = new StateMachine(definition as never, { validationOptions: { checkArn: false } });
  const name = stateMachineArn.split(":").pop();
  const executionArn = `${stateMachineArn.replace(":stateMachine:", ":execution:")}:${crypto.randomUUID()}`;
  const execution = machine.run(input as never, {
    // What AWS puts in `$$`: the workflows pass these to the task as its caller.
    context: {
      Execution: { Id: executionArn, Name: executionArn.split(":").pop(), Input: input as never },
      StateMachine: { Id: stateMachineArn, Name: name },
    },
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
