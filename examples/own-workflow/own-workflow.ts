/**
 * A state machine of your own that runs a bounded-ssh task: it builds the request from its
 * input, runs it with `boundedSshTask` (the deployed retry policy, result selection and
 * error parsing), keeps only what it needs of the result, and fails with the SPEC §6 name on
 * a session error or a refusal (`catchBoundedSshErrors`).
 *
 * To deploy it, put its ARN in the bounded-ssh deploy config's `callerStateMachines` and in a
 * policy rule's `callers`, and give it the task function's ARN (stack output
 * `TaskFunctionArn`): see README.md here. `test/cdk/own-workflow.test.ts` synthesizes it and
 * runs it on aws-local-stepfunctions with the real task handler against a real sshd.
 */
import { Duration, Stack, type StackProps } from "aws-cdk-lib";
import * as lambda from "aws-cdk-lib/aws-lambda";
import * as logs from "aws-cdk-lib/aws-logs";
import * as sfn from "aws-cdk-lib/aws-stepfunctions";
import type { Construct } from "constructs";
import { boundedSshTask, catchBoundedSshErrors } from "../../cdk/constructs/bounded-ssh-task.ts";

export interface UptimeCheckStackProps extends StackProps {
  /** The bounded-ssh task function (its stack's output `TaskFunctionArn`). */
  readonly taskFunctionArn: string;
  /** The state machine's name: its ARN is what `callerStateMachines` and the policy name. */
  readonly stateMachineName: string;
  /** Timeout of one task attempt: above the task function's timeout. @default 75 s */
  readonly taskTimeout?: Duration;
}

/** Input `{ host, username }` → output `{ host, uptime: { status, exitCode, stdout } }`. */
export class UptimeCheckStack extends Stack {
  readonly stateMachine: sfn.StateMachine;

  constructor(scope: Construct, id: string, props: UptimeCheckStackProps) {
    super(scope, id, props);
    const taskFunction = lambda.Function.fromFunctionArn(this, "Task", props.taskFunctionArn);
    // Your input is not a request: build one (SPEC §3) beside what you keep.
    const build = new sfn.Pass(this, "BuildRequest", {
      parameters: {
        "host.$": "$.host",
        request: {
          "host.$": "$.host",
          "port.$": "$.port",
          "username.$": "$.username",
          command: "uptime",
          timeoutMs: 5000,
        },
      },
    });
    const check = boundedSshTask(this, "CheckUptime", {
      taskFunction,
      taskTimeout: props.taskTimeout ?? Duration.seconds(75),
      requestPath: "$.request",
      resultSelector: {
        "status.$": "$.status",
        "exitCode.$": "$.exitCode",
        "stdout.$": "$.stdout",
      },
      resultPath: "$.uptime",
    });
    // Session errors fail as `UptimeCommandError` with the parsed result at hand; refusals as
    // `UptimeRequestRefused`; hard timeouts as `UptimeLambdaHardTimeout`.
    catchBoundedSshErrors(this, check, "Uptime");
    const done = new sfn.Pass(this, "Report", {
      parameters: { "host.$": "$.host", "uptime.$": "$.uptime" },
    });
    this.stateMachine = new sfn.StateMachine(this, "UptimeCheck", {
      stateMachineName: props.stateMachineName,
      definitionBody: sfn.DefinitionBody.fromChainable(build.next(check).next(done)),
      // One attempt, its retries and backoff; your own bound.
      timeout: Duration.minutes(15),
      tracingEnabled: true,
      logs: {
        destination: new logs.LogGroup(this, "Logs", { retention: logs.RetentionDays.ONE_MONTH }),
        level: sfn.LogLevel.ERROR,
        includeExecutionData: false,
      },
    });
  }
}
