import { Duration } from "aws-cdk-lib";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import type { Construct } from "constructs";
import {
  ALARM_CATALOG,
  type AlarmKind,
  alarmName,
  type CatalogEntry,
  NOTIFY_SUFFIX,
  QUERIES,
  ROUTE_TEXT,
  runbookFile,
  type Severity,
  severityOf,
} from "../../operations/alarm-catalog.ts";
import { queryName } from "../../operations/queries.ts";
import type { IAlarmActionStrategy } from "./alarm-actions.ts";

/** What an alarm watches; everything the reviewer reads comes from the catalog. */
export interface AlarmSpec {
  readonly kind: AlarmKind;
  readonly subject?: string;
  readonly metric: cloudwatch.IMetric;
  readonly threshold: number;
  /** @default GREATER_THAN_OR_EQUAL_TO_THRESHOLD */
  readonly comparison?: cloudwatch.ComparisonOperator;
  /** @default 1 */
  readonly evaluationPeriods?: number;
  /** Breaching periods among `evaluationPeriods` that fire it. @default evaluationPeriods */
  readonly datapointsToAlarm?: number;
  /** @default NOT_BREACHING: every counter we alarm on is 0 on healthy traffic or absent without traffic */
  readonly treatMissingData?: cloudwatch.TreatMissingData;
}

/** One window of a multiwindow alarm ({@link AlarmFactory.createMultiWindow}). */
export interface MultiWindow {
  /** Suffix of the window's alarm name, e.g. `1h`, `5m`. */
  readonly label: string;
  /** A value over the whole window: its period is the window. */
  readonly metric: cloudwatch.IMetric;
  /** Fires at or above it. */
  readonly threshold: number;
}

/** Properties of {@link AlarmFactory}. */
export interface AlarmFactoryProps {
  readonly stage: string;
  /**
   * Adds the actions of every alarm made (the composite page included): the one place alarms
   * are routed (`defaultAlarmActions(topic)` in the stack).
   */
  readonly actions: IAlarmActionStrategy;
  /** Base URL of docs/runbooks (no trailing slash). */
  readonly runbookBaseUrl: string;
  /** Dashboard name, quoted in every description. */
  readonly dashboardName: string;
  /**
   * Suppresses notifications while it is in ALARM (deploys, maintenance windows): each alarm's
   * actions then sit on a composite `<name>-Notify` (rule `ALARM(<name>)`) with this alarm as
   * its `ActionsSuppressor`, since CloudWatch suppresses only composite alarms' actions.
   * @default none: the actions sit on the alarms themselves
   */
  readonly suppressor?: cloudwatch.IAlarm;
  /**
   * How long after the suppressor returns to OK notifications stay suppressed (alarms that
   * trail a deploy: a period's late datapoints). @default Duration.minutes(10)
   */
  readonly suppressorExtension?: Duration;
}

/** A created alarm with its catalog facts. */
export interface CatalogAlarm {
  readonly kind: AlarmKind;
  readonly subject?: string;
  readonly severity: Severity;
  /** The metric alarm, or for a multiwindow burn rate the composite AND of its windows. */
  readonly alarm: cloudwatch.AlarmBase;
  /** The composite carrying its notifications, with a suppressor. */
  readonly notify?: cloudwatch.CompositeAlarm;
}

/**
 * The one place alarms are made: name and description come from the catalog, actions from the
 * {@link IAlarmActionStrategy}.
 *
 * @example
 * const f = new AlarmFactory(this, {
 *   stage: "prod",
 *   actions: defaultAlarmActions(topic),
 *   runbookBaseUrl: RUNBOOK_BASE_URL,
 *   dashboardName: "prod-BoundedSsh-Stack",
 * });
 * f.create({ kind: "LeakedSockets", metric, threshold: 1 });
 * f.createPage(); // after every page-level alarm
 */
export class AlarmFactory {
  readonly alarms: CatalogAlarm[] = [];

  constructor(
    private readonly scope: Construct,
    private readonly props: AlarmFactoryProps,
  ) {}

  /** The reviewer-facing description of an alarm (≤ 1024 characters, checked by tests). */
  description(kind: AlarmKind, subject?: string): string {
    const e: CatalogEntry = ALARM_CATALOG[kind];
    const severity = severityOf(kind, subject);
    const route =
      kind === "Page" ? "summary, notifies no one" : `${severity} (${ROUTE_TEXT[severity]})`;
    return [
      `WHAT: ${e.meaning}`,
      `SEVERITY: ${route}.`,
      `CHECK: 1) ${e.checks[0]}; 2) ${e.checks[1]}; 3) ${e.checks[2]}.`,
      `RUNBOOK: ${this.props.runbookBaseUrl}/${runbookFile(kind)}`,
      `QUERY: ${queryName(this.props.stage, QUERIES[e.query])} (Logs Insights saved queries)`,
      `DASHBOARD: ${this.props.dashboardName}`,
    ].join("\n");
  }

  /**
   * Makes the alarm of one catalog kind (and subject) and routes it.
   *
   * @param spec what the alarm watches.
   */
  create(spec: AlarmSpec): cloudwatch.Alarm {
    const severity = severityOf(spec.kind, spec.subject);
    const name = alarmName(this.props.stage, spec.kind, spec.subject);
    const alarm = new cloudwatch.Alarm(this.scope, `${spec.kind}${spec.subject ?? ""}`, {
      alarmName: name,
      alarmDescription: this.description(spec.kind, spec.subject),
      metric: spec.metric,
      threshold: spec.threshold,
      comparisonOperator:
        spec.comparison ?? cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: spec.evaluationPeriods ?? 1,
      ...(spec.datapointsToAlarm ? { datapointsToAlarm: spec.datapointsToAlarm } : {}),
      treatMissingData: spec.treatMissingData ?? cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    const notify = this.props.suppressor
      ? new cloudwatch.CompositeAlarm(this.scope, `${spec.kind}${spec.subject ?? ""}Notify`, {
          compositeAlarmName: `${name}${NOTIFY_SUFFIX}`,
          alarmDescription: this.description(spec.kind, spec.subject),
          alarmRule: cloudwatch.AlarmRule.fromAlarm(alarm, cloudwatch.AlarmState.ALARM),
          actionsSuppressor: this.props.suppressor,
          // The suppressor is already in ALARM before a deploy starts: no wait needed beyond
          // CloudWatch's minimum; after it ends, late datapoints of the deploy stay quiet.
          actionsSuppressorWaitPeriod: Duration.minutes(1),
          actionsSuppressorExtensionPeriod: this.props.suppressorExtension ?? Duration.minutes(10),
        })
      : undefined;
    this.props.actions.addAlarmActions({
      alarm: notify ?? alarm,
      kind: spec.kind,
      ...(spec.subject !== undefined ? { subject: spec.subject } : {}),
      severity,
      composite: false,
    });
    this.alarms.push({
      kind: spec.kind,
      subject: spec.subject,
      severity,
      alarm,
      ...(notify ? { notify } : {}),
    });
    return alarm;
  }

  /**
   * A multiwindow burn-rate alarm (Google SRE workbook, ch. 5): one metric alarm per window
   * (`<name>-<window>`, no actions, read only by the composite) and the composite
   * `<name>` = ALARM(long) AND ALARM(short), which is routed and carries the suppressor itself
   * (a composite can: no `-Notify` needed). The long window says the budget is really burning,
   * the short one that it still is (the page resets within the short window once fixed).
   *
   * @param spec the kind, subject and one metric + threshold per window, long first.
   */
  createMultiWindow(spec: {
    readonly kind: AlarmKind;
    readonly subject: string;
    readonly windows: readonly [MultiWindow, MultiWindow];
  }): cloudwatch.CompositeAlarm {
    const severity = severityOf(spec.kind, spec.subject);
    const name = alarmName(this.props.stage, spec.kind, spec.subject);
    const children = spec.windows.map(
      (w) =>
        new cloudwatch.Alarm(this.scope, `${spec.kind}${spec.subject}${w.label}`, {
          alarmName: `${name}-${w.label}`,
          // The window is in the name; no actions (the composite carries them).
          alarmDescription: this.description(spec.kind, spec.subject),
          metric: w.metric,
          threshold: w.threshold,
          comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
          evaluationPeriods: 1,
          treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        }),
    );
    const composite = new cloudwatch.CompositeAlarm(this.scope, `${spec.kind}${spec.subject}`, {
      compositeAlarmName: name,
      alarmDescription: this.description(spec.kind, spec.subject),
      alarmRule: cloudwatch.AlarmRule.allOf(
        ...children.map((c) => cloudwatch.AlarmRule.fromAlarm(c, cloudwatch.AlarmState.ALARM)),
      ),
      ...(this.props.suppressor
        ? {
            actionsSuppressor: this.props.suppressor,
            actionsSuppressorWaitPeriod: Duration.minutes(1),
            actionsSuppressorExtensionPeriod:
              this.props.suppressorExtension ?? Duration.minutes(10),
          }
        : {}),
    });
    this.props.actions.addAlarmActions({
      alarm: composite,
      kind: spec.kind,
      subject: spec.subject,
      severity,
      composite: false,
    });
    this.alarms.push({ kind: spec.kind, subject: spec.subject, severity, alarm: composite });
    return composite;
  }

  /**
   * The composite summary over every page-level alarm created so far (the dashboard's "is
   * anything page-level firing"); its actions come from the strategy (none by default).
   */
  createPage(): cloudwatch.CompositeAlarm {
    const children = this.alarms.filter((a) => a.severity === "page").map((a) => a.alarm);
    const page = new cloudwatch.CompositeAlarm(this.scope, "Page", {
      compositeAlarmName: alarmName(this.props.stage, "Page"),
      alarmDescription: this.description("Page"),
      alarmRule: cloudwatch.AlarmRule.anyOf(...children),
    });
    this.props.actions.addAlarmActions({
      alarm: page,
      kind: "Page",
      severity: severityOf("Page"),
      composite: true,
    });
    return page;
  }
}
