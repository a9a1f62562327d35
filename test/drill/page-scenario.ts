/**
 * The page scenario (issue 22): 15 minutes in which every page-level fault of the catalog
 * happens once, evaluated with the drill's CloudWatch on the synthesized template. Every
 * page-level alarm must fire and notify the page route; the list of page-level alarms comes
 * from the catalog (`ALARM_CATALOG`, `severityOf`), so a new page alarm fails this check until
 * the scenario drives it or {@link UNDRIVABLE} says why it cannot be driven locally.
 *
 * The data is synthetic (night.ts's `NightData`: audit lines and the EMF and Lambda datums a
 * session produces, per minute), shaped like what the handler writes; the drill proves that
 * shape with real sessions. Each fault comes from ONE signal, so a mutation of that signal's
 * path (its metric, dimension, statistic, unit or threshold) cannot be masked by another.
 */

import { DEFAULT_METRIC_NAMESPACE } from "../../lib/names.ts";
import {
  ALARM_KINDS,
  alarmNamesOf,
  kindOfAlarmName,
  NOTIFY_SUFFIX,
  severityOf,
} from "../../operations/alarm-catalog.ts";
import type { LogEvent } from "../helpers/logs-insights.ts";
import { type AlarmResult, type Datum, evaluateAlarms } from "./alarm-evaluator.ts";
import { MINUTE, NightData } from "./night.ts";

type Template = Parameters<typeof evaluateAlarms>[0];

/** Logical ids the scenario's data names (as the deployed functions' datums would). */
export interface ScenarioIds {
  taskFunction: string;
  apiFunction: string;
  taskLogs: string;
  /** The REST API's name (`ApiName` dimension of API Gateway metrics). */
  apiName: string;
  /** Logical id of the page route's alarm topic. */
  pageTopic: string;
}

/**
 * Page-level alarms that this scenario cannot drive locally, and why. Empty today: every page
 * alarm of the catalog is driven. A name here must be a page-level alarm of the catalog.
 */
export const UNDRIVABLE: Readonly<Record<string, string>> = {};

/** Every page-level alarm name of the catalog (the `Page` summary notifies no one). */
export function pageLevelAlarms(stage: string): string[] {
  return ALARM_KINDS.filter((k) => k !== "Page").flatMap((kind) =>
    alarmNamesOf(stage, kind).filter((name) => {
      const parsed = kindOfAlarmName(stage, name);
      return parsed && severityOf(kind, parsed.subject) === "page";
    }),
  );
}

export const SCENARIO_START = Date.UTC(2026, 11, 7, 3, 0, 0);
const t = (minute: number, second = 0) => SCENARIO_START + minute * MINUTE + second * 1000;
/** Evaluated when the third 5-minute period is complete. */
export const SCENARIO_NOW = t(15) - 1;

export interface Scenario {
  datums: Datum[];
  events: LogEvent[];
  origin: number;
  now: number;
}

/**
 * The 15 minutes. Background: 40 healthy task sessions spread over the three periods. The
 * faults (each one signal):
 *
 * - LeakedSockets: one invocation finds 2 sockets left by an earlier one (gauge = 2, min 12);
 * - DeadlineOverrun: Lambda kills a task invocation at its timeout (Duration = the timeout);
 *   killed, the handler writes neither audit line nor EMF;
 * - InternalErrors and the availability burn: 3 task sessions end InternalError (min 11-13);
 * - HostKeyMismatch: one session meets a changed host key (min 12);
 * - LambdaErrors-Api: the API function crashes twice (min 12);
 * - ApiEdge-Errors: API Gateway answers 20 5XX the API function never saw (min 12);
 * - Heartbeat: the task function runs 60 invocations per period whose metrics are never
 *   published (a container whose metrics middleware is broken), for three periods.
 */
export function pageScenario(ids: ScenarioIds, taskTimeoutMs: number): Scenario {
  const d = new NightData({
    namespace: DEFAULT_METRIC_NAMESPACE,
    taskFunction: ids.taskFunction,
    apiFunction: ids.apiFunction,
    taskLogs: ids.taskLogs,
  });
  for (let i = 0; i < 40; i++) {
    d.session(t(Math.floor((i * 15) / 40), 10), `ok-${i}.fleet.example`, {});
  }
  d.datum("LeakedSockets", 2, t(12, 30), { how: "max" });
  const fn = (name: string) => ({ FunctionName: name });
  // The hard kill: Lambda's own datums only.
  d.datum("Invocations", 1, t(12, 40), {
    namespace: "AWS/Lambda",
    dimensions: fn(ids.taskFunction),
  });
  d.datum("Errors", 1, t(12, 40), { namespace: "AWS/Lambda", dimensions: fn(ids.taskFunction) });
  d.datum("Duration", taskTimeoutMs, t(12, 40), {
    namespace: "AWS/Lambda",
    dimensions: fn(ids.taskFunction),
    how: "max",
  });
  for (const m of [11, 12, 13]) {
    d.session(t(m, 20), `db-${m}.fleet.example`, {
      error: { name: "InternalError", phase: "exec" },
    });
  }
  d.session(t(12, 50), "rebuilt.fleet.example", {
    error: { name: "HostKeyMismatch", phase: "handshake" },
  });
  d.datum("Errors", 2, t(12, 5), { namespace: "AWS/Lambda", dimensions: fn(ids.apiFunction) });
  d.datum("5XXError", 20, t(12, 15), {
    namespace: "AWS/ApiGateway",
    dimensions: { ApiName: ids.apiName },
  });
  for (let p = 0; p < 3; p++) {
    d.datum("Invocations", 60, t(p * 5 + 2), {
      namespace: "AWS/Lambda",
      dimensions: fn(ids.taskFunction),
    });
  }
  return { datums: d.datums, events: d.events, origin: SCENARIO_START, now: SCENARIO_NOW };
}

/** Evaluates the template on the scenario. */
export function evaluateScenario(template: Template, s: Scenario): AlarmResult[] {
  return evaluateAlarms(template, s.datums, s.events, s.origin, s.now).alarms;
}

/**
 * What makes the page scenario fail; empty when every page-level alarm of the catalog (not in
 * {@link UNDRIVABLE}) is in ALARM and notifies the page topic (itself, or its `-Notify`).
 */
export function pageProblems(alarms: AlarmResult[], stage: string, pageTopic: string): string[] {
  const problems: string[] = [];
  const byName = new Map(alarms.map((a) => [a.name, a]));
  const pageLevel = pageLevelAlarms(stage);
  for (const name of Object.keys(UNDRIVABLE)) {
    if (!pageLevel.includes(name)) problems.push(`UNDRIVABLE names ${name}: not a page alarm`);
  }
  for (const name of pageLevel) {
    if (name in UNDRIVABLE) continue;
    const alarm = byName.get(name);
    if (!alarm) {
      problems.push(`page alarm ${name} is not in the template`);
      continue;
    }
    if (alarm.state !== "ALARM") {
      problems.push(
        `page alarm ${name} did not fire in the page scenario (values ${JSON.stringify(alarm.values)}, threshold ${alarm.threshold})`,
      );
      continue;
    }
    const notifier = alarm.alarmActions.length > 0 ? alarm : byName.get(`${name}${NOTIFY_SUFFIX}`);
    if (notifier?.state !== "ALARM" || !notifier.alarmActions.includes(pageTopic)) {
      problems.push(`page alarm ${name} fired but nothing notified the page topic`);
    }
  }
  return problems;
}
