import { Duration } from "aws-cdk-lib";
import type * as iam from "aws-cdk-lib/aws-iam";
import type * as logs from "aws-cdk-lib/aws-logs";
import type * as s3 from "aws-cdk-lib/aws-s3";
import * as sfn from "aws-cdk-lib/aws-stepfunctions";
import { Construct } from "constructs";
import { STATUSES } from "../../lib/names.ts";
import { boundedSshTask } from "./bounded-ssh-task.ts";
import {
  EARLY_ERRORS,
  HARD_TIMEOUT_ERRORS,
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
  /** Hosts at once when the input does not say: a count or a percentage. @default 10 */
  readonly defaultMaxConcurrency?: FleetControl;
  /**
   * Ceiling on a fleet's `maxConcurrency`: a larger value, 0 (unlimited to Step Functions) or a
   * non-number in the input becomes this. Keep it below the task function's reserved
   * concurrency by the single-host headroom (`Workflows` computes and checks it, docs/fleet.md).
   * @default 40 (as `Workflows` for an unreserved task function)
   */
  readonly maxConcurrencyCeiling?: number;
  /** Percent of child executions allowed to fail when the input does not say. @default 0 */
  readonly defaultToleratedFailurePercentage?: number;
  /**
   * Failure budget on host outcomes when the input does not say (`maxErrors`): a count or a
   * percentage of the fleet. @default "100%" (no budget: every batch runs)
   */
  readonly defaultMaxErrors?: FleetControl;
  /**
   * Canary batches when the input does not say (`batches`): sizes, counts or percentages; the
   * last repeats until every host ran. @default ["100%"] (one batch)
   */
  readonly defaultBatches?: readonly FleetControl[];
  /**
   * Most hosts an inline `hosts` list may name; a longer list is refused before any command
   * runs (use `hostsKey`). @default {@link DEFAULT_INLINE_HOST_LIMIT}
   */
  readonly inlineHostLimit?: number;
}

/** A fleet control's value: a count, or a percentage of the fleet's hosts ("20%"). */
export type FleetControl = number | string;

/**
 * The percentages a fleet control may name. ASL (JSONPath) has no multiplication or division,
 * so "p%" of N hosts is computed as the number of chunks when the hosts are cut into chunks of
 * 100/p (`States.ArrayPartition`): ceil(N·p/100), exact only when p divides 100.
 */
export const FLEET_PERCENTAGES = ["1%", "2%", "4%", "5%", "10%", "20%", "25%", "50%", "100%"];

/**
 * Inline host lists longer than this are refused: the run's state carries the outcome records
 * about twice at its peak (the summary's groups beside the records), and must stay inside Step
 * Functions' 256 KiB payload limit. Measured 251,425 bytes at 500 hosts with 60-character
 * names failing through a jump host (the largest records): 400 keeps about 20 % headroom.
 */
export const DEFAULT_INLINE_HOST_LIMIT = 400;

/** Failing outcome records listed in the summary (the first ones, in host order). */
export const FAILURES_LISTED = 20;

/** Why a fleet control was refused (the inline and the S3 checks). */
const CONTROL_CAUSE = `maxErrors and maxConcurrency must be integers >= 0, batches a non-empty list of integers >= 1; a percentage is one of 0% (maxErrors, maxConcurrency), ${FLEET_PERCENTAGES.join(", ")}; nothing ran.`;

/**
 * The Error of a hostsKey fleet child whose host did not succeed while a failure budget
 * applies (its Cause is the outcome record, JSON): what the map's tolerated failure threshold
 * counts, and what ResultWriter keeps in `FAILED_*.json`.
 */
export const HOST_NOT_SUCCEEDED = "HostNotSucceeded";

/** The host outcomes that count against `maxErrors`: every one but `succeeded`. */
const FAILING_STATUSES = STATUSES.filter((s) => s !== "succeeded");

/** One stand-in record per outcome (see ApplyControls). */
const SENTINELS = STATUSES.map((status) => ({ host: "-", status }));

/**
 * A number's JSON text (`States.JsonToString`) at `textPath` shows a fraction or an exponent:
 * ASL has no integer test, so a count is a number whose text has no ".", "e" or "E".
 */
function notWholeText(textPath: string): sfn.Condition {
  return sfn.Condition.or(...notWholeTextCases(textPath));
}

/** {@link notWholeText}'s cases, to join into a wider `or`. */
function notWholeTextCases(textPath: string): sfn.Condition[] {
  return ["*.*", "*e*", "*E*"].map((glob) => sfn.Condition.stringMatches(textPath, glob));
}

/** The value at `path` is one of {@link FLEET_PERCENTAGES}. */
function isFleetPercentage(path: string): sfn.Condition {
  return sfn.Condition.and(
    sfn.Condition.isString(path),
    sfn.Condition.or(...FLEET_PERCENTAGES.map((p) => sfn.Condition.stringEquals(path, p))),
  );
}

/**
 * Checks a fleet control the way the state machine checks the input's (synth-time check of
 * the deploy-config defaults).
 *
 * @param min the smallest count allowed (0 for `maxErrors` and `maxConcurrency`, 1 for a batch).
 * @returns an error message, or undefined when the value is valid.
 */
export function fleetControlProblem(name: string, value: unknown, min: 0 | 1): string | undefined {
  if (typeof value === "number" && Number.isInteger(value) && value >= min) return undefined;
  if (
    typeof value === "string" &&
    (FLEET_PERCENTAGES.includes(value) || (min === 0 && value === "0%"))
  ) {
    return undefined;
  }
  return `${name} must be an integer >= ${min} or one of ${[...(min === 0 ? ["0%"] : []), ...FLEET_PERCENTAGES].join(", ")} (got ${JSON.stringify(value)})`;
}

/**
 * An S3 JSON item reader that reads at most the number of items a path names
 * (`ReaderConfig.MaxItemsPath`, a reference path to a positive integer; CDK renders only a
 * fixed `MaxItems`).
 */
class FirstItemsReader extends sfn.S3JsonItemReader {
  constructor(
    private readonly maxItemsPath: string,
    props: sfn.S3FileItemReaderProps,
  ) {
    super(props);
  }

  override render(queryLanguage?: sfn.QueryLanguage): Record<string, unknown> {
    const rendered = super.render(queryLanguage) as Record<string, unknown>;
    const config = (rendered.ReaderConfig ?? {}) as Record<string, unknown>;
    return { ...rendered, ReaderConfig: { ...config, MaxItemsPath: this.maxItemsPath } };
  }
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
 * `ToleratedFailurePercentage` budgets. The exception: a `hostsKey` fleet under a failure
 * budget (`maxErrors`), whose children fail when their host did not succeed so that the map's
 * own tolerated failure threshold keeps the budget (see `s3Run`).
 *
 * @example
 * const fleet = new FleetWorkflow(this, "Fleet", {
 *   stateMachineName: "prod-bounded-ssh-Fleet",
 *   handler: taskFunction,
 *   taskTimeout: Duration.seconds(75),
 *   role,
 *   logGroup: new logs.LogGroup(this, "FleetLogs"),
 *   bucket,
 *   maxConcurrencyCeiling: 40,
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
    const ceiling = props.maxConcurrencyCeiling ?? 40;
    if (!Number.isInteger(ceiling) || ceiling < 1) {
      throw new Error(`${this.node.path}: maxConcurrencyCeiling must be an integer >= 1`);
    }
    // ResultWriterV2 renders only with this flag; set here so the construct works in any app.
    this.node.setContext("@aws-cdk/aws-stepfunctions:useDistributedMapResultWriterV2", true);

    const problems = [
      fleetControlProblem("defaultMaxErrors", props.defaultMaxErrors ?? 0, 0),
      fleetControlProblem("defaultMaxConcurrency", props.defaultMaxConcurrency ?? 1, 0),
      ...(props.defaultBatches ?? [1]).map((b, i) =>
        fleetControlProblem(`defaultBatches[${i}]`, b, 1),
      ),
      props.defaultBatches?.length === 0
        ? "defaultBatches must name at least one batch"
        : undefined,
    ].filter((p) => p !== undefined);
    if (problems.length > 0) throw new Error(`${this.node.path}: ${problems.join("; ")}`);
    const limit = props.inlineHostLimit ?? DEFAULT_INLINE_HOST_LIMIT;
    if (!Number.isInteger(limit) || limit < 1) {
      throw new Error(`${this.node.path}: inlineHostLimit must be an integer >= 1`);
    }

    // Canary batches on an S3 list (see s3Canary): the input's own `batches` only (the deploy
    // config's default batches shape inline fleets), kept aside before the defaults fill in
    // `batches`. A failure budget (maxErrors) on an S3 list is the map's own tolerated failure
    // threshold (see s3Run), so it is the one budget: every child that did not succeed
    // counts against it, malformed items included, and an explicit toleratedFailurePercentage
    // beside it is refused.
    const s3Batches = new sfn.Pass(this, "S3CanaryBatches", {
      parameters: { "sizes.$": "$.batches" },
      resultPath: "$.s3Canary",
    });
    const s3TwoBudgets = new sfn.Fail(this, "S3BudgetConflict", {
      error: "ValidationError",
      cause:
        'a hostsKey fleet with a failure budget (maxErrors other than "100%") counts every child that did not succeed against it, malformed items included: toleratedFailurePercentage does not apply then. Give one of maxErrors and toleratedFailurePercentage; nothing ran.',
    });
    const defaults = this.inputDefaults(props);
    defaults.next(this.hostsSource(ceiling, props));
    // Nested, not ANDed: a condition on an absent path is a runtime error in Step Functions.
    const explicitBudget = new sfn.Choice(this, "CheckS3ExplicitBudget")
      .when(
        sfn.Condition.and(
          sfn.Condition.isString("$.maxErrors"),
          sfn.Condition.stringEquals("$.maxErrors", "100%"),
        ),
        defaults,
      )
      .otherwise(s3TwoBudgets);
    // Without maxErrors in the input, the deploy config's default (known at synth) decides.
    const defaultBudget = (props.defaultMaxErrors ?? "100%") !== "100%";
    const twoBudgetsByDefault = defaultBudget
      ? new sfn.Fail(this, "S3DefaultBudgetConflict", {
          error: "ValidationError",
          cause: `this deployment gives every hostsKey fleet a failure budget (fleet.maxErrors ${JSON.stringify(props.defaultMaxErrors)} in its deploy config), which counts every child that did not succeed, malformed items included: toleratedFailurePercentage does not apply then. To budget only malformed items, also give "maxErrors": "100%" (no budget on host outcomes); nothing ran.`,
        })
      : defaults;
    const twoBudgets = new sfn.Choice(this, "CheckS3Budgets")
      .when(sfn.Condition.isPresent("$.maxErrors"), explicitBudget)
      .otherwise(twoBudgetsByDefault);
    s3Batches.next(
      new sfn.Choice(this, "CheckS3CanaryBudgets")
        .when(sfn.Condition.isPresent("$.toleratedFailurePercentage"), twoBudgets)
        .otherwise(defaults),
    );
    // `s3Canary` is the state's own field: an input naming it is refused, not obeyed.
    const internal = new sfn.Fail(this, "InternalFieldInInput", {
      error: "ValidationError",
      cause: "s3Canary is set by the fleet itself from batches; give batches instead; nothing ran.",
    });
    const definition = new sfn.Choice(this, "CheckControlsSource")
      .when(sfn.Condition.isPresent("$.s3Canary"), internal)
      .when(
        sfn.Condition.and(
          sfn.Condition.isPresent("$.hostsKey"),
          sfn.Condition.isPresent("$.batches"),
        ),
        s3Batches,
      )
      .when(
        sfn.Condition.and(
          sfn.Condition.isPresent("$.hostsKey"),
          sfn.Condition.isPresent("$.toleratedFailurePercentage"),
        ),
        twoBudgets,
      )
      .otherwise(defaults);

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
   * The input's defaults (`maxConcurrency`, `toleratedFailurePercentage`, `maxErrors`,
   * `batches`): a chain whose end continues to the hosts.
   */
  private inputDefaults(props: FleetWorkflowProps): sfn.Chain {
    // Parameters rather than Result + ResultPath: aws-local-stepfunctions 3 builds a circular
    // object for the latter, and both render the same input on AWS.
    const defaults = new sfn.Pass(this, "Defaults", {
      parameters: {
        defaults: {
          maxConcurrency: props.defaultMaxConcurrency ?? 10,
          toleratedFailurePercentage: props.defaultToleratedFailurePercentage ?? 0,
          maxErrors: props.defaultMaxErrors ?? "100%",
          batches: props.defaultBatches ?? ["100%"],
        },
        "input.$": "$",
      },
    });
    // The execution input wins over the defaults, key by key.
    const applyDefaults = new sfn.Pass(this, "ApplyDefaults", {
      parameters: { "run.$": "States.JsonMerge($.defaults, $.input, false)" },
      outputPath: "$.run",
    });
    return defaults.next(applyDefaults);
  }

  /**
   * The ceiling on `maxConcurrency` (states named `<prefix>CheckConcurrency`,
   * `<prefix>ClampConcurrency`): 0 (unlimited to Step Functions), a non-number or anything above
   * the ceiling runs at the ceiling. A caller cannot widen the fleet.
   */
  private clampConcurrency(prefix: string, ceiling: number, next: sfn.IChainable): sfn.Choice {
    const clamp = new sfn.Pass(this, `${prefix}ClampConcurrency`, {
      parameters: {
        "run.$": `States.JsonMerge($, States.StringToJson('{"maxConcurrency":${ceiling}}'), false)`,
      },
      outputPath: "$.run",
    });
    clamp.next(next);
    return new sfn.Choice(this, `${prefix}CheckConcurrency`)
      .when(
        sfn.Condition.or(
          sfn.Condition.not(sfn.Condition.isNumeric("$.maxConcurrency")),
          sfn.Condition.numberLessThan("$.maxConcurrency", 1),
          sfn.Condition.numberGreaterThan("$.maxConcurrency", ceiling),
        ),
        clamp,
      )
      .otherwise(next);
  }

  /** Where the hosts come from: inline `hosts` (batches, budget, summary) or `hostsKey` in S3. */
  private hostsSource(ceiling: number, props: FleetWorkflowProps): sfn.Choice {
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

    const fromS3 = this.s3Fleet(mapOptions, props);
    const inline = this.inlineFleet(ceiling, mapOptions, props, fromS3.afterCanary);
    // The canary's hosts (read from the list) run through the inline fleet's checks and loop.
    fromS3.canaryHosts.next(inline.count);
    // Host lists live under `inputs/`: a caller cannot make the fleet read another
    // execution's results (`fleet-results/`) or anything else in the bucket.
    const badKey = new sfn.Fail(this, "HostsKeyNotAllowed", {
      error: "ValidationError",
      cause: 'hostsKey must name an object under "inputs/" in the fleet bucket',
    });
    return new sfn.Choice(this, "HostsSource")
      .when(
        sfn.Condition.and(
          sfn.Condition.isPresent("$.hostsKey"),
          sfn.Condition.isString("$.hostsKey"),
          sfn.Condition.stringMatches("$.hostsKey", "inputs/*"),
        ),
        this.clampConcurrency("S3", ceiling, fromS3.entry),
      )
      .when(sfn.Condition.isPresent("$.hostsKey"), badKey)
      .otherwise(inline.entry);
  }

  /**
   * A hostsKey fleet: one Distributed Map reading the list from S3 (ItemReader) and writing
   * every child's result to `fleet-results/` (ResultWriter), after a canary when the input
   * gives `batches` (see {@link s3Canary}).
   *
   * @returns the entry, the state that hands the canary's hosts to the inline fleet, and what
   *   runs after the canary's summary.
   */
  private s3Fleet(
    mapOptions: Omit<sfn.DistributedMapProps, "itemsPath" | "resultPath">,
    props: FleetWorkflowProps,
  ): { entry: sfn.IChainable; canaryHosts: sfn.Pass; afterCanary: sfn.IChainable } {
    const plain = this.s3Run("", mapOptions, props);
    const rest = this.s3Run("Rest", mapOptions, props);
    const canary = this.s3Canary(props, rest);
    // One batch is no canary (it is "the rest": the whole list), but it is checked like any
    // batch; an empty list or anything but a list is refused, as on an inline fleet.
    const badBatches = new sfn.Fail(this, "S3BatchesInvalid", {
      error: "ValidationError",
      cause: CONTROL_CAUSE,
    });
    const single = new sfn.Pass(this, "S3SingleBatch", {
      parameters: {
        "spec.$": "$.s3Canary.sizes[0]",
        "text.$": "States.JsonToString($.s3Canary.sizes[0])",
      },
      resultPath: "$.s3CanaryCheck",
    });
    single.next(
      new sfn.Choice(this, "S3SingleBatchValid")
        .when(
          sfn.Condition.and(
            sfn.Condition.isNumeric("$.s3CanaryCheck.spec"),
            sfn.Condition.numberGreaterThanEquals("$.s3CanaryCheck.spec", 1),
            sfn.Condition.not(notWholeText("$.s3CanaryCheck.text")),
          ),
          plain,
        )
        .when(isFleetPercentage("$.s3CanaryCheck.spec"), plain)
        .otherwise(badBatches),
    );
    const entry = new sfn.Choice(this, "S3CanaryRequested")
      .when(sfn.Condition.isPresent("$.s3Canary.sizes[1]"), canary.entry)
      .when(sfn.Condition.isPresent("$.s3Canary.sizes[0]"), single)
      .when(sfn.Condition.isPresent("$.s3Canary"), badBatches)
      .otherwise(plain);
    return { entry, canaryHosts: canary.canaryHosts, afterCanary: canary.afterCanary };
  }

  /**
   * Canary batches on a hostsKey fleet: every batch but the last is the canary, a count each
   * (a percentage needs the list's length, which the state does not have before the list is
   * read), K hosts in all, K at most the inline limit. The first K items are read from the
   * list (a Distributed Map with `ReaderConfig.MaxItemsPath` whose children only return their
   * item) and run through the inline fleet (its checks, batch loop, budget and summary). If
   * the budget held, the rest of the list runs from S3 ({@link s3Run} "Rest": the same map
   * over the whole list, whose children for the first K items return a `skipped` marker
   * without a task), under what is left of a count budget.
   */
  private s3Canary(
    props: FleetWorkflowProps,
    rest: sfn.IChainable,
  ): { entry: sfn.IChainable; canaryHosts: sfn.Pass; afterCanary: sfn.IChainable } {
    const limit = props.inlineHostLimit ?? DEFAULT_INLINE_HOST_LIMIT;
    const invalid = new sfn.Fail(this, "S3CanaryInvalid", {
      error: "ValidationError",
      cause: CONTROL_CAUSE,
    });
    const percentage = new sfn.Fail(this, "S3CanaryPercentage", {
      error: "ValidationError",
      cause:
        'a hostsKey fleet\'s canary batches (every batch but the last) must be counts: a percentage needs the number of hosts, which a list in S3 does not give before it is read. Give counts, e.g. batches [1, 5, "100%"]; nothing ran.',
    });
    const tooLargeCause = `a hostsKey fleet's canary batches (every batch but the last) add up to more than ${limit} hosts, the most the canary can carry and summarize inline; nothing ran. Give smaller canary batches; the last batch is the rest of the list.`;
    const tooLarge = new sfn.Fail(this, "S3CanaryTooLarge", {
      error: "ValidationError",
      cause: tooLargeCause,
    });
    // Inside the size check's item processor (a state belongs to one graph).
    const batchTooLarge = new sfn.Fail(this, "S3CanaryBatchTooLarge", {
      error: "ValidationError",
      cause: tooLargeCause,
    });
    const last = new sfn.Pass(this, "S3CanaryLast", {
      parameters: { "last.$": "States.MathAdd(States.ArrayLength($.s3Canary.sizes), -1)" },
      resultPath: "$.s3CanaryCheck",
    });
    // One batch size to `{range: [1..n]}` (a canary batch) or `{}` (the last: the rest).
    const sizes = new sfn.Map(this, "S3CanarySizes", {
      itemsPath: "$.s3Canary.sizes",
      itemSelector: {
        "spec.$": "$$.Map.Item.Value",
        "index.$": "$$.Map.Item.Index",
        "last.$": "$.s3CanaryCheck.last",
      },
      resultPath: "$.s3CanaryCheck.sizes",
    });
    const text = new sfn.Pass(this, "S3CanarySizeText", {
      parameters: {
        "spec.$": "$.spec",
        "index.$": "$.index",
        "last.$": "$.last",
        "text.$": "States.JsonToString($.spec)",
      },
    });
    const theRest = new sfn.Pass(this, "S3CanaryRestBatch", { parameters: { range: [] } });
    const canaryBatch = new sfn.Pass(this, "S3CanaryBatch", {
      parameters: { "count.$": "$.spec", "range.$": "States.ArrayRange(1, $.spec, 1)" },
    });
    const isLast = sfn.Condition.numberEqualsJsonPath("$.index", "$.last");
    const isCount = sfn.Condition.and(
      sfn.Condition.isNumeric("$.spec"),
      sfn.Condition.numberGreaterThanEquals("$.spec", 1),
    );
    text.next(
      new sfn.Choice(this, "S3CanarySize")
        .when(sfn.Condition.and(sfn.Condition.isNumeric("$.spec"), notWholeText("$.text")), invalid)
        .when(
          sfn.Condition.and(
            sfn.Condition.isString("$.spec"),
            sfn.Condition.or(
              ...FLEET_PERCENTAGES.map((p) => sfn.Condition.stringEquals("$.spec", p)),
            ),
            isLast,
          ),
          theRest,
        )
        .when(sfn.Condition.and(isCount, isLast), theRest)
        .when(isFleetPercentage("$.spec"), percentage)
        .when(
          sfn.Condition.and(isCount, sfn.Condition.numberGreaterThan("$.spec", limit)),
          batchTooLarge,
        )
        .when(isCount, canaryBatch)
        .otherwise(invalid),
    );
    sizes.itemProcessor(text);
    // `[*].count` skips the last (it has none): the canary's batches, as counts.
    const flatten = new sfn.Pass(this, "S3CanaryFlatten", {
      parameters: {
        "ranges.$": "$.s3CanaryCheck.sizes[*].range[*]",
        "batches.$": "$.s3CanaryCheck.sizes[*].count",
      },
      resultPath: "$.s3CanaryCheck",
    });
    const total = new sfn.Pass(this, "S3CanaryTotal", {
      parameters: {
        "k.$": "States.ArrayLength($.s3CanaryCheck.ranges)",
        "batches.$": "$.s3CanaryCheck.batches",
      },
      resultPath: "$.s3CanaryCheck",
    });
    // The first K items of the list, inline: children that only return their item.
    const read = new sfn.DistributedMap(this, "ReadCanaryHosts", {
      itemReader: new FirstItemsReader("$.s3CanaryCheck.k", {
        bucket: props.bucket,
        key: sfn.JsonPath.stringAt("$.hostsKey"),
      }),
      mapExecutionType: sfn.StateMachineType.EXPRESS,
      maxConcurrencyPath: "$.maxConcurrency",
      resultPath: "$.s3CanaryCheck.hosts",
    });
    read.itemProcessor(new sfn.Pass(this, "CanaryHostItem"));
    // The inline fleet's input; `after` says where its summary goes.
    const canaryHosts = new sfn.Pass(this, "S3CanaryInline", {
      parameters: {
        "request.$": "$.request",
        "hosts.$": "$.s3CanaryCheck.hosts",
        "batches.$": "$.s3CanaryCheck.batches",
        "maxErrors.$": "$.maxErrors",
        "maxConcurrency.$": "$.maxConcurrency",
        "toleratedFailurePercentage.$": "$.toleratedFailurePercentage",
        after: {
          next: "s3",
          "request.$": "$.request",
          "hostsKey.$": "$.hostsKey",
          "maxErrors.$": "$.maxErrors",
          "maxConcurrency.$": "$.maxConcurrency",
          "toleratedFailurePercentage.$": "$.toleratedFailurePercentage",
          "skip.$": "$.s3CanaryCheck.k",
        },
      },
    });
    last.next(sizes).next(flatten).next(total);
    total.next(
      new sfn.Choice(this, "S3CanaryLimit")
        .when(sfn.Condition.numberGreaterThan("$.s3CanaryCheck.k", limit), tooLarge)
        .otherwise(read),
    );
    read.next(canaryHosts);

    // After the canary's summary (`canary`): stop, or the rest from S3.
    const stopped = new sfn.Pass(this, "S3CanaryStopped", {
      parameters: {
        ended: "maxErrorsExceeded",
        stoppedBy: "canary",
        "hostsKey.$": "$.after.hostsKey",
        "canary.$": "$.canary",
        rest: "never started",
      },
    });
    const restInput = new sfn.Pass(this, "S3RestInput", {
      parameters: {
        "request.$": "$.after.request",
        "hostsKey.$": "$.after.hostsKey",
        "maxErrors.$": "$.after.maxErrors",
        "maxConcurrency.$": "$.after.maxConcurrency",
        "toleratedFailurePercentage.$": "$.after.toleratedFailurePercentage",
        "skip.$": "$.after.skip",
        "canary.$": "$.canary",
      },
    });
    restInput.next(rest);
    const afterCanary = new sfn.Choice(this, "CanaryPassed")
      .when(sfn.Condition.stringEquals("$.canary.ended", "maxErrorsExceeded"), stopped)
      .otherwise(restInput);
    return { entry: last, canaryHosts, afterCanary };
  }

  /**
   * One S3 map run over the list (states named as before for the plain run; prefixed `Rest`
   * for the run after a canary, whose children skip the first `$.skip` items). Without a
   * failure budget (`maxErrors` "100%", the default) every child records its host's outcome
   * and succeeds. With one, a child whose host did not succeed ends FAILED
   * (`HostNotSucceeded`, its outcome record as the Cause) and the map runs with Step
   * Functions' own tolerated failure threshold (`ToleratedFailureCount` for a count,
   * `ToleratedFailurePercentage` for a percentage of the list): once more children failed
   * than that, Step Functions stops starting children and the map fails with
   * `States.ExceedToleratedFailureThreshold`, caught here into a bounded summary. After a
   * canary, a count budget is what the canary left of it.
   */
  private s3Run(
    prefix: "" | "Rest",
    mapOptions: Omit<sfn.DistributedMapProps, "itemsPath" | "resultPath">,
    props: FleetWorkflowProps,
  ): sfn.IChainable {
    const afterCanary = prefix === "Rest";
    const name = (id: string) => `${prefix}${id}`;
    const s3Map = (
      id: string,
      processorPrefix: string,
      threshold: Partial<sfn.DistributedMapProps>,
      budget: boolean,
    ) => {
      const map = new sfn.DistributedMap(this, id, {
        ...mapOptions,
        ...threshold,
        ...(afterCanary
          ? {
              itemSelector: {
                ...mapOptions.itemSelector,
                "index.$": "$$.Map.Item.Index",
                "skip.$": "$.skip",
              },
            }
          : {}),
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
      const host = this.hostProcessor(processorPrefix, props, budget);
      if (!afterCanary) {
        map.itemProcessor(host);
        return map;
      }
      // The canary's hosts ran already: their children return a marker, no task, and
      // succeed (they never count against the budget).
      const skipped = new sfn.Pass(this, `${processorPrefix}CanaryHostSkipped`, {
        parameters: { skipped: "canary", "host.$": "$.request.host", "index.$": "$.index" },
      });
      map.itemProcessor(
        new sfn.Choice(this, `${processorPrefix}SkipCanaryHost`)
          .when(sfn.Condition.numberLessThanJsonPath("$.index", "$.skip"), skipped)
          .otherwise(host),
      );
      return map;
    };
    const unbudgeted = s3Map(
      afterCanary ? "RunRestFromS3" : "RunFleetFromS3",
      name("S3"),
      {},
      false,
    );
    const byCount = s3Map(
      afterCanary ? "RunRestFromS3WithBudget" : "RunFleetFromS3WithBudget",
      name("S3Budget"),
      // 100 %: never exceeded, so the count is the one threshold (either one exceeded
      // fails the map run).
      {
        toleratedFailurePercentagePath: undefined,
        toleratedFailurePercentage: 100,
        toleratedFailureCountPath: afterCanary ? "$.budget.left" : "$.maxErrors",
      },
      true,
    );
    const byPercent = s3Map(
      afterCanary ? "RunRestFromS3WithPercentBudget" : "RunFleetFromS3WithPercentBudget",
      name("S3PercentBudget"),
      { toleratedFailurePercentagePath: "$.budget.percent" },
      true,
    );
    // The budget was exceeded: Step Functions stopped starting children. The results of the
    // children that ran are under fleet-results/<map run id>/ (ListMapRuns names the map run).
    const exceeded = new sfn.Pass(this, name("S3BudgetExceeded"), {
      parameters: {
        ended: "maxErrorsExceeded",
        "maxErrors.$": "$.maxErrors",
        "hostsKey.$": "$.hostsKey",
        "error.$": "$.budgetError",
        results: { bucket: props.bucket.bucketName, prefix: "fleet-results/" },
        ...(afterCanary ? { "canary.$": "$.canary" } : {}),
      },
    });
    for (const map of [byCount, byPercent]) {
      map.addCatch(exceeded, {
        errors: ["States.ExceedToleratedFailureThreshold"],
        resultPath: "$.budgetError",
      });
    }
    const invalid = new sfn.Fail(this, name("S3ControlInvalid"), {
      error: "ValidationError",
      cause: CONTROL_CAUSE,
    });
    const percent = new sfn.Pass(this, name("S3BudgetPercent"), {
      parameters: {
        "percent.$":
          "States.StringToJson(States.ArrayGetItem(States.StringSplit($.maxErrors, '%'), 0))",
      },
      resultPath: "$.budget",
    });
    percent.next(byPercent);
    // After a canary, a count budget is what the canary's errors left of it (ASL has no
    // subtraction: −e is the JSON text "-e").
    const countBudget = afterCanary
      ? new sfn.Pass(this, "RestS3BudgetLeft", {
          parameters: {
            "left.$":
              "States.MathAdd($.maxErrors, States.StringToJson(States.Format('-{}', $.canary.errors)))",
          },
          resultPath: "$.budget",
        })
      : undefined;
    countBudget?.next(byCount);
    // A count must be an integer (ASL has no integer test: its JSON text has no "." or "e").
    const asText = new sfn.Pass(this, name("S3BudgetText"), {
      parameters: { "text.$": "States.JsonToString($.maxErrors)" },
      resultPath: "$.budget",
    });
    asText.next(
      new sfn.Choice(this, name("S3BudgetCount"))
        .when(
          sfn.Condition.or(
            ...notWholeTextCases("$.budget.text"),
            sfn.Condition.numberLessThan("$.maxErrors", 0),
          ),
          invalid,
        )
        .otherwise(countBudget ?? byCount),
    );
    const isString = sfn.Condition.isString("$.maxErrors");
    return new sfn.Choice(this, name("S3Budget"))
      .when(
        sfn.Condition.and(isString, sfn.Condition.stringEquals("$.maxErrors", "100%")),
        unbudgeted,
      )
      .when(sfn.Condition.isNumeric("$.maxErrors"), asText)
      .when(
        sfn.Condition.and(
          isString,
          sfn.Condition.or(
            ...["0%", ...FLEET_PERCENTAGES].map((p) =>
              sfn.Condition.stringEquals("$.maxErrors", p),
            ),
          ),
        ),
        percent,
      )
      .otherwise(invalid);
  }

  /**
   * An inline fleet: checked whole before any host starts (list length against the inline
   * limit, every control resolved to a count), then one Distributed Map per batch. After each
   * batch the failure budget is checked on host outcomes (every outcome but `succeeded`
   * counts); once exceeded, no further batch starts and the summary names the hosts never
   * started.
   */
  private inlineFleet(
    ceiling: number,
    mapOptions: Omit<sfn.DistributedMapProps, "itemsPath" | "resultPath">,
    props: FleetWorkflowProps,
    afterCanary: sfn.IChainable,
  ): { entry: sfn.IChainable; count: sfn.Pass } {
    const limit = props.inlineHostLimit ?? DEFAULT_INLINE_HOST_LIMIT;
    const noHosts = new sfn.Fail(this, "HostsMissing", {
      error: "ValidationError",
      cause:
        "a fleet needs hosts (an inline list of at least one host) or hostsKey (inputs/… in the fleet bucket)",
    });
    const tooMany = new sfn.Fail(this, "InlineFleetTooLarge", {
      error: "ValidationError",
      cause: `hosts lists more than ${limit} hosts, the most an inline fleet can carry and summarize inside the 256 KiB Step Functions payload limit; nothing ran. Put the list in the fleet bucket under inputs/ and start the fleet with hostsKey: results then go to S3 (ResultWriter).`,
    });
    const badControl = new sfn.Fail(this, "FleetControlInvalid", {
      error: "ValidationError",
      cause: CONTROL_CAUSE,
    });
    const count = new sfn.Pass(this, "CountHosts", {
      parameters: { "total.$": "States.ArrayLength($.hosts)" },
      resultPath: "$.fleet",
    });
    // Every control as one list: [maxErrors, maxConcurrency, ...batches], resolved by one Map.
    const gather = new sfn.Pass(this, "GatherControls", {
      parameters: {
        "nested.$": "States.Array(States.Array($.maxErrors, $.maxConcurrency), $.batches)",
      },
      resultPath: "$.controls",
    });
    const flatten = new sfn.Pass(this, "ListControls", {
      parameters: { "specs.$": "$.controls.nested[*][*]" },
      resultPath: "$.controls",
    });
    const resolve = new sfn.Map(this, "ResolveControls", {
      itemsPath: "$.controls.specs",
      itemSelector: {
        "spec.$": "$$.Map.Item.Value",
        "index.$": "$$.Map.Item.Index",
        "hosts.$": "$.hosts",
      },
      resultPath: "$.controls.counts",
    });
    resolve.itemProcessor(
      this.controlResolver(
        new sfn.Fail(this, "ControlInvalid", { error: "ValidationError", cause: CONTROL_CAUSE }),
      ),
    );
    const apply = new sfn.Pass(this, "ApplyControls", {
      parameters: {
        "request.$": "$.request",
        "pending.$": "$.hosts",
        "total.$": "$.fleet.total",
        "toleratedFailurePercentage.$": "$.toleratedFailurePercentage",
        "maxErrors.$": "$.controls.counts[0].count",
        "maxConcurrency.$": "$.controls.counts[1].count",
        "sizes.$": "$.controls.counts[2:].count",
        errors: 0,
        batch: 0,
        results: [],
        // One record per outcome, put before the records whenever they are counted: a `[?()]`
        // filter then always matches (AWS yields [] for no match; the local interpreter fails)
        // and each count is its length less 1.
        sentinels: SENTINELS,
        // Where the summary goes: the output, or the rest of a hostsKey list after its canary.
        "after.$": "$.after",
      },
    });

    const loop = this.batchLoop(mapOptions, props, afterCanary);
    gather
      .next(flatten)
      .next(resolve)
      .next(apply)
      .next(this.clampConcurrency("", ceiling, loop));
    count.next(
      new sfn.Choice(this, "InlineHostLimit")
        .when(sfn.Condition.numberGreaterThan("$.fleet.total", limit), tooMany)
        .when(sfn.Condition.not(sfn.Condition.isPresent("$.batches[0]")), badControl)
        .otherwise(gather),
    );
    // An inline input's summary is the output (a caller's own `after` is overwritten).
    const entry = new sfn.Pass(this, "InlineFleet", {
      parameters: { next: "output" },
      resultPath: "$.after",
    });
    entry.next(
      new sfn.Choice(this, "CheckInlineHosts")
        .when(sfn.Condition.not(sfn.Condition.isPresent("$.hosts[0]")), noHosts)
        .otherwise(count),
    );
    return { entry, count };
  }

  /**
   * One control (`{spec, index, hosts}`; index 0 and 1 are `maxErrors` and `maxConcurrency`,
   * which may be 0) to `{count}`: an integer as it is, "p%" as ceil(N·p/100).
   */
  private controlResolver(invalid: sfn.Fail): sfn.IChainable {
    const asIs = new sfn.Pass(this, "ControlCount", { parameters: { "count.$": "$.spec" } });
    const zero = new sfn.Pass(this, "ControlZero", { parameters: { count: 0 } });
    const percent = new sfn.Pass(this, "ControlPercent", {
      parameters: {
        "p.$": "States.StringToJson(States.ArrayGetItem(States.StringSplit($.spec, '%'), 0))",
        "hosts.$": "$.hosts",
      },
    });
    // 100/p for a divisor p of 100: the number of chunks of size p in 1..100.
    const chunk = new sfn.Pass(this, "ControlChunk", {
      parameters: {
        "chunk.$": "States.ArrayLength(States.ArrayPartition(States.ArrayRange(1, 100, 1), $.p))",
        "hosts.$": "$.hosts",
      },
    });
    const ofFleet = new sfn.Pass(this, "ControlOfFleet", {
      parameters: { "count.$": "States.ArrayLength(States.ArrayPartition($.hosts, $.chunk))" },
    });
    percent.next(chunk).next(ofFleet);
    const mayBeZero = sfn.Condition.numberLessThan("$.index", 2);
    // A count must be an integer (ASL has no integer test: its JSON text has no "." or "e"); a
    // fraction would fail States.ArrayPartition at a later batch, after hosts ran.
    const asText = new sfn.Pass(this, "ControlText", {
      parameters: {
        "spec.$": "$.spec",
        "index.$": "$.index",
        "hosts.$": "$.hosts",
        "text.$": "States.JsonToString($.spec)",
      },
    });
    const choice = new sfn.Choice(this, "ResolveControl")
      .when(sfn.Condition.and(sfn.Condition.isNumeric("$.spec"), notWholeText("$.text")), invalid)
      .when(
        sfn.Condition.and(
          sfn.Condition.isNumeric("$.spec"),
          sfn.Condition.numberGreaterThanEquals("$.spec", 1),
        ),
        asIs,
      )
      .when(
        sfn.Condition.and(
          sfn.Condition.isNumeric("$.spec"),
          sfn.Condition.numberEquals("$.spec", 0),
          mayBeZero,
        ),
        zero,
      )
      .when(isFleetPercentage("$.spec"), percent)
      .when(
        sfn.Condition.and(
          sfn.Condition.isString("$.spec"),
          sfn.Condition.stringEquals("$.spec", "0%"),
          mayBeZero,
        ),
        zero,
      )
      .otherwise(invalid);
    asText.next(choice);
    return asText;
  }

  /**
   * The batch loop: take the next batch off `pending` (its size is the first of `sizes`; the
   * last size repeats), run it as one Distributed Map, add its outcomes, then stop when the
   * errors exceed `maxErrors` or no host is pending.
   */
  private batchLoop(
    mapOptions: Omit<sfn.DistributedMapProps, "itemsPath" | "resultPath">,
    props: FleetWorkflowProps,
    afterCanary: sfn.IChainable,
  ): sfn.IChainable {
    const cut = new sfn.Pass(this, "CutBatch", {
      parameters: {
        "chunks.$": "States.ArrayPartition($.pending, States.ArrayGetItem($.sizes, 0))",
        "number.$": "States.MathAdd($.batch, 1)",
      },
      resultPath: "$.cut",
    });
    // A path that may match nothing is read only behind the Choice that checked it (AWS
    // yields [] there, the local interpreter fails).
    const take = new sfn.Pass(this, "TakeBatch", {
      parameters: { "hosts.$": "$.cut.chunks[0]", "pending.$": "$.cut.chunks[1:][*]" },
      resultPath: "$.next",
    });
    const takeLast = new sfn.Pass(this, "TakeLastBatch", {
      parameters: { "hosts.$": "$.cut.chunks[0]", pending: [] },
      resultPath: "$.next",
    });
    const popSize = new sfn.Pass(this, "NextBatchSize", {
      parameters: { "sizes.$": "$.sizes[1:]" },
      resultPath: "$.nextSizes",
    });
    const keepSize = new sfn.Pass(this, "KeepBatchSize", {
      parameters: { "sizes.$": "$.sizes" },
      resultPath: "$.nextSizes",
    });
    const inline = new sfn.DistributedMap(this, "RunFleetInline", {
      ...mapOptions,
      itemsPath: "$.next.hosts",
      resultPath: "$.batchResults",
    });
    inline.itemProcessor(this.hostProcessor("Inline", props));
    // This batch's records behind the sentinels (one per outcome) for counting: `[*][*]`
    // flattens one level.
    const mark = new sfn.Pass(this, "MarkBatchResults", {
      parameters: { "marked.$": "States.Array($.sentinels, $.batchResults)" },
      resultPath: "$.added",
    });
    const flatten = new sfn.Pass(this, "FlattenBatchResults", {
      parameters: { "marked.$": "$.added.marked[*][*]" },
      resultPath: "$.added",
    });
    // Host outcomes that count against the budget: every one but `succeeded` (each list
    // holds its sentinel, hence the −3).
    const groupBatch = new sfn.Pass(this, "GroupBatch", {
      parameters: Object.fromEntries(
        FAILING_STATUSES.map((status) => [
          `${status}.$`,
          `$.added.marked[?(@.status == '${status}')]`,
        ]),
      ),
      resultPath: "$.batchGroups",
    });
    const [a, b, c] = FAILING_STATUSES.map(
      (status) => `States.ArrayLength($.batchGroups.${status})`,
    );
    const countBatch = new sfn.Pass(this, "CountBatchErrors", {
      parameters: {
        "failing.$": `States.MathAdd(${a}, States.MathAdd(${b}, States.MathAdd(${c}, -3)))`,
      },
      resultPath: "$.batchErrors",
    });
    // The run's state for the next batch: the batch's records appended to the kept ones (the
    // records once: the batch copies and groups are dropped here).
    const carry = {
      "request.$": "$.request",
      "total.$": "$.total",
      "toleratedFailurePercentage.$": "$.toleratedFailurePercentage",
      "maxErrors.$": "$.maxErrors",
      "maxConcurrency.$": "$.maxConcurrency",
      "sentinels.$": "$.sentinels",
      "after.$": "$.after",
    };
    const append = new sfn.Pass(this, "AddBatchResults", {
      parameters: {
        ...carry,
        "batch.$": "$.cut.number",
        "sizes.$": "$.nextSizes.sizes",
        "pending.$": "$.next.pending",
        "errors.$": "States.MathAdd($.errors, $.batchErrors.failing)",
        "nested.$": "States.Array($.results, $.batchResults)",
      },
    });
    const tally = new sfn.Pass(this, "TallyBatch", {
      parameters: {
        ...carry,
        "batch.$": "$.batch",
        "sizes.$": "$.sizes",
        "pending.$": "$.pending",
        "errors.$": "$.errors",
        "results.$": "$.nested[*][*]",
      },
    });
    const summary = this.summary(afterCanary);
    const stopped = new sfn.Pass(this, "BudgetExceeded", {
      parameters: { reason: "maxErrorsExceeded" },
      resultPath: "$.stopped",
    });
    const finished = new sfn.Pass(this, "AllBatchesRan", {
      parameters: { reason: "completed" },
      resultPath: "$.stopped",
    });
    stopped.next(summary);
    finished.next(summary);
    const sizes = new sfn.Choice(this, "SizesLeft")
      .when(sfn.Condition.isPresent("$.sizes[1]"), popSize)
      .otherwise(keepSize);
    take.next(sizes);
    takeLast.next(sizes);
    popSize.next(inline);
    keepSize.next(inline);
    inline.next(mark).next(flatten).next(groupBatch).next(countBatch).next(append).next(tally);
    tally.next(
      new sfn.Choice(this, "CheckBudget")
        .when(sfn.Condition.numberGreaterThanJsonPath("$.errors", "$.maxErrors"), stopped)
        .when(sfn.Condition.not(sfn.Condition.isPresent("$.pending[0]")), finished)
        .otherwise(cut),
    );
    cut.next(
      new sfn.Choice(this, "ChunksLeft")
        .when(sfn.Condition.isPresent("$.cut.chunks[1]"), take)
        .otherwise(takeLast),
    );
    return cut;
  }

  /**
   * The execution output of an inline fleet, bounded by the inline limit: counts by outcome
   * (`notStarted`: hosts the budget kept from starting), why it stopped, the first failing
   * outcome records, the hosts never started, every outcome record.
   */
  private summary(afterCanary: sfn.IChainable): sfn.IChainable {
    // Only what the output needs, the records once (behind the sentinels): the largest state
    // of an inline fleet is this one plus its groups, about twice the records.
    const meta = {
      "total.$": "$.total",
      "pending.$": "$.pending",
      "stopped.$": "$.stopped",
      "maxErrors.$": "$.maxErrors",
      "errors.$": "$.errors",
      "batch.$": "$.batch",
      "after.$": "$.after",
    };
    const marked = new sfn.Pass(this, "MarkResults", {
      parameters: { ...meta, "nested.$": "States.Array($.sentinels, $.results)" },
    });
    const flatten = new sfn.Pass(this, "FlattenResults", {
      parameters: { ...meta, "marked.$": "$.nested[*][*]" },
    });
    const groups: Record<string, string> = {};
    for (const status of STATUSES) {
      groups[`${status}.$`] = `$.marked[?(@.status == '${status}')]`;
    }
    const group = new sfn.Pass(this, "GroupByOutcome", {
      parameters: groups,
      resultPath: "$.groups",
    });
    // Each count less its sentinel.
    const counts: Record<string, unknown> = {
      "total.$": "$.total",
      "notStarted.$": "States.ArrayLength($.pending)",
    };
    for (const status of STATUSES) {
      counts[`${status}.$`] = `States.MathAdd(States.ArrayLength($.groups.${status}), -1)`;
    }
    // The first failing records of each failing outcome (each list starts with its sentinel).
    let chain: sfn.INextable & sfn.IChainable = group;
    const head = marked;
    marked.next(flatten).next(group);
    for (const status of FAILING_STATUSES) {
      const some = new sfn.Pass(this, `First_${status}`, {
        parameters: { "list.$": `$.groups.${status}[1:${1 + FAILURES_LISTED}]` },
        resultPath: `$.failures.${status}`,
      });
      const none = new sfn.Pass(this, `None_${status}`, {
        parameters: { list: [] },
        resultPath: `$.failures.${status}`,
      });
      const join = new sfn.Pass(this, `Listed_${status}`);
      some.next(join);
      none.next(join);
      chain.next(
        new sfn.Choice(this, `Any_${status}`)
          .when(sfn.Condition.isPresent(`$.groups.${status}[1]`), some)
          .otherwise(none),
      );
      chain = join;
    }
    const failures: Record<string, string> = {};
    for (const status of FAILING_STATUSES) {
      failures[`${status}.$`] = `$.failures.${status}.list`;
    }
    const output = {
      summary: counts,
      "ended.$": "$.stopped.reason",
      "maxErrors.$": "$.maxErrors",
      "errors.$": "$.errors",
      "batches.$": "$.batch",
      failures,
      "notStarted.$": "$.pending",
      // The records in host order, without the sentinels.
      "results.$": `$.marked[${SENTINELS.length}:]`,
    };
    // A hostsKey list's canary: its summary is `canary`, and the rest of the list follows.
    const canary = new sfn.Pass(this, "SummarizeCanary", {
      parameters: { canary: output, "after.$": "$.after" },
    });
    canary.next(afterCanary);
    chain.next(
      new sfn.Choice(this, "SummaryFor")
        .when(sfn.Condition.stringEquals("$.after.next", "s3"), canary)
        .otherwise(new sfn.Pass(this, "Summarize", { parameters: output })),
    );
    return head;
  }

  /** One host of a fleet: run, then record a compact outcome whatever happened. */
  private hostProcessor(prefix: string, props: TaskSettings, budget = false): sfn.IChainable {
    const run = boundedSshTask(this, `${prefix}RunHost`, {
      taskFunction: props.handler,
      taskTimeout: props.taskTimeout,
      retry: props.retry,
      lambdaRetry: props.lambdaRetry,
      requestPath: "$.request",
      executionPath: "$.execution",
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
    const chain = run.next(outcome);
    if (!budget) return chain;
    // Under a failure budget, a host that did not succeed fails its child, so the map's
    // tolerated failure threshold counts it; the outcome record is the Cause (ResultWriter
    // keeps it in FAILED_*.json), so nothing of it is lost.
    const done = new sfn.Succeed(this, `${prefix}HostSucceeded`);
    const cause = new sfn.Pass(this, `${prefix}HostCause`, {
      parameters: { "cause.$": "States.JsonToString($)" },
    });
    cause.next(
      new sfn.Fail(this, `${prefix}HostNotSucceeded`, {
        error: HOST_NOT_SUCCEEDED,
        causePath: "$.cause",
      }),
    );
    const check = new sfn.Choice(this, `${prefix}HostCheckOutcome`)
      .when(sfn.Condition.stringEquals("$.status", "succeeded"), done)
      .otherwise(cause);
    for (const end of [outcome, errorOutcome, viaErrorOutcome, targetErrorOutcome, noResult]) {
      end.next(check);
    }
    return chain;
  }
}
