import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { type Duration, Stack, type StackProps } from "aws-cdk-lib";
import type * as ec2 from "aws-cdk-lib/aws-ec2";
import type * as kms from "aws-cdk-lib/aws-kms";
import * as ssm from "aws-cdk-lib/aws-ssm";
import type { Construct } from "constructs";
import { DEFAULT_METRIC_NAMESPACE } from "../lib/names.ts";
import {
  DEFAULT_API_TIMEOUTS,
  DEFAULT_TASK_TIMEOUTS,
  HANDLER_ENV,
  validateTimeoutOrder,
} from "./config.ts";
import { FleetState } from "./constructs/fleet-state.ts";
import { Monitoring, type MonitoringThresholds } from "./constructs/monitoring.ts";
import { RunApi } from "./constructs/run-api.ts";
import { type SshEgress, SshFunction } from "./constructs/ssh-function.ts";
import { type RetrySettings, Workflows } from "./constructs/workflows.ts";

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
  /** Secrets Manager name prefix of credentials. @default "bounded-ssh/credentials/" */
  readonly secretPrefix?: string;
  /** @default the AWS-managed Secrets Manager key */
  readonly secretsKey?: kms.IKey;
  /** Initial policy JSON stored in SSM (edit the parameter afterwards). @default deny all */
  readonly policy?: string;
  /** Initial known_hosts text stored in SSM. @default a comment line (no host trusted) */
  readonly knownHosts?: string;
  /** @default DEFAULT_METRIC_NAMESPACE */
  readonly metricNamespace?: string;
  /** Place both functions in this VPC. @default not in a VPC */
  readonly vpc?: ec2.IVpc;
  readonly vpcSubnets?: ec2.SubnetSelection;
  /** Required with `vpc`: SSH target CIDRs and ports. */
  readonly egress?: SshEgress;
  readonly retry?: RetrySettings;
  readonly thresholds?: MonitoringThresholds;
  /**
   * Reserved concurrency of the task function: how many hosts all fleets together can touch at
   * once, and a floor no other function can take. `null` leaves it unreserved (accounts with a
   * low concurrency quota must keep 100 unreserved). @default 50
   */
  readonly taskReservedConcurrency?: number | null;
  /** Ceiling on a fleet execution's `maxConcurrency`. @default 50 */
  readonly maxFleetConcurrency?: number;
}

/** Default reserved concurrency of the task function and ceiling of a fleet's concurrency. */
export const DEFAULT_TASK_RESERVED_CONCURRENCY = 50;

/** bounded-ssh: composes the functions, the API, the workflows and their monitoring. */
export class BoundedSshStack extends Stack {
  readonly apiFunction: SshFunction;
  readonly taskFunction: SshFunction;
  readonly api: RunApi;
  readonly workflows: Workflows;
  readonly fleetState: FleetState;
  readonly monitoring: Monitoring;

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

    const policyParameter = new ssm.StringParameter(this, "Policy", {
      description: "bounded-ssh policy: callers to targets and commands (JSON)",
      stringValue: props.policy ?? JSON.stringify({ rules: [] }),
    });
    const knownHostsParameter = new ssm.StringParameter(this, "KnownHosts", {
      description: "bounded-ssh known_hosts (OpenSSH format)",
      stringValue: props.knownHosts ?? "# bounded-ssh known_hosts: add one OpenSSH line per host",
    });
    const namespace = props.metricNamespace ?? DEFAULT_METRIC_NAMESPACE;
    const shared = {
      secretPrefix: props.secretPrefix ?? "bounded-ssh/credentials/",
      secretsKey: props.secretsKey,
      policyParameter,
      knownHostsParameter,
      metricNamespace: namespace,
      vpc: props.vpc,
      vpcSubnets: props.vpcSubnets,
      egress: props.egress,
    };

    this.apiFunction = new SshFunction(this, "ApiHandler", {
      ...shared,
      entry: props.apiEntry ?? path.join(ROOT, "functions/api.ts"),
      timeout: api.functionTimeout,
      reserve: api.reserve,
      apiEdge: api.integrationTimeout,
    });
    this.taskFunction = new SshFunction(this, "TaskHandler", {
      ...shared,
      entry: props.taskEntry ?? path.join(ROOT, "functions/task.ts"),
      timeout: task.functionTimeout,
      reserve: task.reserve,
      reservedConcurrentExecutions:
        props.taskReservedConcurrency === null
          ? undefined
          : (props.taskReservedConcurrency ?? DEFAULT_TASK_RESERVED_CONCURRENCY),
    });

    this.api = new RunApi(this, "RunApi", {
      handler: this.apiFunction.function,
      integrationTimeout: api.integrationTimeout,
    });
    this.workflows = new Workflows(this, "Workflows", {
      handler: this.taskFunction.function,
      taskTimeout: task.taskTimeout,
      retry: props.retry,
      maxConcurrencyCeiling: props.maxFleetConcurrency ?? DEFAULT_TASK_RESERVED_CONCURRENCY,
    });
    // Verified callers (SPEC §9): the API function accepts only events naming this API, stage
    // and account; the task function only executions of these state machines. Plain strings
    // and names, not references to the API's stage or the state machines: those depend on the
    // functions, so a reference would be a cycle.
    this.apiFunction.function.addEnvironment(HANDLER_ENV.apiId, this.api.api.restApiId);
    this.apiFunction.function.addEnvironment(HANDLER_ENV.apiStage, this.api.stageName);
    this.apiFunction.function.addEnvironment(HANDLER_ENV.apiAccount, this.account);
    this.taskFunction.function.addEnvironment(
      HANDLER_ENV.stateMachineArns,
      this.workflows.stateMachineArns.join(","),
    );
    this.fleetState = new FleetState(this, "FleetState", {
      functions: [this.apiFunction.function, this.taskFunction.function],
    });
    this.monitoring = new Monitoring(this, "Monitoring", {
      apiFunction: this.apiFunction,
      taskFunction: this.taskFunction,
      singleHost: this.workflows.singleHost,
      fleet: this.workflows.fleet,
      workflowLogGroups: [this.workflows.singleHostLogs, this.workflows.fleetLogs],
      namespace,
      thresholds: props.thresholds,
    });
  }
}
