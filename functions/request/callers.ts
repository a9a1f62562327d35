/**
 * Who is calling (SPEC §9, verified callers). The policy decides on a caller identity; this
 * module decides whether the event's claim of one can be believed.
 *
 * - API: API Gateway writes `requestContext` (API id, stage, account, the IAM principal). A
 *   principal allowed to invoke the function directly can write any of it, so the event must
 *   name the deployed API, stage and account (passed in by the CDK app); anything else is
 *   `CallerNotAllowed`. The remaining boundary (who may call `lambda:InvokeFunction`) is IAM's:
 *   see docs/security.md.
 * - Step Functions: the payload carries `execution: { id, stateMachine }`, filled by the state
 *   machine from `$$.Execution.Id` and `$$.StateMachine.Id`, never from the caller's input
 *   (which travels under `request`). The caller is the state machine; each has its own
 *   identity. A task without that context is refused. The function cannot see who invoked it
 *   (Lambda's context carries no caller identity), so it cannot check that the state machine
 *   came with its own role: IAM does. Each state machine runs as its own role whose trust
 *   admits only that state machine (`aws:SourceArn`, cdk/constructs/workflows.ts), only those
 *   roles may invoke this function, and their definitions are the deployer's (the SCP in
 *   docs/security.md, "The remaining boundary").
 */
import { CallerNotAllowed } from "../../lib/errors.ts";
import { ENV } from "../../operations/environment.ts";
import type { ApiEvent } from "../http/api-http.ts";

/** The API a function serves: what every event's `requestContext` must name. */
export interface ExpectedApi {
  apiId: string;
  stage: string;
  accountId: string;
}

const refuse = (message: string) => new CallerNotAllowed(message, { phase: "policy" });

const text = (value: unknown): string | undefined =>
  typeof value === "string" && value !== "" ? value : undefined;

/**
 * The IAM principal of an API event, once its `requestContext` matched the deployed API.
 * Throws `CallerNotAllowed` for a missing configuration, a foreign API, stage or account, or an
 * event without a signed principal.
 */
export function verifiedApiCaller(event: unknown, expected: ExpectedApi | undefined): string {
  if (!expected) {
    throw refuse(
      `this function is not configured with the API it serves (${ENV.apiId}, ${ENV.apiStage}, ${ENV.apiAccount}); every request is refused`,
    );
  }
  const ctx = (event as { requestContext?: Record<string, unknown> } | null)?.requestContext;
  if (!ctx || typeof ctx !== "object")
    throw refuse("the event carries no API Gateway requestContext");
  const got = { apiId: text(ctx.apiId), stage: text(ctx.stage), accountId: text(ctx.accountId) };
  for (const key of ["apiId", "stage", "accountId"] as const) {
    if (got[key] !== expected[key]) {
      throw refuse(
        `the event does not come from the deployed API (requestContext.${key} does not match); only API Gateway may invoke this function`,
      );
    }
  }
  const caller = apiPrincipal(event as ApiEvent);
  if (!caller) throw refuse("the request is not signed: IAM authorization reports no principal");
  return caller;
}

/** The IAM principal that signed the request (IAM authorization), from either payload. */
function apiPrincipal(event: ApiEvent): string | undefined {
  const ctx = event.requestContext as {
    identity?: { userArn?: unknown };
    authorizer?: { iam?: { userArn?: unknown } } | null;
  };
  if ((event as { version?: unknown }).version === "2.0") return text(ctx.authorizer?.iam?.userArn);
  return text(ctx.identity?.userArn);
}

/** The Step Functions context a task payload carries. */
export interface TaskExecution {
  /** `$$.Execution.Id`: the execution ARN. */
  id: string;
  /** `$$.StateMachine.Id`: the state machine ARN (the policy's caller). */
  stateMachine: string;
}

/** A verified task event: the caller, its execution and the untrusted request inside. */
export interface VerifiedTask {
  caller: string;
  executionArn: string;
  request: unknown;
}

const STATE_MACHINE_ARN =
  /^arn:(aws[a-z-]*):states:([a-z0-9-]+):(\d{12}):stateMachine:([A-Za-z0-9_-]{1,80})$/;
const EXECUTION_ARN =
  /^arn:(aws[a-z-]*):states:([a-z0-9-]+):(\d{12}):execution:([A-Za-z0-9_-]{1,80}):(\S{1,300})$/;
/** `arn:aws:lambda:<region>:<account>:function:<name>[:qualifier]` */
const FUNCTION_ARN = /^arn:(aws[a-z-]*):lambda:([a-z0-9-]+):(\d{12}):function:/;

/**
 * Checks a task event `{ request, execution: { id, stateMachine } }`. The execution must belong
 * to the state machine, both in the function's own partition, region and account (from
 * `invokedFunctionArn`), and the state machine must be one the deployment names (`allowed`;
 * none configured refuses every task). Throws `CallerNotAllowed`.
 */
export function verifiedTask(
  event: unknown,
  invokedFunctionArn: string | undefined,
  allowed: readonly string[] | undefined,
): VerifiedTask {
  const body = event as { request?: unknown; execution?: Partial<TaskExecution> } | null;
  const execution = body && typeof body === "object" ? body.execution : undefined;
  if (!execution || typeof execution !== "object" || !("request" in (body as object))) {
    throw refuse(
      "a task event is { request, execution: { id, stateMachine } } with execution set by the state machine ($$.Execution.Id, $$.StateMachine.Id); this one carries no execution context",
    );
  }
  const machine = STATE_MACHINE_ARN.exec(String(execution.stateMachine ?? ""));
  const run = EXECUTION_ARN.exec(String(execution.id ?? ""));
  if (!machine || !run) {
    throw refuse(
      "execution.id and execution.stateMachine must be a Step Functions execution and state machine ARN",
    );
  }
  const [, partition, region, account, name] = machine;
  if (run[1] !== partition || run[2] !== region || run[3] !== account || run[4] !== name) {
    throw refuse("execution.id does not belong to execution.stateMachine");
  }
  const own = invokedFunctionArn ? FUNCTION_ARN.exec(invokedFunctionArn) : null;
  if (!own || own[1] !== partition || own[2] !== region || own[3] !== account) {
    throw refuse("the state machine is not in this function's account and region");
  }
  const stateMachine = execution.stateMachine as string;
  if (!allowed || allowed.length === 0) {
    throw refuse(
      `this function is not configured with the state machines it serves (${ENV.stateMachineArns}); every task is refused`,
    );
  }
  if (!allowed.includes(stateMachine)) {
    throw refuse(`state machine ${name} is not one this deployment runs tasks for`);
  }
  return { caller: stateMachine, executionArn: execution.id as string, request: body!.request };
}
