import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { CfnOutput, Duration, Stack, type StackProps, Validations } from "aws-cdk-lib";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import type * as kms from "aws-cdk-lib/aws-kms";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import type * as logs from "aws-cdk-lib/aws-logs";
import type * as sfn from "aws-cdk-lib/aws-stepfunctions";
import type { Construct } from "constructs";
import { DEFAULT_METRIC_NAMESPACE } from "../lib/names.ts";
import { MAX_CACHE_TTL_MS } from "../operations/timeouts.ts";
import {
  DEFAULT_API_TIMEOUTS,
  DEFAULT_TASK_TIMEOUTS,
  HANDLER_ENV,
  validateTimeoutOrder,
} from "./config.ts";
import { FleetState } from "./constructs/fleet-state.ts";
import { Monitoring, type MonitoringThresholds, type SloConfig } from "./constructs/monitoring.ts";
import { RunApi } from "./constructs/run-api.ts";
import { SpillBucket, type SpillBucketProps } from "./constructs/spill-bucket.ts";
import { SshFunction } from "./constructs/ssh-function.ts";
import { StageConfig } from "./constructs/stage-config.ts";
import { type LambdaRetrySettings, type RetrySettings, Workflows } from "./constructs/workflows.ts";
import {
  type DeployConfig,
  type LoadedDeployConfig,
  stageNames,
  type VpcPlacement,
} from "./deploy-config.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** Properties of {@link BoundedSshStack}. */
export interface BoundedSshStackProps extends StackProps {
  /** API handler entry. @default functions/api.ts */
  readonly apiEntry?: string;
  /** Step Functions task handler entry. @default functions/task.ts */
  readonly taskEntry?: string;
  /** API path timeouts. @default DEFAULT_API_TIMEOUTS */
  readonly apiTimeouts?: {
    readonly integrationTimeout?: Duration;
    readonly functionTimeout?: Duration;
    readonly sessionBudget?: Duration;
    readonly reserve?: Duration;
  };
  /** Workflow path timeouts. @default DEFAULT_TASK_TIMEOUTS */
  readonly taskTimeouts?: {
    readonly taskTimeout?: Duration;
    readonly functionTimeout?: Duration;
    readonly sessionBudget?: Duration;
    readonly reserve?: Duration;
  };
  /**
   * Prefixes every named resource (functions, state machines, log groups, SSM parameters,
   * secrets, alarms), so two stages deploy into one account side by side.
   * @default none: CloudFormation generates the names
   */
  readonly stage?: string;
  /**
   * Secrets Manager name prefix of credentials.
   * @default "<stage>/bounded-ssh/credentials/", or "bounded-ssh/credentials/" without a stage
   */
  readonly secretPrefix?: string;
  /** Credential names to create placeholder secrets for. @default none */
  readonly credentials?: readonly string[];
  /** @default the AWS-managed Secrets Manager key */
  readonly secretsKey?: kms.IKey;
  /** Policy JSON stored in SSM at every deploy (checked by the loader). @default deny all */
  readonly policy?: string;
  /** known_hosts text stored in SSM at every deploy. @default a comment line (no host trusted) */
  readonly knownHosts?: string;
  /** @default DEFAULT_METRIC_NAMESPACE */
  readonly metricNamespace?: string;
  /** Place both functions in this VPC (ids from the deploy config). @default not in a VPC */
  readonly vpc?: VpcPlacement;
  /** With `vpc`: the security group's SSH egress (the policy's CIDRs and ports). */
  readonly sshEgress?: readonly { readonly cidr: string; readonly port: number }[];
  /** Alarm routing: subscribers per route, suppression, runbook URL. @default none subscribed */
  readonly alarmSubscriptions?: DeployConfig["alarms"];
  /** Reserved concurrency of the API function. @default unreserved */
  readonly apiReservedConcurrency?: number;
  readonly retry?: RetrySettings;
  readonly thresholds?: MonitoringThresholds;
  /** Service level objectives (the deploy config's `slo`). @default availability and bounded 99.9 % */
  readonly slo?: SloConfig;
  /**
   * Reserved concurrency of the task function: how many hosts all fleets together can touch at
   * once, and a floor no other function can take. `null` leaves it unreserved (accounts with a
   * low concurrency quota must keep 100 unreserved). @default 50
   */
  readonly taskReservedConcurrency?: number | null;
  /**
   * Ceiling on a fleet execution's `maxConcurrency`; must leave `singleHostHeadroom` of the
   * task function's reservation free (synth error otherwise).
   * @default taskReservedConcurrency − singleHostHeadroom (40)
   */
  readonly maxFleetConcurrency?: number;
  /** Task concurrency a full fleet leaves for single-host runs. @default a fifth, at least 1 */
  readonly singleHostHeadroom?: number;
  /** Retry of Lambda throttles and service errors in both workflows. @default 2 s ×2 ≤60 s, 6 */
  readonly lambdaRetry?: LambdaRetrySettings;
  /** The per-host breaker's counted names, threshold, window, quarantine and probe lease. */
  readonly breaker?: DeployConfig["breaker"];
  /** Fleet controls' defaults and the inline host limit (docs/fleet.md). */
  readonly fleet?: DeployConfig["fleet"];
  /** Full output to S3: mode, size limit, object lifetime. @default request mode, 1 GiB, 30 days */
  readonly spill?: Omit<SpillBucketProps, "functions">;
  /** The API stage's throttle. @default DEFAULT_API_THROTTLE (10 per second, burst 20) */
  readonly apiThrottle?: DeployConfig["apiThrottle"];
  /**
   * State machines of your own the task function serves besides the stack's two
   * (`boundedSshTask`; deploy config `callerStateMachines`). @default none
   */
  readonly callerStateMachines?: readonly string[];
  /**
   * Per-container cache lifetimes of the policy, known_hosts and credentials (the revocation
   * time of each, docs/security.md). @default the functions' default, 5 minutes each
   */
  readonly cacheTtl?: {
    readonly policy?: Duration;
    readonly knownHosts?: Duration;
    readonly credentials?: Duration;
  };
}

/** Default reserved concurrency of the task function (fleet ceiling: this less the headroom). */
export const DEFAULT_TASK_RESERVED_CONCURRENCY = 50;

/**
 * bounded-ssh: composes the functions, the API, the workflows and their monitoring.
 *
 * @example
 * const app = new App();
 * new BoundedSshStack(app, "prod-bounded-ssh", {
 *   apiEntry: "functions/api.ts",
 *   taskEntry: "functions/task.ts",
 *   ...deployConfigProps(loadDeployConfigFile("deploy/prod.json")),
 * });
 * @throws Error when the timeouts are not ordered edge > Lambda > session + reserve (`validateTimeoutOrder`), or a setting is refused.
 */
export class BoundedSshStack extends Stack {
  readonly apiFunction: SshFunction;
  readonly taskFunction: SshFunction;
  readonly api: RunApi;
  readonly workflows: Workflows;
  readonly fleetState: FleetState;
  readonly spill: SpillBucket;
  readonly monitoring: Monitoring;
  /** Policy and known_hosts parameters, credential placeholders, the VPC security group. */
  readonly config: StageConfig;

  /**
   * @param scope the app.
   * @param id the stack name (`<stage>-bounded-ssh` in `cdk/app.ts`).
   * @param props the handler entries and the deploy config's settings.
   */
  constructor(scope: Construct, id: string, props: BoundedSshStackProps = {}) {
    super(scope, id, props);
    const api = { ...DEFAULT_API_TIMEOUTS, ...props.apiTimeouts };
    const task = { ...DEFAULT_TASK_TIMEOUTS, ...props.taskTimeouts };
    // First, before any resource: a broken order must not produce a template.
    validateTimeoutOrder([
      {
        edge: "API Gateway integration",
        edgeTimeout: api.integrationTimeout,
        functionTimeout: api.functionTimeout,
        sessionBudget: api.sessionBudget,
        reserve: api.reserve,
      },
      {
        edge: "Step Functions task",
        edgeTimeout: task.taskTimeout,
        functionTimeout: task.functionTimeout,
        sessionBudget: task.sessionBudget,
        reserve: task.reserve,
      },
    ]);

    const names = props.stage === undefined ? undefined : stageNames(props.stage);
    const secretPrefix = props.secretPrefix ?? names?.secretPrefix ?? "bounded-ssh/credentials/";
    const vpc = props.vpc && importVpc(this, props.vpc);
    this.config = new StageConfig(this, "Config", {
      policyText: props.policy,
      knownHostsText: props.knownHosts,
      policyParameterName: names?.policyParameter,
      knownHostsParameterName: names?.knownHostsParameter,
      secretPrefix,
      credentials: props.credentials,
      secretsKey: props.secretsKey,
      vpc: vpc && {
        vpc: vpc.vpc,
        sshEgress: props.sshEgress ?? [],
        awsApiCidr: props.vpc!.awsApiCidr,
      },
    });
    const namespace = props.metricNamespace ?? DEFAULT_METRIC_NAMESPACE;
    const shared = {
      secretPrefix,
      secretsKey: props.secretsKey,
      policyParameter: this.config.policyParameter,
      knownHostsParameter: this.config.knownHostsParameter,
      metricNamespace: namespace,
      vpc: vpc?.vpc,
      vpcSubnets: vpc?.subnets,
      securityGroup: this.config.securityGroup,
    };

    this.apiFunction = new SshFunction(this, "ApiHandler", {
      ...shared,
      entry: props.apiEntry ?? path.join(ROOT, "functions/api.ts"),
      timeout: api.functionTimeout,
      reserve: api.reserve,
      apiEdge: api.integrationTimeout,
      functionName: names?.apiFunction,
      logGroupName: names?.functionLogGroup(names.apiFunction),
      reservedConcurrentExecutions: props.apiReservedConcurrency,
    });
    this.taskFunction = new SshFunction(this, "TaskHandler", {
      ...shared,
      entry: props.taskEntry ?? path.join(ROOT, "functions/task.ts"),
      timeout: task.functionTimeout,
      reserve: task.reserve,
      functionName: names?.taskFunction,
      logGroupName: names?.functionLogGroup(names.taskFunction),
      reservedConcurrentExecutions:
        props.taskReservedConcurrency === null
          ? undefined
          : (props.taskReservedConcurrency ?? DEFAULT_TASK_RESERVED_CONCURRENCY),
    });

    this.api = new RunApi(this, "RunApi", {
      handler: this.apiFunction.function,
      integrationTimeout: api.integrationTimeout,
      throttlingRateLimit: props.apiThrottle?.rateLimit,
      throttlingBurstLimit: props.apiThrottle?.burstLimit,
      // The name the ApiEdge alarms' ApiName dimension reads: renaming only the L1 afterwards
      // left them watching "Api", an API that does not exist (found by the drill's page
      // scenario, which takes the name from the template's RestApi).
      ...(names ? { restApiName: names.restApi } : {}),
    });
    this.workflows = new Workflows(this, "Workflows", {
      handler: this.taskFunction.function,
      taskTimeout: task.taskTimeout,
      retry: props.retry,
      lambdaRetry: props.lambdaRetry,
      taskReservedConcurrency:
        props.taskReservedConcurrency === null
          ? undefined
          : (props.taskReservedConcurrency ?? DEFAULT_TASK_RESERVED_CONCURRENCY),
      maxConcurrencyCeiling: props.maxFleetConcurrency,
      singleHostHeadroom: props.singleHostHeadroom,
      defaultMaxErrors: props.fleet?.maxErrors,
      defaultBatches: props.fleet?.batches,
      defaultMaxConcurrency: props.fleet?.maxConcurrency,
      inlineHostLimit: props.fleet?.inlineHostLimit,
      namePrefix: names?.stackName,
    });
    // Verified callers (SPEC §9): the API function accepts only events naming this API, stage
    // and account; the task function only executions of these state machines. Plain strings
    // and names, not references to the API's stage or the state machines: those depend on the
    // functions, so a reference would be a cycle.
    this.apiFunction.function.addEnvironment(HANDLER_ENV.apiId, this.api.api.restApiId);
    this.apiFunction.function.addEnvironment(HANDLER_ENV.apiStage, this.api.stageName);
    this.apiFunction.function.addEnvironment(HANDLER_ENV.apiAccount, this.account);
    // Callers' own state machines (`callerStateMachines`): served too. Their role's invoke
    // permission is theirs (CDK adds it to the role of a state machine built with
    // boundedSshTask); the task function keeps no resource policy (docs/security.md).
    this.taskFunction.function.addEnvironment(
      HANDLER_ENV.stateMachineArns,
      [...this.workflows.stateMachineArns, ...(props.callerStateMachines ?? [])].join(","),
    );
    // How long a revocation (a new @revoked line, a removed rule, a deleted credential) can take
    // to reach a warm container: one lifetime per store, in the names the handlers read.
    const ttls: [string, Duration | undefined][] = [
      [HANDLER_ENV.policyCacheTtlMs, props.cacheTtl?.policy],
      [HANDLER_ENV.knownHostsCacheTtlMs, props.cacheTtl?.knownHosts],
      [HANDLER_ENV.credentialsCacheTtlMs, props.cacheTtl?.credentials],
    ];
    for (const [name, ttl] of ttls) {
      if (ttl === undefined) continue;
      if (ttl.toMilliseconds() > MAX_CACHE_TTL_MS) {
        throw new Error(
          `${id}: cacheTtl ${name} is ${ttl.toHumanString()}; at most one hour, or a revocation (a new @revoked line, a removed rule, a deleted credential) could take longer than that to reach a warm container`,
        );
      }
      for (const fn of [this.apiFunction.function, this.taskFunction.function]) {
        fn.addEnvironment(name, String(ttl.toMilliseconds()));
      }
    }
    this.fleetState = new FleetState(this, "FleetState", {
      functions: [this.apiFunction.function, this.taskFunction.function],
      breakerErrors: props.breaker?.errors,
      breakerThreshold: props.breaker?.threshold,
      breakerWindowSeconds: props.breaker?.windowSeconds,
      breakerQuarantineSeconds: props.breaker?.quarantineSeconds,
      breakerProbeSeconds: props.breaker?.probeSeconds,
    });
    this.spill = new SpillBucket(this, "Spill", {
      ...props.spill,
      functions: [this.apiFunction.function, this.taskFunction.function],
    });
    this.monitoring = new Monitoring(this, "Monitoring", {
      apiFunction: this.apiFunction,
      taskFunction: this.taskFunction,
      singleHost: this.workflows.singleHost,
      fleet: this.workflows.fleet,
      workflowLogGroups: [this.workflows.singleHostLogs, this.workflows.fleetLogs],
      api: this.api.api,
      apiIntegrationTimeout: api.integrationTimeout,
      tables: {
        idempotency: this.fleetState.idempotencyTable,
        breaker: this.fleetState.breakerTable,
      },
      stage: props.stage,
      namespace,
      thresholds: props.thresholds,
      ...(props.slo ? { slo: props.slo } : {}),
      // Subscribers per route and suppression (cdk/constructs/monitoring.ts).
      ...(props.alarmSubscriptions ? { routing: props.alarmSubscriptions } : {}),
      ...(props.alarmSubscriptions?.runbookBaseUrl
        ? { runbookBaseUrl: props.alarmSubscriptions.runbookBaseUrl }
        : {}),
    });
    if (names) this.nameStageResources(names);

    // What docs/deploy.md's first call and first fleet run need, printed by `cdk deploy`.
    new CfnOutput(this, "RunUrl", { value: this.api.api.urlForPath("/run") });
    new CfnOutput(this, "SingleHostStateMachineArn", {
      value: this.workflows.singleHost.stateMachineArn,
    });
    new CfnOutput(this, "FleetStateMachineArn", { value: this.workflows.fleet.stateMachineArn });
    // For state machines of your own (boundedSshTask's taskFunction) and for operators.
    new CfnOutput(this, "TaskFunctionArn", { value: this.taskFunction.function.functionArn });
    new CfnOutput(this, "ApiFunctionArn", { value: this.apiFunction.function.functionArn });
    new CfnOutput(this, "FleetBucketName", { value: this.workflows.fleetBucket.bucketName });
    new CfnOutput(this, "SpillBucketName", { value: this.spill.bucket.bucketName });
    new CfnOutput(this, "PolicyParameterName", {
      value: this.config.policyParameter.parameterName,
    });
    new CfnOutput(this, "SecretPrefix", { value: secretPrefix });
  }

  /**
   * Names the resources that other constructs create unnamed, from the one stage naming
   * helper (escape hatches: those constructs stay free of deploy concerns).
   */
  private nameStageResources(names: ReturnType<typeof stageNames>): void {
    // The state machines are named by Workflows (`namePrefix`): the task function's caller
    // check is built from those names, so only their log groups are named here.
    const machines: [sfn.StateMachine, logs.LogGroup][] = [
      [this.workflows.singleHost, this.workflows.singleHostLogs],
      [this.workflows.fleet, this.workflows.fleetLogs],
    ];
    for (const [machine, logGroup] of machines) {
      const name = (machine.node.defaultChild as sfn.CfnStateMachine).stateMachineName!;
      (logGroup.node.defaultChild as logs.CfnLogGroup).logGroupName =
        names.stateMachineLogGroup(name);
    }
    (this.api.accessLogs.node.defaultChild as logs.CfnLogGroup).logGroupName =
      names.apiAccessLogGroup;
    for (const [route, enrichment] of Object.entries(this.monitoring.enrichments)) {
      const name = names.routeEnrichmentFunction(route as keyof typeof this.monitoring.enrichments);
      (enrichment.function.node.defaultChild as lambda.CfnFunction).functionName = name;
      (enrichment.logGroup.node.defaultChild as logs.CfnLogGroup).logGroupName =
        names.functionLogGroup(name);
    }
    // Alarm, insight rule, query and dashboard names carry the stage through Monitoring.
  }
}

/** The VPC and subnets of a deploy config, imported by id (synth stays offline). */
function importVpc(
  scope: Construct,
  placement: VpcPlacement,
): { vpc: ec2.IVpc; subnets: ec2.SubnetSelection } {
  const zones = placement.availabilityZones ?? Stack.of(scope).availabilityZones;
  const vpc = ec2.Vpc.fromVpcAttributes(scope, "Vpc", {
    vpcId: placement.vpcId,
    availabilityZones: [...new Set(zones)],
  });
  const subnets = placement.subnetIds.map((subnetId, i) => {
    const subnet = ec2.Subnet.fromSubnetAttributes(scope, `Subnet${i}`, {
      subnetId,
      availabilityZone: placement.availabilityZones?.[i],
    });
    Validations.of(subnet).acknowledge({
      id: "Annotation::@aws-cdk/aws-ec2:noSubnetRouteTableId",
      reason:
        "The stack only places functions in the subnets; it never adds routes, so the route table id is not needed.",
    });
    return subnet;
  });
  return { vpc, subnets: { subnets } };
}

/** Stack properties of a loaded deploy config (see `cdk/deploy-config.ts`). */
export function deployConfigProps(loaded: LoadedDeployConfig): BoundedSshStackProps {
  const { config } = loaded;
  const names = stageNames(config.stage);
  return {
    stackName: names.stackName,
    description: `bounded-ssh (${config.stage}): bounded remote command execution over SSH`,
    env:
      config.account || config.region
        ? { account: config.account, region: config.region }
        : undefined,
    stage: config.stage,
    policy: loaded.policyText,
    knownHosts: loaded.knownHostsText,
    credentials: config.credentials,
    vpc: config.vpc,
    sshEgress: loaded.sshEgress,
    alarmSubscriptions: config.alarms,
    ...(config.slo ? { slo: config.slo } : {}),
    apiReservedConcurrency: config.reservedConcurrency?.api,
    // The fleet ceiling defaults to the task function's reservation less the single-host
    // headroom (the workflows check the three at synth).
    ...(config.reservedConcurrency?.task === undefined
      ? {}
      : { taskReservedConcurrency: config.reservedConcurrency.task }),
    maxFleetConcurrency: config.reservedConcurrency?.fleet,
    breaker: config.breaker,
    fleet: config.fleet,
    singleHostHeadroom: config.reservedConcurrency?.singleHost,
    metricNamespace: config.metricNamespace ?? names.metricNamespace,
    apiThrottle: config.apiThrottle,
    callerStateMachines: config.callerStateMachines,
    ...(config.cache === undefined
      ? {}
      : {
          cacheTtl: {
            policy: seconds(config.cache.policySeconds),
            knownHosts: seconds(config.cache.knownHostsSeconds),
            credentials: seconds(config.cache.credentialsSeconds),
          },
        }),
    ...(config.spill === undefined
      ? {}
      : {
          spill: {
            mode: config.spill.mode,
            maxBytes: config.spill.maxBytes,
            expiration:
              config.spill.expirationDays === undefined
                ? undefined
                : Duration.days(config.spill.expirationDays),
          },
        }),
  };
}

const seconds = (value: number | undefined): Duration | undefined =>
  value === undefined ? undefined : Duration.seconds(value);
