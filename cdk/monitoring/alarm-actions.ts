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
  /** Whether this is the composite page over the page-level alarms. */
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
 * bySeverity({ page: notifySns(topic, topic), ticket: notifySns(topic, topic), pageChild: noAction() });
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
  /** The composite page. */
  readonly page: IAlarmActionStrategy;
  /** Ticket-level alarms. */
  readonly ticket: IAlarmActionStrategy;
  /**
   * Page-level alarms under the composite.
   * @default noAction(): they page only through the composite, one page per incident
   */
  readonly pageChild?: IAlarmActionStrategy;
}

/**
 * Routes each alarm by its catalog severity: the composite page, its page-level children and
 * the tickets each get their own strategy.
 *
 * @param routes the strategy of each route.
 * @example
 * // The deployed default: pages through the composite only, tickets and the page to one topic.
 * bySeverity({ page: notifySns(topic, topic), ticket: notifySns(topic, topic) });
 */
export function bySeverity(routes: SeverityRoutes): IAlarmActionStrategy {
  const pageChild = routes.pageChild ?? noAction();
  return {
    addAlarmActions(props) {
      if (props.composite) routes.page.addAlarmActions(props);
      else if (props.severity === "page") pageChild.addAlarmActions(props);
      else routes.ticket.addAlarmActions(props);
    },
  };
}

/**
 * The stack's default routing: the composite page and every ticket notify `topic` on ALARM and
 * OK; page-level alarms notify only through the composite.
 *
 * @param topic the alarm topic (its subscriber is the enrichment function).
 */
export function defaultAlarmActions(topic: sns.ITopic): IAlarmActionStrategy {
  return bySeverity({ page: notifySns(topic, topic), ticket: notifySns(topic, topic) });
}
