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
import * as sfn from "aws-cdk-lib/aws-stepfunctions";
import * as tasks from "aws-cdk-lib/aws-stepfunctions-tasks";
import { Construct } from "constructs";
import { ERROR_NAMES, type ErrorName, RETRYABLE_ERRORS, STATUSES } from "../../lib/names.ts";

/**
 * Errors thrown before a session exists: their message is not guaranteed to be a JSON result,
 * so the workflow records them without parsing (a parse failure would replace the real error
 * name with `States.Runtime`).
 */
export const EARLY_ERRORS = [
  "ValidationError",
  "TargetNotAllowed",
  "CommandNotAllowed",
  "CallerNotAllowed",
  "CredentialNotAllowed",
  "CommandInProgress",
  "IdempotencyKeyReused",
  "HostQuarantined",
  "CredentialUnavailable",
  "CredentialInvalid",
  "InternalError",
] as const satisfies readonly ErrorName[];

/** Errors whose message is the JSON result (SPEC §6: `Catch` with `ResultPath` keeps it). */
export const SESSION_ERRORS: readonly ErrorName[] = ERROR_NAMES.filter(
  (name) => !(EARLY_ERRORS as readonly string[]).includes(name),
);

/**
 * What the task's `Retry` matches: every retryable error but `HostQuarantined`, whose
 * quarantine lasts minutes (a retry seconds later is refused again; the next fleet run
 * after the TTL tries the host).
 */
export const WORKFLOW_RETRY_ERRORS: readonly ErrorName[] = RETRYABLE_ERRORS.filter(
  (name) => name !== "HostQuarantined",
);

/** How Lambda reports a hard timeout to Step Functions (older runtimes: `Lambda.Unknown`). */
export const HARD_TIMEOUT_ERRORS = ["Sandbox.Timedout", "Lambda.Unknown"] as const;

/** Retry of {@link RETRYABLE_ERRORS}. */
export interface RetrySettings {
  /** @default Duration.seconds(2) */
  readonly interval?: Duration;
  /** Retries after the first attempt. @default 2 */
  readonly maxAttempts?: number;
  /** @default 2 */
  readonly backoffRate?: number;
  /** @default Duration.seconds(30) */
  readonly maxDelay?: Duration;
}

/** Properties of {@link Workflows}. */
export interface WorkflowsProps {
  /** The task handler (`functions/task.ts`). */
  readonly handler: lambda.IFunction;
  /** Timeout of one task attempt; must exceed the handler's timeout (checked at synth). */
  readonly taskTimeout: Duration;
  /** @default RetrySettings defaults */
  readonly retry?: RetrySettings;
  /** Whole fleet run. @default Duration.hours(6) */
  readonly fleetTimeout?: Duration;
  /** Hosts per fleet when the input does not say. @default 10 */
  readonly defaultMaxConcurrency?: number;
  /**
   * Ceiling on a fleet's `maxConcurrency`: a larger value, 0 (unlimited to Step Functions) or a
   * non-number in the input becomes this. Keep it at or below the task function's reserved
   * concurrency. @default 50
   */
  readonly maxConcurrencyCeiling?: number;
  /** State machine names are this plus `-SingleHost` / `-Fleet`. @default the stack name */
  readonly namePrefix?: string;
  /** Percent of child executions allowed to fail when the input does not say. @default 0 */
  readonly defaultToleratedFailurePercentage?: number;
  /** Days fleet inputs and results are kept. @default 30 */
  readonly fleetObjectExpiration?: Duration;
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
}

/**
 * The two workflows of SPEC §2: one host (`RunCommand`) and a fleet (Distributed Map).
 *
 * Host outcomes (`succeeded`, `failed`, `timed_out`, `error`) are data in a fleet: every child
 * records one and succeeds, so the per-outcome summary sees every host. Only failures that leave
 * no outcome (Lambda service errors after their retries, a task-state timeout, a malformed item)
 * fail a child, and those are what `ToleratedFailurePercentage` budgets.
 */
export class Workflows extends Construct {
  readonly singleHost: sfn.StateMachine;
  readonly fleet: sfn.StateMachine;
  /** Fleet host lists (`inputs/…`) and results (`fleet-results/…`). */
  readonly fleetBucket: s3.Bucket;
  readonly singleHostLogs: logs.LogGroup;
  /** The one role both state machines run as: the caller identity the task handler reports. */
  readonly role: iam.Role;
  readonly fleetLogs: logs.LogGroup;
  /**
   * ARNs of both state machines, built from their names (no reference to the resources, so a
   * function the workflows invoke can name them without a dependency cycle). The task handler
   * runs only for these (env `BSSH_STATE_MACHINE_ARNS`).
   */
  readonly stateMachineArns: string[];

  constructor(scope: Construct, id: string, props: WorkflowsProps) {
    super(scope, id);
    const prefix = props.namePrefix ?? Stack.of(this).stackName;
    const names = { single: `${prefix}-SingleHost`, fleet: `${prefix}-Fleet` };
    this.stateMachineArns = [names.single, names.fleet].map((name) =>
      Stack.of(this).formatArn({
        service: "states",
        resource: "stateMachine",
        resourceName: name,
        arnFormat: ArnFormat.COLON_RESOURCE_NAME,
      }),
    );
    const ceiling = props.maxConcurrencyCeiling ?? 50;
    if (!Number.isInteger(ceiling) || ceiling < 1) {
      throw new Error(`${this.node.path}: maxConcurrencyCeiling must be an integer >= 1`);
    }
    // ResultWriterV2 renders only with this flag; set here so the construct works in any app.
    this.node.setContext("@aws-cdk/aws-stepfunctions:useDistributedMapResultWriterV2", true);
    const retention = props.logRetention ?? logs.RetentionDays.ONE_MONTH;
    this.role = new iam.Role(this, "Role", {
      assumedBy: new iam.ServicePrincipal("states.amazonaws.com"),
      description: "bounded-ssh workflows (the policy's caller for Step Functions requests)",
    });

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

    // --- single host -------------------------------------------------------------------------
    // The caller's input is the request; the execution context beside it comes from `$$`, which
    // the input cannot write: the task handler's caller is this state machine.
    const run = this.invoke("RunCommand", props, {
      payload: sfn.TaskInput.fromObject({
        request: sfn.JsonPath.entirePayload,
        execution: EXECUTION_CONTEXT,
      }),
    });
    const keepResult = parseErrorResult(this, "", { error: "$.error" });
    const commandError = new sfn.Fail(this, "CommandError", {
      comment: "Session error: Error is the SPEC §6 name, Cause carries the result",
      errorPath: "$.error.Error",
      causePath: "$.error.Cause",
    });
    const earlyError = new sfn.Fail(this, "RequestRefused", {
      comment: "Refused before a session (validation, policy, credentials, bug)",
      errorPath: "$.error.Error",
      causePath: "$.error.Cause",
    });
    const hardTimeout = new sfn.Fail(this, "LambdaHardTimeout", {
      comment: "The function hit its own timeout: must never happen (alarm DeadlineOverrun)",
      errorPath: "$.error.Error",
      causePath: "$.error.Cause",
    });
    run.addCatch(keepResult.start, { errors: [...SESSION_ERRORS], resultPath: "$.error" });
    run.addCatch(earlyError, { errors: [...EARLY_ERRORS], resultPath: "$.error" });
    run.addCatch(hardTimeout, { errors: [...HARD_TIMEOUT_ERRORS], resultPath: "$.error" });
    keepResult.end.next(commandError);
    const singleDefinition = run.next(new sfn.Succeed(this, "Done"));

    const attempts = (props.retry?.maxAttempts ?? 2) + 1;
    this.singleHostLogs = this.logGroup("SingleHostLogs", retention);
    this.singleHost = new sfn.StateMachine(this, "SingleHost", {
      stateMachineName: names.single,
      comment: "bounded-ssh: one command on one host",
      role: this.role,
      definitionBody: sfn.DefinitionBody.fromChainable(singleDefinition),
      // Every attempt plus its worst backoff, and a margin for the catch path.
      timeout: Duration.seconds(
        attempts * props.taskTimeout.toSeconds() +
          attempts * (props.retry?.maxDelay ?? Duration.seconds(30)).toSeconds() +
          60,
      ),
      tracingEnabled: true,
      logs: {
        destination: this.singleHostLogs,
        level: sfn.LogLevel.ERROR,
        includeExecutionData: false,
      },
    });

    // --- fleet ------------------------------------------------------------------------------
    // Parameters rather than Result + ResultPath: aws-local-stepfunctions 3 builds a circular
    // object for the latter, and both render the same input on AWS.
    const defaults = new sfn.Pass(this, "Defaults", {
      parameters: {
        defaults: {
          maxConcurrency: props.defaultMaxConcurrency ?? 10,
          toleratedFailurePercentage: props.defaultToleratedFailurePercentage ?? 0,
        },
        "input.$": "$",
      },
    });
    // The execution input wins over the defaults, key by key.
    const applyDefaults = new sfn.Pass(this, "ApplyDefaults", {
      parameters: { "run.$": "States.JsonMerge($.defaults, $.input, false)" },
      outputPath: "$.run",
    });
    // A caller cannot widen the fleet: 0 (unlimited), a non-number or anything above the
    // ceiling runs at the ceiling.
    const clamp = new sfn.Pass(this, "ClampConcurrency", {
      parameters: {
        "run.$": `States.JsonMerge($, States.StringToJson('{"maxConcurrency":${ceiling}}'), false)`,
      },
      outputPath: "$.run",
    });
    const checkConcurrency = new sfn.Choice(this, "CheckConcurrency")
      .when(
        sfn.Condition.or(
          sfn.Condition.not(sfn.Condition.isNumeric("$.maxConcurrency")),
          sfn.Condition.numberLessThan("$.maxConcurrency", 1),
          sfn.Condition.numberGreaterThan("$.maxConcurrency", ceiling),
        ),
        clamp,
      )
      .afterwards({ includeOtherwise: true });

    const mapOptions = {
      maxConcurrencyPath: "$.maxConcurrency",
      toleratedFailurePercentagePath: "$.toleratedFailurePercentage",
      // Each host inherits the shared request; its own fields (host, port, hostKey) win.
      itemSelector: {
        "request.$": "States.JsonMerge($.request, $$.Map.Item.Value, false)",
        // The fleet execution's own context, set here where `$$` is the parent's.
        execution: { "id.$": "$$.Execution.Id", "stateMachine.$": "$$.StateMachine.Id" },
      },
      mapExecutionType: sfn.StateMachineType.STANDARD,
    } as const;

    const inline = new sfn.DistributedMap(this, "RunFleetInline", {
      ...mapOptions,
      itemsPath: "$.hosts",
      resultPath: "$.results",
    });
    inline.itemProcessor(this.hostProcessor("Inline", props));
    const groups: Record<string, string> = { "results.$": "$.results" };
    const counts: Record<string, string> = { "total.$": "States.ArrayLength($.results)" };
    for (const status of STATUSES) {
      groups[`${status}.$`] = `$.results[?(@.status == '${status}')]`;
      counts[`${status}.$`] = `States.ArrayLength($.${status})`;
    }
    // On AWS a `[?()]` filter that matches nothing yields `[]` (so a fleet with no failures
    // counts 0); aws-local-stepfunctions 3 raises States.Runtime there instead, which is why
    // the local fleet tests include every outcome (see getmoto/moto#10078 for the AWS dialect).
    const group = new sfn.Pass(this, "GroupByOutcome", { parameters: groups });
    const summarize = new sfn.Pass(this, "Summarize", {
      parameters: { summary: counts, "results.$": "$.results" },
    });

    const fromS3 = new sfn.DistributedMap(this, "RunFleetFromS3", {
      ...mapOptions,
      itemReader: new sfn.S3JsonItemReader({
        bucket: this.fleetBucket,
        key: sfn.JsonPath.stringAt("$.hostsKey"),
      }),
      resultWriterV2: new sfn.ResultWriterV2({
        bucket: this.fleetBucket,
        prefix: "fleet-results",
      }),
      resultPath: "$.resultWriter",
    });
    fromS3.itemProcessor(this.hostProcessor("S3", props));

    // Host lists live under `inputs/`: a caller cannot make the fleet read another
    // execution's results (`fleet-results/`) or anything else in the bucket.
    const badKey = new sfn.Fail(this, "HostsKeyNotAllowed", {
      error: "ValidationError",
      cause: 'hostsKey must name an object under "inputs/" in the fleet bucket',
    });
    const source = new sfn.Choice(this, "HostsSource")
      .when(
        sfn.Condition.and(
          sfn.Condition.isPresent("$.hostsKey"),
          sfn.Condition.isString("$.hostsKey"),
          sfn.Condition.stringMatches("$.hostsKey", "inputs/*"),
        ),
        fromS3,
      )
      .when(sfn.Condition.isPresent("$.hostsKey"), badKey)
      .otherwise(inline.next(group).next(summarize));
    const fleetDefinition = defaults.next(applyDefaults).next(checkConcurrency);
    checkConcurrency.next(source);

    this.fleetLogs = this.logGroup("FleetLogs", retention);
    this.fleet = new sfn.StateMachine(this, "Fleet", {
      stateMachineName: names.fleet,
      comment: "bounded-ssh: one command on many hosts (Distributed Map)",
      role: this.role,
      definitionBody: sfn.DefinitionBody.fromChainable(fleetDefinition),
      timeout: props.fleetTimeout ?? Duration.hours(6),
      tracingEnabled: true,
      logs: { destination: this.fleetLogs, level: sfn.LogLevel.ERROR, includeExecutionData: false },
    });

    for (const machine of [this.singleHost, this.fleet]) {
      Validations.of(machine).acknowledge({
        id: "AwsSolutions-SF1",
        reason:
          "ERROR-level logging: ALL would log every state transition of every fleet child; failures (the alarm inputs) are logged, execution data is not (it holds commands and output).",
      });
    }
    const logicalId = (c: Construct): string =>
      Stack.of(this).resolve((c.node.defaultChild as CfnElement).logicalId) as string;
    const fnId = logicalId(props.handler);
    Validations.of(this.role).acknowledge({
      id: `AwsSolutions-IAM5[Resource::<${fnId}.Arn>:*]`,
      reason: "CDK grants invoke on the task function's versions and aliases (`<arn>:*`).",
    });
    Validations.of(this.role).acknowledge({
      id: "AwsSolutions-IAM5[Resource::*]",
      reason: "X-Ray PutTraceSegments/PutTelemetryRecords have no resource-level ARNs.",
    });
    Validations.of(this.role).acknowledge({
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

  /** The Lambda task with the contract's Retry. */
  private invoke(
    id: string,
    props: WorkflowsProps,
    extra: Pick<tasks.LambdaInvokeProps, "payload" | "resultPath" | "resultSelector">,
  ): tasks.LambdaInvoke {
    const task = new tasks.LambdaInvoke(this, id, {
      lambdaFunction: props.handler,
      // The task result is the handler's return value, exactly as a local run sees it.
      payloadResponseOnly: true,
      taskTimeout: sfn.Timeout.duration(props.taskTimeout),
      ...extra,
    });
    task.addRetry({
      errors: [...WORKFLOW_RETRY_ERRORS],
      interval: props.retry?.interval ?? Duration.seconds(2),
      maxAttempts: props.retry?.maxAttempts ?? 2,
      backoffRate: props.retry?.backoffRate ?? 2,
      maxDelay: props.retry?.maxDelay ?? Duration.seconds(30),
      // Full jitter spreads the retries of a fleet that failed at once (e.g. a bastion blip).
      jitterStrategy: sfn.JitterType.FULL,
    });
    return task;
  }

  /** One host of a fleet: run, then record a compact outcome whatever happened. */
  private hostProcessor(prefix: string, props: WorkflowsProps): sfn.IChainable {
    const run = this.invoke(`${prefix}RunHost`, props, {
      payload: sfn.TaskInput.fromObject({
        request: sfn.JsonPath.objectAt("$.request"),
        execution: sfn.JsonPath.objectAt("$.execution"),
      }),
      // Only what the outcome needs: a full result beside the request could pass the 256 KiB
      // state limit.
      resultSelector: {
        "status.$": "$.status",
        "phase.$": "$.phase",
        "exitCode.$": "$.exitCode",
        "requestId.$": "$.requestId",
      },
      resultPath: "$.result",
    });
    const outcome = new sfn.Pass(this, `${prefix}HostOutcome`, {
      parameters: {
        "host.$": "$.request.host",
        "status.$": "$.result.status",
        "phase.$": "$.result.phase",
        "exitCode.$": "$.result.exitCode",
        "requestId.$": "$.result.requestId",
      },
    });
    const parsed = parseErrorResult(this, prefix, { error: "$.error", request: "$.request" });
    const errorFields = {
      "host.$": "$.request.host",
      "status.$": "$.result.status",
      "phase.$": "$.result.phase",
      "error.$": "$.error.Error",
      "requestId.$": "$.result.requestId",
    };
    // `errorHost`: the host the error is attributed to, as on the audit line (`error.host`):
    // the jump host when the result's `error.hop` is `via`, else the target. `hop` only when
    // the request had a jump host (the result's error carries it). A path that may be absent
    // is read only behind the Choice that checked it.
    const errorOutcome = new sfn.Pass(this, `${prefix}HostErrorOutcome`, {
      parameters: { ...errorFields, "errorHost.$": "$.request.host" },
    });
    const viaErrorOutcome = new sfn.Pass(this, `${prefix}HostErrorOutcomeAtJumpHost`, {
      parameters: { ...errorFields, hop: "via", "errorHost.$": "$.request.via.host" },
    });
    const targetErrorOutcome = new sfn.Pass(this, `${prefix}HostErrorOutcomeAtTarget`, {
      parameters: { ...errorFields, hop: "target", "errorHost.$": "$.request.host" },
    });
    // Nested, not ANDed: a condition on an absent path is a runtime error in Step Functions.
    const whichHop = new sfn.Choice(this, `${prefix}HostErrorWhichHop`)
      .when(sfn.Condition.stringEquals("$.result.error.hop", "via"), viaErrorOutcome)
      .otherwise(targetErrorOutcome);
    const errorHop = new sfn.Choice(this, `${prefix}HostErrorHop`)
      .when(sfn.Condition.isPresent("$.result.error.hop"), whichHop)
      .otherwise(errorOutcome);
    // Without a result: status per SPEC §5 (`error`), the error name says why.
    const noResult = new sfn.Pass(this, `${prefix}HostNoResult`, {
      parameters: {
        "host.$": "$.request.host",
        status: "error",
        phase: null,
        "error.$": "$.error.Error",
        requestId: null,
      },
    });
    run.addCatch(parsed.start, { errors: [...SESSION_ERRORS], resultPath: "$.error" });
    run.addCatch(noResult, {
      errors: [...EARLY_ERRORS, ...HARD_TIMEOUT_ERRORS],
      resultPath: "$.error",
    });
    parsed.end.next(errorHop);
    return run.next(outcome);
  }

  private logGroup(id: string, retention: logs.RetentionDays): logs.LogGroup {
    return new logs.LogGroup(this, id, {
      retention,
      removalPolicy: RemovalPolicy.RETAIN,
    });
  }
}

/** The execution context a task payload carries (SPEC §9: the caller is the state machine). */
const EXECUTION_CONTEXT = {
  id: sfn.JsonPath.stringAt("$$.Execution.Id"),
  stateMachine: sfn.JsonPath.stringAt("$$.StateMachine.Id"),
};

/**
 * Two Pass states that turn a caught Lambda error into `$.result`. Lambda reports a thrown
 * error as `Cause = {"errorType","errorMessage","trace"}` and the handler's message is the JSON
 * result, so it takes two parses; `$.error` (Error + Cause) is kept for the Fail state.
 */
function parseErrorResult(
  scope: Construct,
  prefix: string,
  keep: Record<string, string>,
): { start: sfn.Pass; end: sfn.Pass } {
  const kept = Object.fromEntries(Object.entries(keep).map(([k, v]) => [`${k}.$`, v]));
  const start = new sfn.Pass(scope, `${prefix}ReadErrorEnvelope`, {
    parameters: { ...kept, "envelope.$": "States.StringToJson($.error.Cause)" },
  });
  const end = new sfn.Pass(scope, `${prefix}KeepResult`, {
    parameters: { ...kept, "result.$": "States.StringToJson($.envelope.errorMessage)" },
  });
  start.next(end);
  return { start, end };
}
