import { Aws } from "aws-cdk-lib";
import type * as apigw from "aws-cdk-lib/aws-apigateway";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import type * as sfn from "aws-cdk-lib/aws-stepfunctions";
import { Construct } from "constructs";
import { DIMENSION, METRIC, PHASE_TIMEOUT_ERROR, PHASES, STATUSES } from "../../lib/names.ts";
import type { SshFunction } from "../constructs/ssh-function.ts";
import type { SshMetrics } from "../constructs/ssh-metrics.ts";

/** A Contributor Insights top-N graph (CDK has no widget class for it). */
class TopContributorsWidget extends cloudwatch.ConcreteWidget {
  constructor(
    private readonly title: string,
    private readonly ruleName: string,
    width: number,
  ) {
    super(width, 6);
  }

  toJson(): unknown[] {
    return [
      {
        type: "metric",
        width: this.width,
        height: this.height,
        x: this.x,
        y: this.y,
        properties: {
          title: this.title,
          region: Aws.REGION,
          view: "timeSeries",
          insightRule: { maxContributorCount: 10, orderBy: "Sum", ruleName: this.ruleName },
          legend: { position: "right" },
        },
      },
    ];
  }
}

/** Properties of {@link MonitoringDashboard}. */
export interface MonitoringDashboardProps {
  readonly dashboardName: string;
  readonly metrics: SshMetrics;
  readonly apiFunction: SshFunction;
  readonly taskFunction: SshFunction;
  /** By the name the widgets label them with. */
  readonly stateMachines: Readonly<Record<string, sfn.StateMachine>>;
  /** @default no API Gateway widget */
  readonly api?: apigw.RestApi;
  /** Contributor Insights rule of the hang errors (top hosts). */
  readonly hangRuleName: string;
  readonly alarms: readonly cloudwatch.IAlarm[];
}

/**
 * SPEC §8 dashboard: outcomes, timeouts by phase, top hung hosts, errors, platform metrics.
 *
 * @example
 * new MonitoringDashboard(this, "Dashboard", {
 *   dashboardName: "prod-BoundedSsh-Stack",
 *   metrics: new SshMetrics("BoundedSsh", Duration.minutes(5)),
 *   apiFunction,
 *   taskFunction,
 *   stateMachines: { SingleHost: single, Fleet: fleet },
 *   hangRuleName: rule.ruleName,
 *   alarms,
 * });
 */
export class MonitoringDashboard extends Construct {
  readonly dashboard: cloudwatch.Dashboard;

  /**
   * @param scope the parent construct (the stack).
   * @param id the construct id; logical ids derive from it.
   * @param props the metrics, functions, state machines, API, hang rule and alarms it shows.
   */
  constructor(scope: Construct, id: string, props: MonitoringDashboardProps) {
    super(scope, id);
    const m = props.metrics;
    const fns = [props.apiFunction, props.taskFunction];
    const d = new cloudwatch.Dashboard(this, "Dashboard", { dashboardName: props.dashboardName });
    this.dashboard = d;
    const timeoutPhases = Object.keys(PHASE_TIMEOUT_ERROR) as (keyof typeof PHASE_TIMEOUT_ERROR)[];
    d.addWidgets(
      new cloudwatch.AlarmStatusWidget({ title: "Alarms", alarms: [...props.alarms], width: 24 }),
    );
    d.addWidgets(
      new TopContributorsWidget("Top hosts with hang errors (host, port)", props.hangRuleName, 12),
      new cloudwatch.GraphWidget({
        title: "Errors by ErrorName",
        left: [
          new cloudwatch.MathExpression({
            expression: `SEARCH('{${m.namespace},${DIMENSION.ErrorName}} MetricName="${METRIC.Errors}"', 'Sum', ${m.period.toSeconds()})`,
            usingMetrics: {},
            label: "",
            period: m.period,
          }),
        ],
        stacked: true,
        width: 12,
      }),
    );
    d.addWidgets(
      new cloudwatch.GraphWidget({
        title: "Invocations by outcome",
        left: STATUSES.map((s) => m.invocations(s)),
        stacked: true,
        width: 12,
      }),
      new cloudwatch.GraphWidget({
        title: "Timeouts by phase",
        left: timeoutPhases.map((p) => m.timeouts(p).with({ label: p })),
        stacked: true,
        width: 12,
      }),
    );
    d.addWidgets(
      new cloudwatch.GraphWidget({
        title: "Phase latency p99 (ms)",
        left: PHASES.map((p) => m.phaseLatency(p, "p99")),
        width: 12,
      }),
      new cloudwatch.GraphWidget({
        title: "Deadline slack (ms): time left when the handler returned",
        left: [m.deadlineSlack("Minimum"), m.deadlineSlack("p1"), m.deadlineSlack("p50")],
        width: 12,
      }),
    );
    d.addWidgets(
      new cloudwatch.GraphWidget({
        title: "Fleet trust: hosts refused by the breaker, idempotent repeats refused",
        left: [
          m.errors("HostQuarantined").with({ label: "HostQuarantined (no dial)" }),
          m.errors("CommandInProgress").with({ label: "CommandInProgress" }),
          m.errors("IdempotencyKeyReused").with({ label: "IdempotencyKeyReused" }),
        ],
        width: 12,
      }),
      new cloudwatch.GraphWidget({
        title: "Unbounded invocations, leaks and hard timeouts (the bounded SLI's bad events)",
        left: [
          m.unbounded().with({ label: "Unbounded (slack < 0 or a leak)" }),
          m.leakedSockets(),
          m.derived("WorkflowHardTimeouts"),
        ],
        width: 12,
      }),
      new cloudwatch.GraphWidget({
        title: "Lambda duration max vs timeout (ms)",
        left: fns.map((fn) => fn.function.metricDuration({ statistic: "Maximum" })),
        leftAnnotations: fns.map((fn) => ({
          value: fn.timeout.toMilliseconds(),
          label: `${fn.node.id} timeout`,
        })),
        width: 12,
      }),
    );
    // Standard platform metrics.
    d.addWidgets(
      new cloudwatch.GraphWidget({
        title: "Lambda invocations, errors, throttles",
        left: fns.flatMap((fn) => [
          fn.function.metricInvocations({ label: `${fn.node.id} invocations` }),
          fn.function.metricErrors({ label: `${fn.node.id} errors` }),
          fn.function.metricThrottles({ label: `${fn.node.id} throttles` }),
        ]),
        width: 12,
      }),
      new cloudwatch.GraphWidget({
        title: "Lambda concurrent executions",
        left: fns.map((fn) =>
          fn.function.metric("ConcurrentExecutions", {
            statistic: "Maximum",
            label: `${fn.node.id}`,
          }),
        ),
        width: 12,
      }),
    );
    d.addWidgets(
      new cloudwatch.GraphWidget({
        title: "Step Functions executions",
        left: Object.entries(props.stateMachines).flatMap(([name, sm]) => [
          sm.metricStarted({ label: `${name} started` }),
          sm.metricFailed({ label: `${name} failed` }),
          sm.metricTimedOut({ label: `${name} timed out` }),
          sm.metricAborted({ label: `${name} aborted` }),
        ]),
        width: 12,
      }),
      ...(props.api
        ? [
            new cloudwatch.GraphWidget({
              title: "API Gateway requests, 4XX, 5XX; latency p99",
              left: [
                props.api.metricCount(),
                props.api.metricClientError(),
                props.api.metricServerError(),
              ],
              right: [props.api.metricLatency({ statistic: "p99" })],
              width: 12,
            }),
          ]
        : []),
    );
  }
}
