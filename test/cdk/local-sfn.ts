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
  /** Wait of each of the task state's retriers, ms, in their order. @default 0 for all */
  retryIntervals: number | number[] = 0,
  /** Receives the execution's `abort` (what StopExecution does), e.g. for a task to call. */
  onStart?: (abort: () => void) => void,
): Promise<LocalExecution> {
  return runLocallyWith(definition, input, {
    handlers: { [taskState]: task },
    retryIntervals: { [taskState]: retryIntervals },
    stateMachineArn,
    ...(onStart ? { onStart } : {}),
  });
}

/** What {@link runLocallyWith} binds and overrides. */
export interface LocalRunOptions {
  /** A local function per Task state name. */
  handlers: Record<string, (event: unknown) => Promise<unknown>>;
  /** Retrier waits (ms) per Task state: the retriers stay, only their waits change. */
  retryIntervals?: Record<string, number | number[]>;
  /** @default localStateMachineArn("Test-SingleHost") */
  stateMachineArn?: string;
  /** Receives the execution's `abort` (what StopExecution does). */
  onStart?: (abort: () => void) => void;
}

/**
 * The general form of {@link runLocally}: any number of Task states bound to local functions,
 * `$$.Execution` and `$$.StateMachine` as AWS sets them, every event collected.
 */
export async function runLocallyWith(
  definition: Record<string, unknown>,
  input: unknown,
  options: LocalRunOptions,
): Promise<LocalExecution> {
  const stateMachineArn = options.stateMachineArn ?? localStateMachineArn("Test-SingleHost");
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
      taskResourceLocalHandlers: options.handlers as never,
      retryIntervalOverrides: options.retryIntervals ?? {},
    },
  });
  options.onStart?.(() => execution.abort());
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

/** What Step Functions reports when Lambda throttles an Invoke (HTTP 429, before the function runs). */
export const THROTTLE_ERROR = "Lambda.TooManyRequestsException";

/**
 * A throttle injector at the Lambda boundary: `throttled(event, attempt)` decides, per call,
 * whether Lambda refuses the invocation (the function never runs) the way Step Functions
 * reports it — Error `Lambda.TooManyRequestsException`, Cause "Rate Exceeded." — instead of
 * handing the event to `task`. `attempt` counts this event's calls from 1 (keyed by `keyOf`).
 *
 * @returns the wrapped task and the number of invocations refused.
 */
export function withThrottles(
  task: (event: unknown) => Promise<unknown>,
  keyOf: (event: unknown) => string,
  throttled: (key: string, attempt: number) => boolean,
): { task: (event: unknown) => Promise<unknown>; refused: () => number } {
  const attempts = new Map<string, number>();
  let refused = 0;
  return {
    refused: () => refused,
    task: async (event) => {
      const key = keyOf(event);
      const attempt = (attempts.get(key) ?? 0) + 1;
      attempts.set(key, attempt);
      if (throttled(key, attempt)) {
        refused++;
        const cause =
          "Rate Exceeded. (Service: Lambda, Status Code: 429, Request ID: local-throttle)";
        throw Object.assign(new Error(cause), { name: THROTTLE_ERROR });
      }
      return task(event);
    },
  };
}
