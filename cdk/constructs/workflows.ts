import {
  ArnFormat,
  type CfnElement,
  Duration,
  RemovalPolicy,
  Stack,
  Validations,
} from "aws-cdk-lib";
import * as iam from "aws-cdk-lib/aws-iam";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import * as logs from "aws-cdk-lib/aws-logs";
import * as s3 from "aws-cdk-lib/aws-s3";
import type * as sfn from "aws-cdk-lib/aws-stepfunctions";
import { Construct } from "constructs";
import { type FleetControl, FleetWorkflow } from "./fleet-workflow.ts";
import { SingleHostWorkflow } from "./single-host-workflow.ts";
import type { LambdaRetrySettings, RetrySettings } from "./workflow-tasks.ts";

export {
  EARLY_ERRORS,
  HARD_TIMEOUT_ERRORS,
  IN_PROGRESS_ERRORS,
  LAMBDA_SERVICE_ERRORS,
  type LambdaRetrySettings,
  type RetrySettings,
  SESSION_ERRORS,
  WORKFLOW_RETRY_ERRORS,
} from "./workflow-tasks.ts";

/** Properties of {@link Workflows}. */
export interface WorkflowsProps {
  /** The task handler (`functions/task.ts`). */
  readonly handler: lambda.IFunction;
  /** Timeout of one task attempt; must exceed the handler's timeout (checked at synth). */
  readonly taskTimeout: Duration;
  /** @default RetrySettings defaults */
  readonly retry?: RetrySettings;
  /** Retry of Lambda's throttling and service errors. @default LambdaRetrySettings defaults */
  readonly lambdaRetry?: LambdaRetrySettings;
  /** Whole fleet run. @default Duration.hours(6) */
  readonly fleetTimeout?: Duration;
  /** Hosts at once when the fleet input does not say: a count or a percentage. @default 10 */
  readonly defaultMaxConcurrency?: FleetControl;
  /**
   * Ceiling on a fleet's `maxConcurrency`: a larger value, 0 (unlimited to Step Functions) or a
   * non-number in the input becomes this. With `taskReservedConcurrency`, it must leave
   * `singleHostHeadroom` of it free (checked at synth).
   * @default taskReservedConcurrency − singleHostHeadroom, or 40 when the task function is
   *   unreserved
   */
  readonly maxConcurrencyCeiling?: number;
  /**
   * Reserved concurrency of the task function (`handler`): what all runs share. Unset when the
   * function is unreserved (then the account's unreserved pool is the limit and nothing is
   * checked). @default unreserved
   */
  readonly taskReservedConcurrency?: number;
  /**
   * Task-function concurrency a fleet at its ceiling leaves for single-host runs.
   * @default {@link defaultSingleHostHeadroom} (a fifth of the reservation, at least 1)
   */
  readonly singleHostHeadroom?: number;
  /** State machine names are this plus `-SingleHost` / `-Fleet`. @default the stack name */
  readonly namePrefix?: string;
  /** Percent of child executions allowed to fail when the input does not say. @default 0 */
  readonly defaultToleratedFailurePercentage?: number;
  /**
   * Failure budget on host outcomes when the fleet input does not say (`maxErrors`): a count or
   * a percentage. @default "100%" (no budget)
   */
  readonly defaultMaxErrors?: FleetControl;
  /** Canary batches when the fleet input does not say (`batches`). @default ["100%"] */
  readonly defaultBatches?: readonly FleetControl[];
  /** Most hosts an inline fleet list may name. @default DEFAULT_INLINE_HOST_LIMIT (400) */
  readonly inlineHostLimit?: number;
  /** Days fleet inputs and results are kept. @default 30 */
  readonly fleetObjectExpiration?: Duration;
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
}

/** Fleet ceiling when the task function is unreserved. */
const UNRESERVED_FLEET_CEILING = 40;

/**
 * Task-function concurrency kept for single-host runs by default: a fifth of the reservation,
 * at least 1 (50 reserved → 10 kept, fleet ceiling 40).
 */
export function defaultSingleHostHeadroom(reserved: number): number {
  return Math.max(1, Math.ceil(reserved / 5));
}

/**
 * The fleet's `maxConcurrency` ceiling, checked against the task function's reserved
 * concurrency: a fleet at its ceiling must leave the single-host headroom, or its own children
 * and every single-host run would meet `Lambda.TooManyRequestsException` (retried, but each
 * retry waits and costs a transition).
 *
 * @throws Error naming both numbers and the fix when the ceiling does not fit.
 */
export function fleetConcurrencyCeiling(
  path: string,
  props: Pick<
    WorkflowsProps,
    "maxConcurrencyCeiling" | "taskReservedConcurrency" | "singleHostHeadroom"
  >,
): number {
  const reserved = props.taskReservedConcurrency;
  if (reserved === undefined) return props.maxConcurrencyCeiling ?? UNRESERVED_FLEET_CEILING;
  const headroom = props.singleHostHeadroom ?? defaultSingleHostHeadroom(reserved);
  if (!Number.isInteger(headroom) || headroom < 1) {
    throw new Error(`${path}: singleHostHeadroom must be an integer >= 1 (got ${headroom})`);
  }
  const ceiling = props.maxConcurrencyCeiling ?? reserved - headroom;
  if (ceiling + headroom > reserved) {
    throw new Error(
      `${path}: the fleet's maxConcurrency ceiling (${ceiling}) must stay below the task function's reserved concurrency (${reserved}) by the single-host headroom (${headroom}): at ${ceiling} a full fleet throttles its own children and every single-host run. Lower the fleet ceiling (deploy config reservedConcurrency.fleet) to at most ${reserved - headroom}, or raise reservedConcurrency.task to at least ${ceiling + headroom}.`,
    );
  }
  return ceiling;
}

/**
 * The two workflows of SPEC §2 and what they share: one host ({@link SingleHostWorkflow}) and a
 * fleet ({@link FleetWorkflow}, Distributed Map), the role each runs as (one per state machine,
 * bound to it), the fleet bucket and their log groups. Each state machine is its own construct; this one composes them.
 *
 * @example
 * const workflows = new Workflows(this, "Workflows", {
 *   handler: taskFunction,
 *   taskTimeout: Duration.seconds(75),
 *   taskReservedConcurrency: 50,
 *   maxConcurrencyCeiling: 40, // 10 left for single-host runs
 * });
 * taskFunction.addEnvironment("BSSH_STATE_MACHINE_ARNS", workflows.stateMachineArns.join(","));
 */
export class Workflows extends Construct {
  readonly singleHost: sfn.StateMachine;
  readonly fleet: sfn.StateMachine;
  /** Fleet host lists (`inputs/…`) and results (`fleet-results/…`). */
  readonly fleetBucket: s3.Bucket;
  readonly singleHostLogs: logs.LogGroup;
  /**
   * The role each state machine runs as, one per workflow: its trust admits Step Functions only
   * for that state machine (`aws:SourceArn`, `aws:SourceAccount`), and it alone of the stack's
   * roles may invoke the task function for that workflow (docs/security.md, "One identity per
   * workflow").
   */
  readonly singleHostRole: iam.Role;
  readonly fleetRole: iam.Role;
  readonly fleetLogs: logs.LogGroup;
  /**
   * ARNs of both state machines, built from their names (no reference to the resources, so a
   * function the workflows invoke can name them without a dependency cycle). The task handler
   * runs only for these (env `BSSH_STATE_MACHINE_ARNS`).
   */
  readonly stateMachineArns: string[];

  /**
   * @param scope the stack.
   * @param id the construct id (`Workflows` in the stack: the logical ids derive from it).
   * @param props the task handler, timeouts, retry and fleet settings.
   * @throws Error when `maxConcurrencyCeiling` is not an integer >= 1.
   */
  constructor(scope: Construct, id: string, props: WorkflowsProps) {
    super(scope, id);
    const prefix = props.namePrefix ?? Stack.of(this).stackName;
    const names = { single: `${prefix}-SingleHost`, fleet: `${prefix}-Fleet` };
    const [singleArn, fleetArn] = [names.single, names.fleet].map((name) =>
      Stack.of(this).formatArn({
        service: "states",
        resource: "stateMachine",
        resourceName: name,
        arnFormat: ArnFormat.COLON_RESOURCE_NAME,
      }),
    ) as [string, string];
    this.stateMachineArns = [singleArn, fleetArn];
    const retention = props.logRetention ?? logs.RetentionDays.ONE_MONTH;
    const task = {
      handler: props.handler,
      taskTimeout: props.taskTimeout,
      retry: props.retry,
      lambdaRetry: props.lambdaRetry,
    };
    const ceiling = fleetConcurrencyCeiling(this.node.path, props);
    // One role per state machine, bound to it by name (the ARN is built from the fixed name, so
    // the trust policy does not reference the state machine that references the role: no
    // cycle). See workflowRole.
    this.singleHostRole = workflowRole(this, "SingleHostRole", singleArn, "single-host");
    this.fleetRole = workflowRole(this, "FleetRole", fleetArn, "fleet");

    this.fleetBucket = new s3.Bucket(this, "FleetBucket", {
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      lifecycleRules: [{ expiration: props.fleetObjectExpiration ?? Duration.days(30) }],
      removalPolicy: RemovalPolicy.RETAIN,
    });
    Validations.of(this.fleetBucket).acknowledge({
      id: "AwsSolutions-S1",
      reason:
        "Holds only fleet host lists and per-host outcome records written by Step Functions; access is already recorded by CloudTrail and the execution history.",
    });

    this.singleHostLogs = this.logGroup("SingleHostLogs", retention);
    this.singleHost = new SingleHostWorkflow(this, "SingleHost", {
      ...task,
      stateMachineName: names.single,
      role: this.singleHostRole,
      logGroup: this.singleHostLogs,
    }).stateMachine;

    this.fleetLogs = this.logGroup("FleetLogs", retention);
    this.fleet = new FleetWorkflow(this, "Fleet", {
      ...task,
      stateMachineName: names.fleet,
      role: this.fleetRole,
      logGroup: this.fleetLogs,
      bucket: this.fleetBucket,
      timeout: props.fleetTimeout,
      defaultMaxConcurrency: props.defaultMaxConcurrency,
      maxConcurrencyCeiling: ceiling,
      defaultToleratedFailurePercentage: props.defaultToleratedFailurePercentage,
      defaultMaxErrors: props.defaultMaxErrors,
      defaultBatches: props.defaultBatches,
      inlineHostLimit: props.inlineHostLimit,
    }).stateMachine;

    this.acknowledgeNagFindings(props.handler);
  }

  /** The cdk-nag findings of the workflows that are by design, each with its reason. */
  private acknowledgeNagFindings(handler: lambda.IFunction): void {
    for (const machine of [this.singleHost, this.fleet]) {
      Validations.of(machine).acknowledge({
        id: "AwsSolutions-SF1",
        reason:
          "ERROR-level logging: ALL would log every state transition of every fleet child; failures (the alarm inputs) are logged, execution data is not (it holds commands and output).",
      });
    }
    const logicalId = (c: Construct): string =>
      Stack.of(this).resolve((c.node.defaultChild as CfnElement).logicalId) as string;
    const fnId = logicalId(handler);
    for (const role of [this.singleHostRole, this.fleetRole]) {
      Validations.of(role).acknowledge({
        id: `AwsSolutions-IAM5[Resource::<${fnId}.Arn>:*]`,
        reason: "CDK grants invoke on the task function's versions and aliases (`<arn>:*`).",
      });
      Validations.of(role).acknowledge({
        id: "AwsSolutions-IAM5[Resource::*]",
        reason: "X-Ray PutTraceSegments/PutTelemetryRecords have no resource-level ARNs.",
      });
    }
    Validations.of(this.fleetRole).acknowledge({
      id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::<${logicalId(this.fleetBucket)}>/*]`,
      reason:
        "ItemReader reads the host list named in the execution input and ResultWriter writes one object per run: keys are only known at run time, the bucket is the workflow's own.",
    });
    const fleetRef = `{"Fn::Select":[6,{"Fn::Split":[":",{"Ref":"${logicalId(this.fleet)}"}]}]}`;
    for (const suffix of [":*", "/*:*"]) {
      Validations.of(this.fleet).acknowledge({
        id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:${fleetRef}${suffix}]`,
        reason:
          "Distributed Map manages its own child executions (map runs); CDK scopes the grant to this state machine's executions.",
      });
    }
  }

  private logGroup(id: string, retention: logs.RetentionDays): logs.LogGroup {
    return new logs.LogGroup(this, id, {
      retention,
      removalPolicy: RemovalPolicy.RETAIN,
    });
  }
}

/**
 * The role of one state machine. Step Functions assumes a state machine's role as the service
 * principal `states.amazonaws.com` and sets the confused-deputy keys `aws:SourceArn` (the state
 * machine's ARN) and `aws:SourceAccount`; the trust policy admits only this state machine (its
 * versions and aliases, `<arn>:<n>`, are the same definition history), so a state machine
 * anyone else creates cannot run as this role even with `iam:PassRole` on it: it fails to
 * assume it. What keeps the definition itself from being replaced (UpdateStateMachine,
 * delete-and-recreate under the same name) is the SCP in docs/security.md.
 */
function workflowRole(scope: Construct, id: string, stateMachineArn: string, what: string) {
  const stack = Stack.of(scope);
  return new iam.Role(scope, id, {
    assumedBy: new iam.ServicePrincipal("states.amazonaws.com", {
      conditions: {
        StringEquals: { "aws:SourceAccount": stack.account },
        ArnLike: { "aws:SourceArn": [stateMachineArn, `${stateMachineArn}:*`] },
      },
    }),
    description: `bounded-ssh ${what} workflow: assumable only by its own state machine (the policy's caller for its tasks)`,
  });
}
