/**
 * SPEC §8 monitoring, composed from `cdk/monitoring/`: the catalog (what each alarm means), the
 * alarm factory (names, descriptions, actions), the topics, the saved queries, the hang-hosts
 * insight rule, the dashboard and the enrichment function. This file only decides which metric
 * and threshold each catalog kind watches.
 */
import { Duration, Stack } from "aws-cdk-lib";
import type * as apigw from "aws-cdk-lib/aws-apigateway";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as logs from "aws-cdk-lib/aws-logs";
import type * as sns from "aws-cdk-lib/aws-sns";
import type * as sfn from "aws-cdk-lib/aws-stepfunctions";
import { Construct } from "constructs";
import { DEFAULT_METRIC_NAMESPACE, type PHASE_TIMEOUT_ERROR } from "../../lib/names.ts";
import { QUERIES, type QueryKey } from "../../operations/alarm-catalog.ts";
import { AUDIT_TYPE } from "../../operations/audit-fields.ts";
import { queryName, renderQuery } from "../../operations/queries.ts";
import { defaultAlarmActions, type IAlarmActionStrategy } from "../monitoring/alarm-actions.ts";
import { AlarmFactory, type CatalogAlarm } from "../monitoring/alarm-factory.ts";
import { AlarmTopics } from "../monitoring/alarm-topics.ts";
import { MonitoringDashboard } from "../monitoring/dashboard.ts";
import { AlarmEnrichment } from "../monitoring/enrichment.ts";
import { HangHostsRule } from "../monitoring/hang-hosts-rule.ts";
import type { SshFunction } from "./ssh-function.ts";
import { DERIVED_METRIC, SshMetrics } from "./ssh-metrics.ts";

export {
  ALARM_CATALOG,
  ALARM_KINDS,
  type AlarmKind,
  alarmName,
} from "../../operations/alarm-catalog.ts";

/** Thresholds (count per evaluation period unless noted). */
export interface MonitoringThresholds {
  /** Distinct hosts (host:port) with a hang error in one period. @default 2 */
  readonly hangHosts?: number;
  /** @default 5 */
  readonly connectTimeouts?: number;
  /** @default 3 */
  readonly commandTimeouts?: number;
  /** @default 5 */
  readonly resolveTimeouts?: number;
  /** Sessions; one host's three attempts reach it. @default 3 */
  readonly authTimeouts?: number;
  /** @default 3 */
  readonly channelTimeouts?: number;
  /** @default 3 */
  readonly connectionLost?: number;
  /** API function errors (it returns errors as responses, so any Lambda error is a crash). @default 1 */
  readonly apiLambdaErrors?: number;
  /** Task function error rate in percent (it throws SSH errors by design). @default 50 */
  readonly taskErrorRatePercent?: number;
  /** @default 1 */
  readonly throttles?: number;
  /** Failed, timed-out or aborted single-host executions. @default 5 */
  readonly singleHostFailures?: number;
  /** Failed, timed-out or aborted fleet executions. @default 1 */
  readonly fleetFailures?: number;
}

/** Properties of {@link Monitoring}. */
export interface MonitoringProps {
  readonly apiFunction: SshFunction;
  readonly taskFunction: SshFunction;
  readonly singleHost: sfn.StateMachine;
  readonly fleet: sfn.StateMachine;
  readonly workflowLogGroups: readonly logs.ILogGroup[];
  /** For the dashboard's API Gateway widget. @default no widget */
  readonly api?: apigw.RestApi;
  /** Stage name: prefixes alarm, rule, query and dashboard names. @default "dev" */
  readonly stage?: string;
  /** @default DEFAULT_METRIC_NAMESPACE */
  readonly namespace?: string;
  /** What CloudWatch notifies (the enrichment function subscribes to it). @default a new KMS-encrypted topic */
  readonly alarmTopic?: sns.ITopic;
  /**
   * Routes every alarm (`cdk/monitoring/alarm-actions.ts`: `notifySns`, `bySeverity`, …).
   * @default defaultAlarmActions(alarm topic): the composite page and the tickets notify the
   * alarm topic on ALARM and OK; page-level alarms notify only through the composite
   */
  readonly alarmActions?: IAlarmActionStrategy;
  /** Where docs/runbooks is published. @default RUNBOOK_BASE_URL */
  readonly runbookBaseUrl?: string;
  /** @default Duration.minutes(5) */
  readonly period?: Duration;
  /** @default MonitoringThresholds defaults */
  readonly thresholds?: MonitoringThresholds;
}

/** Default runbook location: the repository's docs/runbooks on the main branch. */
export const RUNBOOK_BASE_URL =
  "https://github.com/bounded-ssh/bounded-ssh/blob/main/docs/runbooks";

/**
 * A Lambda Duration within this of the timeout is a hard timeout (Lambda reports a timed-out
 * invocation at its timeout). A handler's designed maximum is timeout − reserve + 50 ms, far
 * below for any reserve above 60 ms.
 */
export const HARD_TIMEOUT_MARGIN_MS = 10;

/**
 * SPEC §8: alarms, topics, saved queries, the hang-hosts rule, a dashboard and enrichment.
 *
 * @example
 * const monitoring = new Monitoring(this, "Monitoring", {
 *   apiFunction,
 *   taskFunction,
 *   singleHost: workflows.singleHost,
 *   fleet: workflows.fleet,
 *   workflowLogGroups: [workflows.singleHostLogs, workflows.fleetLogs],
 *   stage: "prod",
 *   // Route pages and tickets to different topics (cdk/monitoring/alarm-actions.ts).
 *   alarmActions: bySeverity({ page: notifySns(pageTopic, pageTopic), ticket: notifySns(ticketTopic) }),
 * });
 */
export class Monitoring extends Construct {
  readonly stage: string;
  readonly topic: sns.ITopic;
  readonly enrichedTopic: sns.ITopic;
  readonly alarms: CatalogAlarm[];
  readonly page: cloudwatch.CompositeAlarm;
  readonly dashboard: cloudwatch.Dashboard;
  readonly hangRule: HangHostsRule;
  readonly enrichment: AlarmEnrichment;

  /**
   * @param scope the parent construct (the stack).
   * @param id the construct id; logical ids derive from it.
   * @param props what it watches, the stage, thresholds, topic and alarm routing.
   */
  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id);
    const t = props.thresholds ?? {};
    const stage = props.stage ?? "dev";
    this.stage = stage;
    const period = props.period ?? Duration.minutes(5);
    const namespace = props.namespace ?? DEFAULT_METRIC_NAMESPACE;
    const m = new SshMetrics(namespace, period);
    const topics = new AlarmTopics(this, "Topics", { alarmTopic: props.alarmTopic });
    this.topic = topics.alarms;
    this.enrichedTopic = topics.enriched;
    const fnLogGroups = [props.apiFunction.logGroup, props.taskFunction.logGroup];
    const dashboardName = `${stage}-BoundedSsh-${Stack.of(this).stackName}`;

    this.hardTimeoutFilters(namespace, fnLogGroups, props.workflowLogGroups);
    this.savedQueries(stage, fnLogGroups, props.workflowLogGroups);
    this.hangRule = new HangHostsRule(this, "HangHosts", { stage, logGroups: fnLogGroups });

    const f = new AlarmFactory(this, {
      stage,
      actions: props.alarmActions ?? defaultAlarmActions(this.topic),
      runbookBaseUrl: props.runbookBaseUrl ?? RUNBOOK_BASE_URL,
      dashboardName,
    });
    const fns = { Api: props.apiFunction, Task: props.taskFunction } as const;

    // --- page level -----------------------------------------------------------------------
    f.create({
      kind: "HandshakeHangs",
      metric: this.hangRule.uniqueHosts(period),
      threshold: t.hangHosts ?? 2,
    });
    f.create({
      kind: "LeakedSockets",
      metric: m.leakedSockets(),
      threshold: 0,
      comparison: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
    });
    const overrun: Record<string, cloudwatch.IMetric> = {
      hard: m.derived("LambdaHardTimeouts"),
      sfnHard: m.derived("WorkflowHardTimeouts"),
      slack: m.deadlineSlack("Minimum").with({ label: undefined }),
    };
    const terms = ["FILL(hard, 0)", "FILL(sfnHard, 0)", "IF(FILL(slack, 0) < 0, 1, 0)"];
    for (const [key, fn] of Object.entries(fns)) {
      overrun[`dur${key}`] = fn.function.metricDuration({ statistic: "Maximum", period });
      const limit = fn.timeout.toMilliseconds() - HARD_TIMEOUT_MARGIN_MS;
      terms.push(`IF(FILL(dur${key}, 0) >= ${limit}, 1, 0)`);
    }
    f.create({
      kind: "DeadlineOverrun",
      metric: new cloudwatch.MathExpression({
        expression: terms.join(" + "),
        usingMetrics: overrun,
        period,
        label: "real overruns",
      }),
      threshold: 1,
    });
    f.create({ kind: "InternalErrors", metric: m.errors("InternalError"), threshold: 1 });
    f.create({
      kind: "LambdaErrors",
      subject: "Api",
      metric: fns.Api.function.metricErrors({ period }),
      threshold: t.apiLambdaErrors ?? 1,
    });
    f.create({ kind: "HostKeyMismatch", metric: m.errors("HostKeyMismatch"), threshold: 1 });

    // --- tickets --------------------------------------------------------------------------
    f.create({
      kind: "LambdaErrors",
      subject: "Task",
      metric: new cloudwatch.MathExpression({
        expression: "100 * FILL(e, 0) / MAX([FILL(i, 0), 1])",
        usingMetrics: {
          e: fns.Task.function.metricErrors({ period }),
          i: fns.Task.function.metricInvocations({ period }),
        },
        period,
        label: "task error rate %",
      }),
      threshold: t.taskErrorRatePercent ?? 50,
      evaluationPeriods: 3,
    });
    const timeouts = [
      ["ResolveTimeouts", "resolve", t.resolveTimeouts ?? 5],
      ["ConnectTimeouts", "connect", t.connectTimeouts ?? 5],
      ["AuthTimeouts", "auth", t.authTimeouts ?? 3],
      ["ChannelTimeouts", "channel", t.channelTimeouts ?? 3],
      ["CommandTimeouts", "exec", t.commandTimeouts ?? 3],
    ] as const satisfies readonly (readonly [string, keyof typeof PHASE_TIMEOUT_ERROR, number])[];
    for (const [kind, phase, threshold] of timeouts) {
      f.create({ kind, metric: m.timeouts(phase), threshold });
    }
    f.create({
      kind: "ConnectionLost",
      metric: m.errors("ConnectionLost"),
      threshold: t.connectionLost ?? 3,
    });
    for (const [subject, fn] of Object.entries(fns)) {
      f.create({
        kind: "LambdaThrottles",
        subject,
        metric: fn.function.metricThrottles({ period }),
        threshold: t.throttles ?? 1,
      });
    }
    for (const [subject, machine, threshold] of [
      ["SingleHost", props.singleHost, t.singleHostFailures ?? 5],
      ["Fleet", props.fleet, t.fleetFailures ?? 1],
    ] as const) {
      f.create({
        kind: "WorkflowFailures",
        subject,
        metric: new cloudwatch.MathExpression({
          expression: "FILL(failed, 0) + FILL(timedOut, 0) + FILL(aborted, 0)",
          usingMetrics: {
            failed: machine.metricFailed({ period, statistic: "Sum" }),
            timedOut: machine.metricTimedOut({ period, statistic: "Sum" }),
            aborted: machine.metricAborted({ period, statistic: "Sum" }),
          },
          period,
          label: "failed + timed out + aborted",
        }),
        threshold,
      });
    }
    const lambdaInvocations = Object.fromEntries(
      Object.entries(fns).map(([k, fn]) => [`l${k}`, fn.function.metricInvocations({ period })]),
    );
    const lambdaSum = Object.keys(lambdaInvocations)
      .map((k) => `FILL(${k}, 0)`)
      .join(" + ");
    f.create({
      kind: "Heartbeat",
      metric: new cloudwatch.MathExpression({
        expression: `IF((${lambdaSum}) >= 1 AND FILL(ours, 0) < 0.5 * (${lambdaSum}), 1, 0)`,
        usingMetrics: { ...lambdaInvocations, ours: m.invocationsTotal() },
        period,
        label: "invocations without BoundedSsh metrics",
      }),
      threshold: 1,
      evaluationPeriods: 3,
    });

    this.page = f.createPage();
    this.alarms = f.alarms;

    this.dashboard = new MonitoringDashboard(this, "Dashboard", {
      dashboardName,
      metrics: m,
      apiFunction: props.apiFunction,
      taskFunction: props.taskFunction,
      stateMachines: { SingleHost: props.singleHost, Fleet: props.fleet },
      api: props.api,
      hangRuleName: this.hangRule.ruleName,
      alarms: [this.page, ...this.alarms.map((a) => a.alarm)],
    }).dashboard;

    this.enrichment = new AlarmEnrichment(this, "Enrichment", {
      stage,
      alarmTopic: topics.alarms,
      enrichedTopic: topics.enriched,
      topicKey: topics.key,
      functionLogGroups: fnLogGroups,
      workflowLogGroups: props.workflowLogGroups,
      runbookBaseUrl: props.runbookBaseUrl ?? RUNBOOK_BASE_URL,
      dashboardName,
    });
  }

  /** Hard timeouts leave no metric of ours (the handler never returned): count Lambda's line. */
  private hardTimeoutFilters(
    namespace: string,
    fnLogGroups: readonly logs.ILogGroup[],
    workflowLogGroups: readonly logs.ILogGroup[],
  ): void {
    for (const [i, group] of fnLogGroups.entries()) {
      new logs.MetricFilter(this, `HardTimeoutFilter${i}`, {
        logGroup: group,
        // Not audit lines: a command may contain the phrase.
        filterPattern: logs.FilterPattern.literal(`"Task timed out after" -"${AUDIT_TYPE}"`),
        metricNamespace: namespace,
        metricName: DERIVED_METRIC.LambdaHardTimeouts,
        metricValue: "1",
      });
    }
    for (const [i, group] of workflowLogGroups.entries()) {
      new logs.MetricFilter(this, `WorkflowHardTimeoutFilter${i}`, {
        logGroup: group,
        filterPattern: logs.FilterPattern.anyTerm("Sandbox.Timedout", "Lambda.Unknown"),
        metricNamespace: namespace,
        metricName: DERIVED_METRIC.WorkflowHardTimeouts,
        metricValue: "1",
      });
    }
  }

  private savedQueries(
    stage: string,
    fnLogGroups: readonly logs.ILogGroup[],
    workflowLogGroups: readonly logs.ILogGroup[],
  ): void {
    for (const [key, spec] of Object.entries(QUERIES) as [QueryKey, (typeof QUERIES)[QueryKey]][]) {
      // The L1 resource: the text is rendered from the catalog's spec, exactly as the
      // enrichment function runs it.
      new logs.CfnQueryDefinition(this, `Query${key}`, {
        name: queryName(stage, spec),
        queryString: renderQuery(spec),
        logGroupNames: (spec.logGroups === "workflows" ? workflowLogGroups : fnLogGroups).map(
          (g) => g.logGroupName,
        ),
      });
    }
  }
}
