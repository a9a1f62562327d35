import { Duration } from "aws-cdk-lib";
import type * as iam from "aws-cdk-lib/aws-iam";
import type * as logs from "aws-cdk-lib/aws-logs";
import * as sfn from "aws-cdk-lib/aws-stepfunctions";
import { Construct } from "constructs";
import { boundedSshTask, catchBoundedSshErrors } from "./bounded-ssh-task.ts";
import type { TaskSettings } from "./workflow-tasks.ts";

/** Properties of {@link SingleHostWorkflow}. */
export interface SingleHostWorkflowProps extends TaskSettings {
  readonly stateMachineName: string;
  /** The role it runs as: the caller identity the task handler reports and the policy names. */
  readonly role: iam.IRole;
  /** Where it logs (ERROR level, no execution data). */
  readonly logGroup: logs.ILogGroup;
}

/**
 * One command on one host (SPEC §2): `RunCommand` with the contract's retry; a session error
 * fails the execution with its SPEC §6 name and the result as the cause (`CommandError`), a
 * refusal before a session with `RequestRefused`, a Lambda hard timeout with
 * `LambdaHardTimeout`.
 *
 * @example
 * const single = new SingleHostWorkflow(this, "SingleHost", {
 *   stateMachineName: "prod-bounded-ssh-SingleHost",
 *   handler: taskFunction,
 *   taskTimeout: Duration.seconds(75),
 *   role,
 *   logGroup: new logs.LogGroup(this, "SingleHostLogs"),
 * });
 */
export class SingleHostWorkflow extends Construct {
  readonly stateMachine: sfn.StateMachine;

  /**
   * @param scope the parent construct.
   * @param id its id; the state machine is its default child, so its logical id is the
   *   parent's path plus this id.
   * @param props the task settings, name, role and log group.
   */
  constructor(scope: Construct, id: string, props: SingleHostWorkflowProps) {
    super(scope, id);
    // The caller's input is the request; the execution context beside it comes from `$$`, which
    // the input cannot write: the task handler's caller is this state machine.
    const run = boundedSshTask(this, "RunCommand", {
      taskFunction: props.handler,
      taskTimeout: props.taskTimeout,
      retry: props.retry,
      lambdaRetry: props.lambdaRetry,
    });
    catchBoundedSshErrors(this, run);
    const definition = run.next(new sfn.Succeed(this, "Done"));

    const attempts = (props.retry?.maxAttempts ?? 2) + 1;
    // A throttled attempt never runs the function: only its backoff counts.
    const throttleWaits =
      (props.lambdaRetry?.maxAttempts ?? 6) *
      (props.lambdaRetry?.maxDelay ?? Duration.seconds(60)).toSeconds();
    // "Default": the construct is transparent to logical ids (`<parent><id>`), so the state
    // machine kept its id when it moved out of the one construct that held both workflows.
    this.stateMachine = new sfn.StateMachine(this, "Default", {
      stateMachineName: props.stateMachineName,
      comment: "bounded-ssh: one command on one host",
      role: props.role,
      definitionBody: sfn.DefinitionBody.fromChainable(definition),
      // Every attempt plus its worst backoff, and a margin for the catch path.
      timeout: Duration.seconds(
        attempts * props.taskTimeout.toSeconds() +
          attempts * (props.retry?.maxDelay ?? Duration.seconds(30)).toSeconds() +
          throttleWaits +
          // CommandInProgress: two waits of one task timeout each.
          2 * props.taskTimeout.toSeconds() +
          60,
      ),
      tracingEnabled: true,
      logs: {
        destination: props.logGroup,
        level: sfn.LogLevel.ERROR,
        includeExecutionData: false,
      },
    });
  }
}
