/**
 * Alarm actions through a strategy, after cdk-monitoring-constructs' `IAlarmActionStrategy`:
 * the alarm factory hands every alarm it makes, with its catalog facts, to one strategy, so
 * routing (which topic pages, which tickets, whether a page-level child notifies on its own)
 * changes in one place. The library itself is not a dependency: its alarm factory would bypass
 * the catalog that names and describes every alarm here, and the interface is a few lines.
 */
import type * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as actions from "aws-cdk-lib/aws-cloudwatch-actions";
import type * as sns from "aws-cdk-lib/aws-sns";
import type { AlarmKind, Severity } from "../../operations/alarm-catalog.ts";

/** One alarm the factory made, and the catalog facts a strategy routes on. */
export interface AlarmActionStrategyProps {
  readonly alarm: cloudwatch.AlarmBase;
  readonly kind: AlarmKind;
  /** The per-function / per-workflow instance, if the kind has them. */
  readonly subject?: string;
  readonly severity: Severity;
  /** Whether this is the composite summary over the page-level alarms (no route of its own). */
  readonly composite: boolean;
}

/** Adds actions to the alarms the factory makes. */
export interface IAlarmActionStrategy {
  /**
   * Adds this strategy's actions (alarm, OK, insufficient data) to one alarm.
   *
   * @param props the alarm and its catalog facts.
   */
  addAlarmActions(props: AlarmActionStrategyProps): void;
}

/**
 * Notifies SNS topics on the alarm's state changes.
 *
 * @param onAlarmTopic notified when the alarm goes to ALARM.
 * @param onOkTopic notified when it returns to OK. @default no OK notification
 * @param onInsufficientDataTopic notified on INSUFFICIENT_DATA. @default none
 * @example
 * notifySns(topic, topic); // ALARM and OK to the same topic
 */
export function notifySns(
  onAlarmTopic: sns.ITopic,
  onOkTopic?: sns.ITopic,
  onInsufficientDataTopic?: sns.ITopic,
): IAlarmActionStrategy {
  return {
    addAlarmActions({ alarm }) {
      alarm.addAlarmAction(new actions.SnsAction(onAlarmTopic));
      if (onOkTopic) alarm.addOkAction(new actions.SnsAction(onOkTopic));
      if (onInsufficientDataTopic) {
        alarm.addInsufficientDataAction(new actions.SnsAction(onInsufficientDataTopic));
      }
    },
  };
}

/**
 * Adds no action: the alarm is only read (by a composite, the dashboard, the drill).
 *
 * @example
 * bySeverity({ page: notifySns(pageTopic), ticket: notifySns(ticketTopic), fleet: noAction() });
 */
export function noAction(): IAlarmActionStrategy {
  return { addAlarmActions() {} };
}

/**
 * Applies several strategies in order (e.g. a topic and an OpsCenter item).
 *
 * @param strategies each is applied to every alarm.
 * @example
 * multipleActions(notifySns(pageTopic), notifySns(auditTopic));
 */
export function multipleActions(...strategies: IAlarmActionStrategy[]): IAlarmActionStrategy {
  return {
    addAlarmActions(props) {
      for (const strategy of strategies) strategy.addAlarmActions(props);
    },
  };
}

/** Properties of {@link bySeverity}: one strategy per route. */
export interface SeverityRoutes {
  /**
   * Page-level alarms, each on its own: a second fault notifies while the first is firing.
   */
  readonly page: IAlarmActionStrategy;
  /** Ticket-level alarms (this service's team). */
  readonly ticket: IAlarmActionStrategy;
  /** Host trouble (the fleet's owners). @default the ticket strategy */
  readonly fleet?: IAlarmActionStrategy;
  /**
   * The composite summary `Page`.
   * @default noAction(): it is read on the dashboard; notifying through it hid every later fault
   */
  readonly composite?: IAlarmActionStrategy;
}

/**
 * Routes each alarm by its catalog severity: every page-level alarm, every ticket and every
 * fleet alarm gets its route's strategy; the composite summary its own (none by default).
 *
 * @param routes the strategy of each route.
 * @example
 * bySeverity({
 *   page: notifySns(pageTopic, pageTopic),
 *   ticket: notifySns(ticketTopic, ticketTopic),
 *   fleet: notifySns(fleetTopic, fleetTopic),
 * });
 */
export function bySeverity(routes: SeverityRoutes): IAlarmActionStrategy {
  const composite = routes.composite ?? noAction();
  const fleet = routes.fleet ?? routes.ticket;
  return {
    addAlarmActions(props) {
      if (props.composite) composite.addAlarmActions(props);
      else if (props.severity === "page") routes.page.addAlarmActions(props);
      else if (props.severity === "fleet") fleet.addAlarmActions(props);
      else routes.ticket.addAlarmActions(props);
    },
  };
}

/**
 * The stack's default routing: each alarm notifies its route's topic on ALARM and OK (page-level
 * alarms each on their own); the composite summary notifies no one.
 *
 * @param topics the alarm topic of each route (each one's subscriber is that route's enrichment).
 */
export function defaultAlarmActions(
  topics: Readonly<Record<Severity, sns.ITopic>>,
): IAlarmActionStrategy {
  return bySeverity({
    page: notifySns(topics.page, topics.page),
    ticket: notifySns(topics.ticket, topics.ticket),
    fleet: notifySns(topics.fleet, topics.fleet),
  });
}
