import { Duration, Stack } from "aws-cdk-lib";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as actions from "aws-cdk-lib/aws-cloudwatch-actions";
import * as iam from "aws-cdk-lib/aws-iam";
import * as kms from "aws-cdk-lib/aws-kms";
import * as logs from "aws-cdk-lib/aws-logs";
import * as sns from "aws-cdk-lib/aws-sns";
import type * as sfn from "aws-cdk-lib/aws-stepfunctions";
import { Construct } from "constructs";
import {
  DEFAULT_METRIC_NAMESPACE,
  PHASE_TIMEOUT_ERROR,
  PHASES,
  STATUSES,
} from "../../lib/names.ts";
import type { SshFunction } from "./ssh-function.ts";
import { DERIVED_METRIC, SshMetrics } from "./ssh-metrics.ts";

/**
 * Field names of the audit line (SPEC §8) used by the saved queries. One place to change if the
 * handler's audit line differs.
 */
export const AUDIT_FIELDS = {
  host: "target.host",
  port: "target.port",
  username: "target.username",
  /** Result status (SPEC §5) or `error` without a result. */
  status: "outcome",
  errorName: "error.name",
  phase: "phase",
  caller: "caller",
  totalMs: "timings.totalMs",
  /** Time left when the handler returned (ms). */
  slackMs: "slackMs",
  /** Discriminator of the audit line among other log lines. */
  type: "type",
} as const;

/** Saved Logs Insights queries; alarms name the one that lists the hosts involved. */
export const QUERY = {
  HostsByError: "bounded-ssh/hosts-by-error-and-phase",
  HandshakeHangHosts: "bounded-ssh/handshake-hang-hosts",
  ConnectTimeoutHosts: "bounded-ssh/connect-timeout-hosts",
  CommandTimeoutHosts: "bounded-ssh/command-timeout-hosts",
  LeakedSockets: "bounded-ssh/leaked-sockets",
  DeadlineOverruns: "bounded-ssh/deadline-overruns",
  InvocationFailures: "bounded-ssh/invocation-failures",
  CallerVolume: "bounded-ssh/caller-volume",
  WorkflowFailures: "bounded-ssh/workflow-failures",
} as const;
type QueryKey = keyof typeof QUERY;

/** Runbook page of an alarm kind: one page per kind, shared by its per-function instances. */
export function runbookPath(kind: AlarmKind): string {
  return `docs/runbooks/${kind}.md`;
}

/** The one alarm naming helper: `<prefix>-<Kind>[-<Subject>]`. */
export function alarmName(prefix: string, kind: AlarmKind, subject?: string): string {
  return subject ? `${prefix}-${kind}-${subject}` : `${prefix}-${kind}`;
}

/** Alarm kinds, each with a runbook page of the same name. */
export const ALARM_KINDS = [
  "HandshakeHangs",
  "ConnectTimeouts",
  "CommandTimeouts",
  "LeakedSockets",
  "DeadlineOverrun",
  "InternalErrors",
  "LambdaErrors",
  "LambdaThrottles",
  "WorkflowFailures",
] as const;
export type AlarmKind = (typeof ALARM_KINDS)[number];

/** Thresholds (count per evaluation period unless noted). */
export interface MonitoringThresholds {
  /** @default 1 — a hang is the incident's signature */
  readonly handshakeHangs?: number;
  /** @default 5 */
  readonly connectTimeouts?: number;
  /** @default 3 */
  readonly commandTimeouts?: number;
  /** Duration as a fraction of the function timeout that counts as an overrun. @default 0.9 */
  readonly durationFraction?: number;
  /** API function errors (it returns errors as responses, so any Lambda error is a crash). @default 1 */
  readonly apiLambdaErrors?: number;
  /** Task function error rate in percent (it throws SSH errors by design). @default 50 */
  readonly taskErrorRatePercent?: number;
  /** @default 1 */
  readonly throttles?: number;
  /** Failed single-host executions (each failed host fails one). @default 5 */
  readonly singleHostFailures?: number;
  /** Failed fleet executions. @default 1 */
  readonly fleetFailures?: number;
}

/** Properties of {@link Monitoring}. */
export interface MonitoringProps {
  readonly apiFunction: SshFunction;
  readonly taskFunction: SshFunction;
  readonly singleHost: sfn.StateMachine;
  readonly fleet: sfn.StateMachine;
  readonly workflowLogGroups: readonly logs.ILogGroup[];
  /** @default DEFAULT_METRIC_NAMESPACE */
  readonly namespace?: string;
  /** @default a new KMS-encrypted topic */
  readonly alarmTopic?: sns.ITopic;
  /** @default "BoundedSsh" */
  readonly alarmPrefix?: string;
  /** @default Duration.minutes(5) */
  readonly period?: Duration;
  /** @default MonitoringThresholds defaults */
  readonly thresholds?: MonitoringThresholds;
}

interface AlarmSpec {
  kind: AlarmKind;
  subject?: string;
  metric: cloudwatch.IMetric;
  threshold: number;
  comparison?: cloudwatch.ComparisonOperator;
  evaluationPeriods?: number;
  treatMissingData: cloudwatch.TreatMissingData;
  meaning: string;
  checks: readonly [string, string, string];
  query: QueryKey;
}

/**
 * SPEC §8: alarms with reviewer-facing descriptions, an SNS topic, a dashboard and saved
 * Logs Insights queries. Metrics come from {@link SshMetrics}; this construct only decides
 * thresholds and presentation.
 */
export class Monitoring extends Construct {
  readonly topic: sns.ITopic;
  readonly alarms: cloudwatch.Alarm[] = [];
  readonly dashboard: cloudwatch.Dashboard;
  private readonly prefix: string;

  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id);
    const t = props.thresholds ?? {};
    const period = props.period ?? Duration.minutes(5);
    const namespace = props.namespace ?? DEFAULT_METRIC_NAMESPACE;
    const m = new SshMetrics(namespace, period);
    this.prefix = props.alarmPrefix ?? "BoundedSsh";
    this.topic = props.alarmTopic ?? this.createTopic();
    const fnLogGroups = [props.apiFunction.logGroup, props.taskFunction.logGroup];

    // Hard timeouts leave no metric of ours (the handler never returned): count Lambda's line.
    for (const [i, group] of fnLogGroups.entries()) {
      new logs.MetricFilter(this, `HardTimeoutFilter${i}`, {
        logGroup: group,
        filterPattern: logs.FilterPattern.literal('"Task timed out after"'),
        metricNamespace: namespace,
        metricName: DERIVED_METRIC.LambdaHardTimeouts,
        metricValue: "1",
      });
    }
    for (const [i, group] of props.workflowLogGroups.entries()) {
      new logs.MetricFilter(this, `WorkflowHardTimeoutFilter${i}`, {
        logGroup: group,
        filterPattern: logs.FilterPattern.anyTerm("Sandbox.Timedout", "Lambda.Unknown"),
        metricNamespace: namespace,
        metricName: DERIVED_METRIC.WorkflowHardTimeouts,
        metricValue: "1",
      });
    }

    this.defineQueries(fnLogGroups, props.workflowLogGroups);

    const notBreaching = cloudwatch.TreatMissingData.NOT_BREACHING;
    const fraction = t.durationFraction ?? 0.9;
    const overrunMetrics: Record<string, cloudwatch.IMetric> = {
      hard: m.derived("LambdaHardTimeouts"),
      sfnHard: m.derived("WorkflowHardTimeouts"),
    };
    const overrunTerms = ["FILL(hard, 0)", "FILL(sfnHard, 0)"];
    for (const [key, fn] of [
      ["api", props.apiFunction],
      ["task", props.taskFunction],
    ] as const) {
      overrunMetrics[`${key}Dur`] = fn.function.metricDuration({
        statistic: cloudwatch.Stats.MAXIMUM,
        period,
      });
      const limitMs = Math.floor(fn.timeout.toMilliseconds() * fraction);
      overrunTerms.push(`IF(FILL(${key}Dur, 0) >= ${limitMs}, 1, 0)`);
    }

    const specs: AlarmSpec[] = [
      {
        kind: "HandshakeHangs",
        metric: m.handshakeHangs(),
        threshold: t.handshakeHangs ?? 1,
        // Count metrics are published as 0 on every invocation: missing data means no traffic.
        treatMissingData: notBreaching,
        meaning:
          "Targets accepted TCP but did not finish the SSH banner or key exchange in time (BannerTimeout/HandshakeTimeout) - the stuck-session incident's signature, now bounded.",
        checks: [
          "Run the query: which hosts, banner or handshake phase, one host or many",
          "From the same network: nc <host> 22 - does an SSH-2.0 line arrive?",
          "Host side: sshd MaxStartups/load, a middlebox or port-forward answering for sshd",
        ],
        query: "HandshakeHangHosts",
      },
      {
        kind: "ConnectTimeouts",
        metric: m.timeouts("connect"),
        threshold: t.connectTimeouts ?? 5,
        treatMissingData: notBreaching,
        meaning: "TCP connects to targets did not complete in time (Timeouts, Phase=connect).",
        checks: [
          "Run the query: which hosts and ports",
          "Security groups / NACLs / routes between the function and those hosts",
          "Host up? Firewall dropping SYNs? Wrong port in the request?",
        ],
        query: "ConnectTimeoutHosts",
      },
      {
        kind: "CommandTimeouts",
        metric: m.timeouts("exec"),
        threshold: t.commandTimeouts ?? 3,
        treatMissingData: notBreaching,
        meaning:
          "Remote commands outlived their time and were stopped (CommandTimeout, Timeouts Phase=exec).",
        checks: [
          "Run the query: which hosts and callers, remoteCleanup value",
          "Is timeoutMs realistic for the command? Compare with PhaseLatency exec p99",
          "On the host: the command hanging on stdin, locks or I/O; was it killed?",
        ],
        query: "CommandTimeoutHosts",
      },
      {
        kind: "LeakedSockets",
        metric: m.leakedSockets(),
        threshold: 0,
        comparison: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        // No invocations, no containers to leak from: missing data is healthy.
        treatMissingData: notBreaching,
        meaning:
          "An invocation found TCP sockets still open from an earlier one in its container: teardown missed a socket (a bug; the guarantee is zero).",
        checks: [
          "Run the query: request ids and log streams where LeakedSockets > 0",
          "The previous invocation in that log stream: its error, phase and slack",
          "Recent deploys of lib/ or functions/; reproduce with npm run soak",
        ],
        query: "LeakedSockets",
      },
      {
        kind: "DeadlineOverrun",
        metric: new cloudwatch.MathExpression({
          expression: overrunTerms.join(" + "),
          usingMetrics: overrunMetrics,
          period,
          label: "overrun signals",
        }),
        threshold: 1,
        treatMissingData: notBreaching,
        meaning: `A function ran to (or within ${Math.round((1 - fraction) * 100)}% of) its Lambda timeout, or a workflow saw Sandbox.Timedout/Lambda.Unknown: teardown and metrics may have been skipped. Must never happen.`,
        checks: [
          "Run the query: 'Task timed out' lines and invocations with little slack",
          "Dashboard DeadlineSlack min: is the reserve (BSSH_RESERVE_MS) too small?",
          "Timeout order in cdk/config.ts; a blocking call outside the deadline (DNS, SDK)",
        ],
        query: "DeadlineOverruns",
      },
      {
        kind: "InternalErrors",
        metric: m.errors("InternalError"),
        threshold: 1,
        treatMissingData: notBreaching,
        meaning: "The engine or a handler hit InternalError: a bug, never expected.",
        checks: [
          "Run the query: stack traces and the request ids",
          "Which phase; is it one target or every request",
          "Recent deploys; reproduce with npm run invoke on the logged request",
        ],
        query: "InvocationFailures",
      },
      {
        kind: "LambdaErrors",
        subject: "Api",
        metric: props.apiFunction.function.metricErrors({ period }),
        threshold: t.apiLambdaErrors ?? 1,
        treatMissingData: notBreaching,
        meaning:
          "The API function failed an invocation (it answers SSH errors with HTTP codes, so this is a crash: init failure, out of memory, unhandled rejection).",
        checks: [
          "Run the query: ERROR lines and stack traces",
          "Init errors after a deploy (bundle, env vars, SSM parameter names)",
          "Memory: max used vs configured in the REPORT lines",
        ],
        query: "InvocationFailures",
      },
      {
        kind: "LambdaErrors",
        subject: "Task",
        metric: new cloudwatch.MathExpression({
          expression: "100 * FILL(e, 0) / MAX([FILL(i, 0), 1])",
          usingMetrics: {
            e: props.taskFunction.function.metricErrors({ period }),
            i: props.taskFunction.function.metricInvocations({ period }),
          },
          period,
          label: "task error rate %",
        }),
        threshold: t.taskErrorRatePercent ?? 50,
        evaluationPeriods: 3,
        treatMissingData: notBreaching,
        meaning:
          "Most task invocations are failing for 15 minutes. The task function throws SSH errors by design (Step Functions matches on them), so this watches the rate: a systemic cause, not one bad host.",
        checks: [
          "Run the query: error names and phases by host - one error everywhere?",
          "CredentialInvalid/TargetNotAllowed everywhere: secret or policy parameter changed (CredentialUnavailable: Secrets Manager throttled or unreachable)",
          "Network-wide ConnectTimeout: VPC routes, NAT, security group egress",
        ],
        query: "HostsByError",
      },
      ...(["Api", "Task"] as const).map(
        (subject): AlarmSpec => ({
          kind: "LambdaThrottles",
          subject,
          metric: (subject === "Api"
            ? props.apiFunction
            : props.taskFunction
          ).function.metricThrottles({ period }),
          threshold: t.throttles ?? 1,
          treatMissingData: notBreaching,
          meaning: `The ${subject} function was throttled: callers got 429/500 or workflow retries.`,
          checks: [
            "Run the query: which callers drove the volume",
            "Account concurrency and any reserved concurrency on the function",
            "Fleet runs: MaxConcurrency in the execution input",
          ],
          query: "CallerVolume",
        }),
      ),
      ...(
        [
          ["SingleHost", props.singleHost, t.singleHostFailures ?? 5],
          ["Fleet", props.fleet, t.fleetFailures ?? 1],
        ] as const
      ).map(
        ([subject, machine, threshold]): AlarmSpec => ({
          kind: "WorkflowFailures",
          subject,
          metric: machine.metricFailed({ period, statistic: cloudwatch.Stats.SUM }),
          threshold,
          treatMissingData: notBreaching,
          meaning:
            subject === "Fleet"
              ? "Fleet executions failed: more children failed than ToleratedFailurePercentage allows, or the run itself broke (bad input, S3 item list, timeout)."
              : "Single-host executions failed (each failed session fails one): many at once points to a shared cause.",
          checks: [
            "Run the query: failed executions and their error names",
            "Execution history: the failing state and its Cause (the result JSON: phase, timings)",
            "Hosts by error (hosts-by-error-and-phase query): one host or many",
          ],
          query: "WorkflowFailures",
        }),
      ),
    ];
    for (const spec of specs) this.alarms.push(this.alarm(spec));

    this.dashboard = this.createDashboard(m, props);
  }

  private alarm(spec: AlarmSpec): cloudwatch.Alarm {
    const name = alarmName(this.prefix, spec.kind, spec.subject);
    const description = [
      `WHAT: ${spec.meaning}`,
      `CHECK: 1) ${spec.checks[0]}; 2) ${spec.checks[1]}; 3) ${spec.checks[2]}.`,
      `RUNBOOK: ${runbookPath(spec.kind)}`,
      `QUERY: ${QUERY[spec.query]} (CloudWatch Logs Insights > Saved queries)`,
    ].join("\n");
    const alarm = new cloudwatch.Alarm(this, `${spec.kind}${spec.subject ?? ""}`, {
      alarmName: name,
      alarmDescription: description,
      metric: spec.metric,
      threshold: spec.threshold,
      comparisonOperator:
        spec.comparison ?? cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: spec.evaluationPeriods ?? 1,
      treatMissingData: spec.treatMissingData,
    });
    alarm.addAlarmAction(new actions.SnsAction(this.topic));
    alarm.addOkAction(new actions.SnsAction(this.topic));
    return alarm;
  }

  private createTopic(): sns.Topic {
    // CloudWatch cannot publish to a topic under the AWS-managed SNS key: a customer key with
    // a grant to the CloudWatch service principal is what makes encrypted alarm topics work.
    const key = new kms.Key(this, "AlarmTopicKey", {
      enableKeyRotation: true,
      description: "bounded-ssh alarm topic",
    });
    key.grant(
      new iam.ServicePrincipal("cloudwatch.amazonaws.com"),
      "kms:Decrypt",
      "kms:GenerateDataKey*",
    );
    return new sns.Topic(this, "AlarmTopic", {
      displayName: "bounded-ssh alarms",
      masterKey: key,
      enforceSSL: true,
    });
  }

  private defineQueries(
    fnLogGroups: readonly logs.ILogGroup[],
    workflowLogGroups: readonly logs.ILogGroup[],
  ): void {
    const f = AUDIT_FIELDS;
    const byHost = `${f.host}, ${f.port}`;
    const hostQuery = (filter: string, extra = ""): logs.QueryString =>
      new logs.QueryString({
        fields: ["@timestamp", f.host, f.port, f.errorName, f.phase, f.status, f.caller],
        filterStatements: [`${f.type} = "bounded-ssh.audit"`, filter],
        statsStatements: [
          `count(*) as sessions, max(@timestamp) as last by ${byHost}, ${f.errorName}, ${f.phase}${extra}`,
        ],
        sort: "sessions desc",
        limit: 200,
      });
    const texts: Record<QueryKey, logs.QueryString> = {
      HostsByError: hostQuery(`ispresent(${f.errorName})`),
      HandshakeHangHosts: hostQuery(`${f.errorName} in ["BannerTimeout", "HandshakeTimeout"]`),
      ConnectTimeoutHosts: hostQuery(`${f.errorName} = "${PHASE_TIMEOUT_ERROR.connect}"`),
      CommandTimeoutHosts: hostQuery(
        `${f.errorName} = "${PHASE_TIMEOUT_ERROR.exec}"`,
        `, ${f.username}`,
      ),
      LeakedSockets: new logs.QueryString({
        fields: ["@timestamp", "@logStream", "@requestId", "LeakedSockets", "leakedSockets"],
        filterStatements: ["LeakedSockets > 0 or leakedSockets > 0"],
        sort: "@timestamp desc",
        limit: 200,
      }),
      DeadlineOverruns: new logs.QueryString({
        fields: ["@timestamp", "@logStream", "@requestId", f.host, f.phase, f.slackMs, "@message"],
        filterStatements: [`@message like /Task timed out after/ or ${f.slackMs} < 200`],
        sort: "@timestamp desc",
        limit: 200,
      }),
      InvocationFailures: new logs.QueryString({
        fields: [
          "@timestamp",
          "@logStream",
          "@requestId",
          f.host,
          f.errorName,
          f.phase,
          "@message",
        ],
        filterStatements: [
          `@message like /(?i)(ERROR|Runtime\\.|InternalError|Task timed out)/ or ${f.errorName} = "InternalError"`,
        ],
        sort: "@timestamp desc",
        limit: 200,
      }),
      CallerVolume: new logs.QueryString({
        fields: [f.caller],
        filterStatements: [`${f.type} = "bounded-ssh.audit"`],
        statsStatements: [`count(*) as invocations by ${f.caller}, bin(1m)`],
        sort: "invocations desc",
        limit: 200,
      }),
      WorkflowFailures: new logs.QueryString({
        fields: ["@timestamp", "type", "execution_arn", "details.error", "details.resource"],
        filterStatements: ["type like /Failed|TimedOut|Aborted/"],
        sort: "@timestamp desc",
        limit: 200,
      }),
    };
    for (const [key, queryString] of Object.entries(texts) as [QueryKey, logs.QueryString][]) {
      new logs.QueryDefinition(this, `Query${key}`, {
        queryDefinitionName: QUERY[key],
        queryString,
        logGroups: [...(key === "WorkflowFailures" ? workflowLogGroups : fnLogGroups)],
      });
    }
  }

  private createDashboard(m: SshMetrics, props: MonitoringProps): cloudwatch.Dashboard {
    const stack = Stack.of(this);
    const dashboard = new cloudwatch.Dashboard(this, "Dashboard", {
      dashboardName: `${this.prefix}-${stack.stackName}`,
    });
    const timeoutPhases = Object.keys(PHASE_TIMEOUT_ERROR) as (keyof typeof PHASE_TIMEOUT_ERROR)[];
    const sessionPhases = PHASES.filter((p) => p !== "teardown");
    dashboard.addWidgets(
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
    dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: "Phase latency p99 (ms)",
        left: [...sessionPhases, "teardown" as const].map((p) => m.phaseLatency(p, "p99")),
        width: 12,
      }),
      new cloudwatch.GraphWidget({
        title: "Deadline slack (ms): time left when the handler returned",
        left: [m.deadlineSlack("Minimum"), m.deadlineSlack("p1"), m.deadlineSlack("p50")],
        width: 12,
      }),
    );
    dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: "Leaks and hangs",
        left: [m.leakedSockets(), m.handshakeHangs(), m.derived("LambdaHardTimeouts")],
        width: 12,
      }),
      new cloudwatch.GraphWidget({
        title: "Lambda duration max vs timeout (ms)",
        left: [props.apiFunction, props.taskFunction].map((fn) =>
          fn.function.metricDuration({ statistic: "Maximum" }),
        ),
        leftAnnotations: [props.apiFunction, props.taskFunction].map((fn) => ({
          value: fn.timeout.toMilliseconds(),
          label: `${fn.node.id} timeout`,
        })),
        width: 12,
      }),
    );
    dashboard.addWidgets(
      new cloudwatch.AlarmStatusWidget({ title: "Alarms", alarms: this.alarms, width: 24 }),
    );
    return dashboard;
  }
}
