/**
 * SPEC §8 monitoring, composed from `cdk/monitoring/`: the catalog (what each alarm means), the
 * alarm factory (names, descriptions, actions), the topics, the saved queries, the hang-hosts
 * insight rule, the dashboard and the enrichment function. This file only decides which metric
 * and threshold each catalog kind watches.
 */
import { CfnOutput, Duration, Stack } from "aws-cdk-lib";
import type * as apigw from "aws-cdk-lib/aws-apigateway";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import type * as dynamodb from "aws-cdk-lib/aws-dynamodb";
import * as lambda from "aws-cdk-lib/aws-lambda";
import * as logs from "aws-cdk-lib/aws-logs";
import * as sns from "aws-cdk-lib/aws-sns";
import * as subscriptions from "aws-cdk-lib/aws-sns-subscriptions";
import type * as sfn from "aws-cdk-lib/aws-stepfunctions";
import { Construct } from "constructs";
import { DEFAULT_METRIC_NAMESPACE, type PHASE_TIMEOUT_ERROR } from "../../lib/names.ts";
import {
  maintenanceAlarmName,
  QUERIES,
  type QueryKey,
  ROUTES,
  SERVICE_ERRORS,
  type Severity,
} from "../../operations/alarm-catalog.ts";
import { queryName, renderQuery } from "../../operations/queries.ts";
import type { AlarmRoutingConfig, AlarmSubscription } from "../deploy-config.ts";
import { defaultAlarmActions, type IAlarmActionStrategy } from "../monitoring/alarm-actions.ts";
import { AlarmFactory, type CatalogAlarm } from "../monitoring/alarm-factory.ts";
import { AlarmTopics } from "../monitoring/alarm-topics.ts";
import { MonitoringDashboard } from "../monitoring/dashboard.ts";
import { AlarmEnrichment } from "../monitoring/enrichment.ts";
import { ContactedHostsRule, HangHostsRule } from "../monitoring/hang-hosts-rule.ts";
import { createSloAlarms, sumOf } from "../monitoring/slo.ts";
import type { SshFunction } from "./ssh-function.ts";
import { DERIVED_METRIC, SshMetrics } from "./ssh-metrics.ts";
import { HARD_TIMEOUT_ERRORS } from "./workflow-tasks.ts";

export {
  ALARM_CATALOG,
  ALARM_KINDS,
  type AlarmKind,
  alarmName,
} from "../../operations/alarm-catalog.ts";
export { BURN_WINDOWS } from "../monitoring/slo.ts";

/** Thresholds (count per evaluation period unless noted). */
export interface MonitoringThresholds {
  /**
   * HandshakeHangs (fleet route): the minimum of distinct hosts (host:port) with a hang error
   * in one host period, whatever the ratio. @default 5
   */
  readonly hangHosts?: number;
  /** HandshakeHangs: hang hosts as a percentage of the hosts contacted in the period. @default 1 */
  readonly hangHostsPercent?: number;
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

/** Service level objectives (docs/alarms.md, "SLOs"; the deploy config's `slo`). */
export interface SloConfig {
  /**
   * Availability target in percent over 30 days: the share of invocations not failed by this
   * service (host outcomes count as good). Error budget = 100 - target. @default 99.9
   */
  readonly availabilityTarget?: number;
  /**
   * "Bounded" target in percent over 30 days: the share of invocations that ended within
   * their bound (slack ≥ 0, no hard timeout, no leaked socket). Error budget = 100 - target.
   * @default 99.9
   */
  readonly boundedTarget?: number;
}

/** Default `slo.availabilityTarget` (percent). */
export const DEFAULT_AVAILABILITY_TARGET = 99.9;
/**
 * Default `slo.boundedTarget` (percent): docs/alarms.md, "SLOs", says why not stricter (each
 * unbounded invocation already pages through LeakedSockets or DeadlineOverrun; the burn alarms
 * say how much of the traffic it is).
 */
export const DEFAULT_BOUNDED_TARGET = 99.9;

/** Properties of {@link Monitoring}. */
export interface MonitoringProps {
  readonly apiFunction: SshFunction;
  readonly taskFunction: SshFunction;
  readonly singleHost: sfn.StateMachine;
  readonly fleet: sfn.StateMachine;
  readonly workflowLogGroups: readonly logs.ILogGroup[];
  /** For the dashboard's API Gateway widget and the ApiEdge alarms. @default neither */
  readonly api?: apigw.RestApi;
  /**
   * The API's integration timeout: ApiEdge-Latency fires at 90 % of it.
   * @default Duration.seconds(29), API Gateway's default
   */
  readonly apiIntegrationTimeout?: Duration;
  /** Stage name: prefixes alarm, rule, query and dashboard names. @default "dev" */
  readonly stage?: string;
  /** @default DEFAULT_METRIC_NAMESPACE */
  readonly namespace?: string;
  /**
   * Routes every alarm (`cdk/monitoring/alarm-actions.ts`: `notifySns`, `bySeverity`, …).
   * @default defaultAlarmActions(the route alarm topics): each alarm notifies its route's topic
   * on ALARM and OK, page-level alarms each on their own; the composite summary notifies no one
   */
  readonly alarmActions?: IAlarmActionStrategy;
  /**
   * Subscribers per route and suppression (the deploy config's `alarms`). @default nobody
   * subscribed; suppression by the `Maintenance` alarm enabled, 10 minutes' extension
   */
  readonly routing?: AlarmRoutingConfig;
  /** Where docs/runbooks is published. @default RUNBOOK_BASE_URL */
  readonly runbookBaseUrl?: string;
  /** @default Duration.minutes(5) */
  readonly period?: Duration;
  /**
   * Period of the host ratio (HandshakeHangs): long enough to hold a fleet run's spread.
   * The alarm stays in ALARM while any of the last {@link HOST_EVALUATION_PERIODS} breaches.
   * @default Duration.minutes(15)
   */
  readonly hostPeriod?: Duration;
  /** @default MonitoringThresholds defaults */
  readonly thresholds?: MonitoringThresholds;
  /** @default availability 99.9 %, bounded 99.9 % */
  readonly slo?: SloConfig;
  /** The state tables watched for throttles (DynamoThrottles). @default none watched */
  readonly tables?: { readonly idempotency: dynamodb.ITable; readonly breaker: dynamodb.ITable };
}

/**
 * Host periods HandshakeHangs looks back over (one breaching is enough): 5 × 15 min covers an
 * hourly run's next occurrence, so persistent wedged hosts keep one notification open instead
 * of one per run.
 */
export const HOST_EVALUATION_PERIODS = 5;

/** Metric operators put (value 1) to open a maintenance window: see docs/deploy.md. */
export const MAINTENANCE_METRIC = "MaintenanceWindow";
/** One `MaintenanceWindow` datum holds the Maintenance alarm this many minutes. */
export const MAINTENANCE_HOLD_MINUTES = 15;

/** Default runbook location: the repository's docs/runbooks on the main branch. */
export const RUNBOOK_BASE_URL =
  "https://github.com/bounded-ssh/bounded-ssh/blob/main/docs/runbooks";

/**
 * A Lambda Duration within this of the timeout is a hard timeout (Lambda reports a timed-out
 * invocation at its timeout). A handler's designed maximum is timeout − reserve + 50 ms, far
 * below for any reserve above 60 ms.
 */
export const HARD_TIMEOUT_MARGIN_MS = 10;

/** Lambda `Duration` at or above this (ms) is a hard timeout of the function. */
function hardTimeoutLimitMs(fn: SshFunction): number {
  return fn.timeout.toMilliseconds() - HARD_TIMEOUT_MARGIN_MS;
}

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
  /** What CloudWatch notifies, per route (each one's subscriber is that route's enrichment). */
  readonly alarmTopics: Readonly<Record<Severity, sns.ITopic>>;
  /** What people subscribe to, per route: `page`, `ticket`, `fleet`. */
  readonly routeTopics: Readonly<Record<Severity, sns.ITopic>>;
  readonly alarms: CatalogAlarm[];
  /** The composite summary of the page-level alarms (no notification). */
  readonly page: cloudwatch.CompositeAlarm;
  /** In ALARM during deploys and maintenance windows; suppresses every notification. */
  readonly maintenance: cloudwatch.Alarm;
  readonly dashboard: cloudwatch.Dashboard;
  readonly hangRule: HangHostsRule;
  readonly contactedRule: ContactedHostsRule;
  /** The page route's enrichment function. */
  readonly enrichment: AlarmEnrichment;
  /** Every route's enrichment function. */
  readonly enrichments: Readonly<Record<Severity, AlarmEnrichment>>;

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
    const topics = new AlarmTopics(this, "Topics");
    this.alarmTopics = topics.alarms;
    this.routeTopics = topics.routes;
    const routing = props.routing ?? {};
    this.subscribe(topics.routes, routing);
    // What AWS Chatbot, a pager integration or another team's subscription needs.
    for (const route of ROUTES) {
      new CfnOutput(this, `${route[0]?.toUpperCase()}${route.slice(1)}TopicArn`, {
        value: topics.routes[route].topicArn,
        description: `bounded-ssh ${route} notifications (docs/alarms.md, "Routes")`,
      });
    }
    const fnLogGroups = [props.apiFunction.logGroup, props.taskFunction.logGroup];
    const dashboardName = `${stage}-BoundedSsh-${Stack.of(this).stackName}`;

    this.hardTimeoutFilters(namespace, props.workflowLogGroups);
    this.savedQueries(stage, fnLogGroups, props.workflowLogGroups);
    this.hangRule = new HangHostsRule(this, "HangHosts", { stage, logGroups: fnLogGroups });
    this.contactedRule = new ContactedHostsRule(this, "ContactedHosts", {
      stage,
      logGroups: fnLogGroups,
    });

    // Deploys and maintenance windows: operators put MaintenanceWindow = 1 (docs/deploy.md);
    // one datum holds it MAINTENANCE_HOLD_MINUTES. Not from the catalog: it is a switch, not a
    // symptom, and it notifies no one.
    this.maintenance = new cloudwatch.Alarm(this, "Maintenance", {
      alarmName: maintenanceAlarmName(stage),
      alarmDescription: `In ALARM while a deploy or maintenance window is open (${MAINTENANCE_METRIC} = 1 in ${namespace}, each datum holds ${MAINTENANCE_HOLD_MINUTES} minutes): every bounded-ssh notification of this stage is suppressed meanwhile (ActionsSuppressor of the <alarm>-Notify composites). See docs/deploy.md, "Deploys and maintenance windows".`,
      metric: new cloudwatch.Metric({
        namespace,
        metricName: MAINTENANCE_METRIC,
        statistic: "Maximum",
        period: Duration.minutes(1),
      }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: MAINTENANCE_HOLD_MINUTES,
      datapointsToAlarm: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    const suppress = routing.maintenance?.enabled ?? true;

    const f = new AlarmFactory(this, {
      stage,
      actions: props.alarmActions ?? defaultAlarmActions(topics.alarms),
      runbookBaseUrl: props.runbookBaseUrl ?? RUNBOOK_BASE_URL,
      dashboardName,
      ...(suppress
        ? {
            suppressor: this.maintenance,
            suppressorExtension: Duration.minutes(routing.maintenance?.extensionMinutes ?? 10),
          }
        : {}),
    });
    const fns = { Api: props.apiFunction, Task: props.taskFunction } as const;

    // --- fleet owners: hang hosts / hosts contacted ------------------------------------------
    // A percentage AND a minimum count: the expression is the percentage once the count is
    // reached, else 0. MAX guards a denominator below the numerator (the rules approximate).
    const hostPeriod = props.hostPeriod ?? Duration.minutes(15);
    const minHosts = t.hangHosts ?? 5;
    f.create({
      kind: "HandshakeHangs",
      metric: new cloudwatch.MathExpression({
        expression: `IF(FILL(hang, 0) >= ${minHosts}, 100 * FILL(hang, 0) / MAX([FILL(contacted, 0), FILL(hang, 0), 1]), 0)`,
        usingMetrics: {
          hang: this.hangRule.uniqueHosts(hostPeriod),
          contacted: this.contactedRule.uniqueHosts(hostPeriod),
        },
        period: hostPeriod,
        label: `hang hosts % of hosts contacted (at least ${minHosts} hosts)`,
      }),
      threshold: t.hangHostsPercent ?? 1,
      evaluationPeriods: HOST_EVALUATION_PERIODS,
      datapointsToAlarm: 1,
    });

    // --- symptoms: the SLOs' burn rates (availability, bounded) ------------------------------
    this.availabilityBurn(f, m, fns, props.slo ?? {});
    this.boundedBurn(f, m, fns, props.slo ?? {});

    // --- page level -----------------------------------------------------------------------
    f.create({
      kind: "LeakedSockets",
      metric: m.leakedSockets(),
      threshold: 0,
      comparison: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
    });
    // Only signals no remote text can produce (docs/alarms.md, "What a remote cannot trip"):
    // Lambda's own Duration measurement, the handler's DeadlineSlack datum and the structured
    // error name of a workflow's failure event. Never free text in a log line.
    const overrun: Record<string, cloudwatch.IMetric> = {
      sfnHard: m.derived("WorkflowHardTimeouts"),
      slack: m.deadlineSlack("Minimum").with({ label: undefined }),
    };
    const terms = ["FILL(sfnHard, 0)", "IF(FILL(slack, 0) < 0, 1, 0)"];
    for (const [key, fn] of Object.entries(fns)) {
      overrun[`dur${key}`] = fn.function.metricDuration({ statistic: "Maximum", period });
      terms.push(`IF(FILL(dur${key}, 0) >= ${hardTimeoutLimitMs(fn)}, 1, 0)`);
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

    // One enrichment per route; the page route keeps the construct id it always had.
    this.enrichments = Object.fromEntries(
      ROUTES.map((route) => [
        route,
        new AlarmEnrichment(this, route === "page" ? "Enrichment" : `Enrichment-${route}`, {
          stage,
          route,
          alarmTopic: topics.alarms[route],
          enrichedTopic: topics.routes[route],
          topicKey: topics.key,
          functionLogGroups: fnLogGroups,
          workflowLogGroups: props.workflowLogGroups,
          runbookBaseUrl: props.runbookBaseUrl ?? RUNBOOK_BASE_URL,
          dashboardName,
        }),
      ]),
    ) as Record<Severity, AlarmEnrichment>;
    this.enrichment = this.enrichments.page;

    // --- capacity: concurrency, workflow and table throttles --------------------------------
    const reserved = (fns.Task.function.node.defaultChild as lambda.CfnFunction)
      .reservedConcurrentExecutions;
    if (typeof reserved === "number") {
      f.create({
        kind: "TaskConcurrency",
        metric: fns.Task.function.metric("ConcurrentExecutions", { period, statistic: "Maximum" }),
        threshold: Math.ceil(0.9 * reserved),
        evaluationPeriods: 3,
      });
    }
    for (const [subject, machine] of [
      ["SingleHost", props.singleHost],
      ["Fleet", props.fleet],
    ] as const) {
      f.create({
        kind: "WorkflowThrottles",
        subject,
        metric: machine.metric("ExecutionThrottled", { period, statistic: "Sum" }),
        threshold: 1,
      });
    }
    if (props.tables) {
      for (const [subject, table] of [
        ["Idempotency", props.tables.idempotency],
        ["Breaker", props.tables.breaker],
      ] as const) {
        f.create({
          kind: "DynamoThrottles",
          subject,
          metric: new cloudwatch.MathExpression({
            expression: "FILL(r, 0) + FILL(w, 0)",
            usingMetrics: {
              r: table.metric("ReadThrottleEvents", { period, statistic: "Sum" }),
              w: table.metric("WriteThrottleEvents", { period, statistic: "Sum" }),
            },
            period,
            label: "read + write throttle events",
          }),
          threshold: 1,
        });
      }
    }

    // --- the API edge, delivery and enrichment ----------------------------------------------
    if (props.api) {
      const api = props.api;
      // Each invocation answers at most once: 5XX beyond the invocations came from the edge.
      f.create({
        kind: "ApiEdge",
        subject: "Errors",
        metric: new cloudwatch.MathExpression({
          expression: "MAX([FILL(e5xx, 0) - FILL(inv, 0), 0])",
          usingMetrics: {
            e5xx: api.metricServerError({ period, statistic: "Sum" }),
            inv: fns.Api.function.metricInvocations({ period }),
          },
          period,
          label: "5XX answered without an invocation",
        }),
        threshold: 5,
      });
      const timeoutMs = (props.apiIntegrationTimeout ?? Duration.seconds(29)).toMilliseconds();
      f.create({
        kind: "ApiEdge",
        subject: "Latency",
        metric: api.metricIntegrationLatency({ period, statistic: "p99" }),
        threshold: Math.floor(0.9 * timeoutMs),
        evaluationPeriods: 3,
      });
    }
    f.create({
      kind: "NotificationFailures",
      metric: new cloudwatch.MathExpression({
        expression: ROUTES.map((r) => `FILL(${r}, 0)`).join(" + "),
        usingMetrics: Object.fromEntries(
          ROUTES.map((r) => [
            r,
            topics.routes[r].metricNumberOfNotificationsFailed({ period, statistic: "Sum" }),
          ]),
        ),
        period,
        label: "SNS notifications failed (route topics)",
      }),
      threshold: 1,
    });
    f.create({
      kind: "EnrichmentErrors",
      metric: new cloudwatch.MathExpression({
        expression: ROUTES.map((r) => `FILL(${r}, 0)`).join(" + "),
        usingMetrics: Object.fromEntries(
          ROUTES.map((r) => [r, this.enrichments[r].function.metricErrors({ period })]),
        ),
        period,
        label: "enrichment errors",
      }),
      threshold: 1,
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
  }

  /**
   * `AvailabilityBurn` (docs/alarms.md, "SLOs"): bad / all per window, over the error budget.
   * Bad: {@link SERVICE_ERRORS} (our Errors by name), API function crashes (Lambda Errors: it
   * answers SSH errors as responses), throttles of either function and workflow hard timeouts.
   * All: our Invocations plus the invocations that never reached our metrics (throttled,
   * crashed). Host outcomes are in the denominator only: good for this service.
   */
  private availabilityBurn(
    f: AlarmFactory,
    m: SshMetrics,
    fns: Readonly<Record<"Api" | "Task", SshFunction>>,
    slo: SloConfig,
  ): void {
    createSloAlarms(f, {
      kind: "AvailabilityBurn",
      sli: "availability",
      targetKey: "slo.availabilityTarget",
      target: slo.availabilityTarget ?? DEFAULT_AVAILABILITY_TARGET,
      counts: (period) => {
        const errs = Object.fromEntries(
          SERVICE_ERRORS.map((name, i) => [`e${i}`, m.errors(name).with({ period })]),
        );
        return {
          metrics: {
            ...errs,
            crashApi: fns.Api.function.metricErrors({ period }),
            thrApi: fns.Api.function.metricThrottles({ period }),
            thrTask: fns.Task.function.metricThrottles({ period }),
            sfnHard: m.derived("WorkflowHardTimeouts").with({ period }),
            all: m.invocationsTotal().with({ period }),
          },
          bad: sumOf([...Object.keys(errs), "crashApi", "thrApi", "thrTask", "sfnHard"]),
          all: sumOf(["all", "crashApi", "thrApi", "thrTask"]),
        };
      },
    });
  }

  /**
   * `BoundedBurn` (docs/alarms.md, "SLOs"): unbounded / all invocations per window, over the
   * error budget. Unbounded is what the handler reports of itself (`Unbounded`: slack < 0 or a
   * leaked socket, `lib/metrics.ts`) plus hard timeouts, which it cannot report: the signals
   * `DeadlineOverrun` reads, as counts. Task: the workflows' failure events whose structured
   * `details.error` is a hard timeout (`WorkflowHardTimeouts`, one per invocation), at least 1
   * when Lambda's `Duration` Maximum reached the timeout (an invocation no project workflow
   * made). Api: when its `Duration` reached the timeout, its Lambda `Errors` in the window (it
   * answers SSH errors as responses, so its Lambda errors are crashes or hard timeouts; a crash
   * in the same window counts too), at least 1. Hard-timed-out invocations never published
   * `Invocations`: they join the denominator.
   */
  private boundedBurn(
    f: AlarmFactory,
    m: SshMetrics,
    fns: Readonly<Record<"Api" | "Task", SshFunction>>,
    slo: SloConfig,
  ): void {
    createSloAlarms(f, {
      kind: "BoundedBurn",
      sli: "bounded",
      targetKey: "slo.boundedTarget",
      target: slo.boundedTarget ?? DEFAULT_BOUNDED_TARGET,
      counts: (period) => {
        const hardApi = `IF(FILL(durApi, 0) >= ${hardTimeoutLimitMs(fns.Api)}, MAX([FILL(errApi, 0), 1]), 0)`;
        const hardTask = `MAX([FILL(sfnHard, 0), IF(FILL(durTask, 0) >= ${hardTimeoutLimitMs(fns.Task)}, 1, 0)])`;
        return {
          metrics: {
            unbounded: m.unbounded().with({ period }),
            all: m.invocationsTotal().with({ period }),
            sfnHard: m.derived("WorkflowHardTimeouts").with({ period }),
            durApi: fns.Api.function.metricDuration({ statistic: "Maximum", period }),
            errApi: fns.Api.function.metricErrors({ period }),
            durTask: fns.Task.function.metricDuration({ statistic: "Maximum", period }),
          },
          bad: `${sumOf(["unbounded"])} + ${hardApi} + ${hardTask}`,
          all: `${sumOf(["all"])} + ${hardApi} + ${hardTask}`,
        };
      },
    });
  }

  /**
   * The deploy config's subscribers: each route's own, and the legacy `emails` and
   * `httpsEndpoints` on every route (as before routes existed: nothing is lost).
   */
  private subscribe(
    topics: Readonly<Record<Severity, sns.Topic>>,
    routing: AlarmRoutingConfig,
  ): void {
    const filterOf = (sub: AlarmSubscription) =>
      sub.filter
        ? {
            filterPolicy: Object.fromEntries(
              Object.entries(sub.filter).map(([k, values]) => [
                k,
                sns.SubscriptionFilter.stringFilter({ allowlist: [...(values ?? [])] }),
              ]),
            ),
          }
        : {};
    for (const route of ROUTES) {
      const topic = topics[route];
      for (const [i, sub] of (routing.routes?.[route]?.subscriptions ?? []).entries()) {
        const opts = filterOf(sub);
        if (sub.protocol === "email") {
          topic.addSubscription(new subscriptions.EmailSubscription(sub.address, opts));
        } else if (sub.protocol === "https") {
          topic.addSubscription(
            new subscriptions.UrlSubscription(sub.url, {
              ...opts,
              protocol: sns.SubscriptionProtocol.HTTPS,
              ...(sub.rawMessageDelivery ? { rawMessageDelivery: true } : {}),
            }),
          );
        } else {
          const fn = lambda.Function.fromFunctionArn(
            this,
            `Subscriber-${route}-${i}`,
            sub.functionArn,
          );
          topic.addSubscription(new subscriptions.LambdaSubscription(fn, opts));
        }
      }
      for (const email of routing.emails ?? []) {
        topic.addSubscription(new subscriptions.EmailSubscription(email));
      }
      for (const url of routing.httpsEndpoints ?? []) {
        topic.addSubscription(new subscriptions.UrlSubscription(url));
      }
    }
  }

  /**
   * A hard timeout leaves no metric of ours (the handler never returned). In the functions'
   * logs the only trace is free text ("Task timed out after"), which a remote DISCONNECT or a
   * command's output can reproduce inside the runtime's "Invoke Error" line, so no filter reads
   * those logs: the function's own hard timeout is Lambda's `Duration` at the timeout. A
   * workflow sees it as the structured error name of its failure event (`details.error`, set by
   * Lambda and Step Functions from the error type, never from a message or cause).
   */
  private hardTimeoutFilters(
    namespace: string,
    workflowLogGroups: readonly logs.ILogGroup[],
  ): void {
    for (const [i, group] of workflowLogGroups.entries()) {
      new logs.MetricFilter(this, `WorkflowHardTimeoutFilter${i}`, {
        logGroup: group,
        filterPattern: logs.FilterPattern.any(
          ...HARD_TIMEOUT_ERRORS.map((e) =>
            logs.FilterPattern.stringValue("$.details.error", "=", e),
          ),
        ),
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
