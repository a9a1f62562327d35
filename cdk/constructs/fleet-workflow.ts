import { Duration } from "aws-cdk-lib";
import type * as iam from "aws-cdk-lib/aws-iam";
import type * as logs from "aws-cdk-lib/aws-logs";
import type * as s3 from "aws-cdk-lib/aws-s3";
import * as sfn from "aws-cdk-lib/aws-stepfunctions";
import { Construct } from "constructs";
import { STATUSES } from "../../lib/names.ts";
import {
  EARLY_ERRORS,
  HARD_TIMEOUT_ERRORS,
  invokeTask,
  parseErrorResult,
  SESSION_ERRORS,
  type TaskSettings,
} from "./workflow-tasks.ts";

/** Properties of {@link FleetWorkflow}. */
export interface FleetWorkflowProps extends TaskSettings {
  readonly stateMachineName: string;
  /** The role it runs as: the caller identity the task handler reports and the policy names. */
  readonly role: iam.IRole;
  /** Where it logs (ERROR level, no execution data). */
  readonly logGroup: logs.ILogGroup;
  /** Host lists (`inputs/…`, input `hostsKey`) and results (`fleet-results/…`). */
  readonly bucket: s3.IBucket;
  /** Whole fleet run. @default Duration.hours(6) */
  readonly timeout?: Duration;
  /** Hosts at once when the input does not say. @default 10 */
  readonly defaultMaxConcurrency?: number;
  /**
   * Ceiling on a fleet's `maxConcurrency`: a larger value, 0 (unlimited to Step Functions) or a
   * non-number in the input becomes this. Keep it at or below the task function's reserved
   * concurrency. @default 50
   */
  readonly maxConcurrencyCeiling?: number;
  /** Percent of child executions allowed to fail when the input does not say. @default 0 */
  readonly defaultToleratedFailurePercentage?: number;
}

/**
 * One command on many hosts (SPEC §2, Distributed Map): hosts inline (`hosts`: results and a
 * per-outcome `summary` in the output) or from the bucket (`hostsKey` under `inputs/`: results
 * written to `fleet-results/`).
 *
 * Host outcomes (`succeeded`, `failed`, `timed_out`, `error`) are data: every child records
 * one and succeeds, so the summary sees every host. Lambda throttles and service errors are
 * retried with full jitter; after their retries they, a task-state timeout or any other task
 * error become the host's `error` outcome (`States.ALL` catch). Only a malformed item (a
 * runtime error outside the task) still fails a child: that is what
 * `ToleratedFailurePercentage` budgets.
 *
 * @example
 * const fleet = new FleetWorkflow(this, "Fleet", {
 *   stateMachineName: "prod-bounded-ssh-Fleet",
 *   handler: taskFunction,
 *   taskTimeout: Duration.seconds(75),
 *   role,
 *   logGroup: new logs.LogGroup(this, "FleetLogs"),
 *   bucket,
 *   maxConcurrencyCeiling: 50,
 * });
 * @throws Error when `maxConcurrencyCeiling` is not an integer >= 1.
 */
export class FleetWorkflow extends Construct {
  readonly stateMachine: sfn.StateMachine;

  /**
   * @param scope the parent construct.
   * @param id its id; the state machine is its default child, so its logical id is the
   *   parent's path plus this id.
   * @param props the task settings, name, role, log group, bucket and concurrency.
   */
  constructor(scope: Construct, id: string, props: FleetWorkflowProps) {
    super(scope, id);
    const ceiling = props.maxConcurrencyCeiling ?? 50;
    if (!Number.isInteger(ceiling) || ceiling < 1) {
      throw new Error(`${this.node.path}: maxConcurrencyCeiling must be an integer >= 1`);
    }
    // ResultWriterV2 renders only with this flag; set here so the construct works in any app.
    this.node.setContext("@aws-cdk/aws-stepfunctions:useDistributedMapResultWriterV2", true);

    const definition = this.inputDefaults(ceiling, props).next(this.hostsSource(props));

    // "Default": the construct is transparent to logical ids (`<parent><id>`), so the state
    // machine and its DistributedMapPolicy kept their ids when they moved out of the one
    // construct that held both workflows.
    this.stateMachine = new sfn.StateMachine(this, "Default", {
      stateMachineName: props.stateMachineName,
      comment: "bounded-ssh: one command on many hosts (Distributed Map)",
      role: props.role,
      definitionBody: sfn.DefinitionBody.fromChainable(definition),
      timeout: props.timeout ?? Duration.hours(6),
      tracingEnabled: true,
      logs: { destination: props.logGroup, level: sfn.LogLevel.ERROR, includeExecutionData: false },
    });
  }

  /**
   * The input's defaults (`maxConcurrency`, `toleratedFailurePercentage`), then the ceiling on
   * `maxConcurrency`: a chain whose end continues to the hosts.
   */
  private inputDefaults(ceiling: number, props: FleetWorkflowProps): sfn.Chain {
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
    return defaults.next(applyDefaults).next(checkConcurrency);
  }

  /** Where the hosts come from: inline `hosts` (results and summary) or `hostsKey` in S3. */
  private hostsSource(props: FleetWorkflowProps): sfn.Choice {
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
        bucket: props.bucket,
        key: sfn.JsonPath.stringAt("$.hostsKey"),
      }),
      resultWriterV2: new sfn.ResultWriterV2({
        bucket: props.bucket,
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
    return source;
  }

  /** One host of a fleet: run, then record a compact outcome whatever happened. */
  private hostProcessor(prefix: string, props: TaskSettings): sfn.IChainable {
    const run = invokeTask(this, `${prefix}RunHost`, props, {
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
    // Everything else — a throttle or Lambda service error after its retries, the task
    // state's own timeout, a permission error — is this host's outcome too (`error` names
    // it): no child fails, so no child failure can fail the run and lose the other results.
    run.addCatch(noResult, { errors: ["States.ALL"], resultPath: "$.error" });
    parsed.end.next(errorHop);
    return run.next(outcome);
  }
}
