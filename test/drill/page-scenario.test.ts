/**
 * The page scenario on the synthesized template: every page-level alarm of the catalog fires
 * and notifies the page topic; the page-level list is the catalog's, so a new page alarm
 * cannot go undrilled silently.
 */
import type { CfnElement } from "aws-cdk-lib";
import type { Construct } from "constructs";
import { beforeAll, describe, expect, it } from "vitest";
import { ALARM_KINDS, alarmNamesOf, severityOf } from "../../operations/alarm-catalog.ts";
import { synth } from "../cdk/synth.ts";
import { DRILL_TIMEOUTS } from "./drill.ts";
import {
  evaluateScenario,
  pageLevelAlarms,
  pageProblems,
  pageScenario,
  type ScenarioIds,
  UNDRIVABLE,
} from "./page-scenario.ts";

const logicalId = (c: Construct) => {
  const child = c.node.defaultChild as CfnElement;
  return child.stack.resolve(child.logicalId) as string;
};

let template: Parameters<typeof evaluateScenario>[0];
let ids: ScenarioIds;

beforeAll(() => {
  const { stack, template: t } = synth({ stage: "drill", taskTimeouts: DRILL_TIMEOUTS });
  template = t.toJSON() as typeof template;
  ids = {
    taskFunction: logicalId(stack.taskFunction.function),
    apiFunction: logicalId(stack.apiFunction.function),
    taskLogs: logicalId(stack.taskFunction.logGroup),
    // As deployed: the name the template gives the RestApi (not the construct's view of it).
    apiName: String(
      Object.values(template.Resources).find((r) => r.Type === "AWS::ApiGateway::RestApi")
        ?.Properties.Name,
    ),
    pageTopic: logicalId(stack.monitoring.alarmTopics.page as unknown as Construct),
  };
}, 240_000);

const timeoutMs = DRILL_TIMEOUTS.functionTimeout.toMilliseconds();

describe("page scenario", () => {
  it("fires every page-level alarm of the catalog, each notifying the page topic", () => {
    const alarms = evaluateScenario(template, pageScenario(ids, timeoutMs));
    expect(pageProblems(alarms, "drill", ids.pageTopic)).toEqual([]);
    const fired = alarms.filter((a) => a.state === "ALARM").map((a) => a.name);
    for (const name of pageLevelAlarms("drill")) expect(fired).toContain(name);
  });

  it("derives the page-level list from the catalog: every kind and subject of severity page", () => {
    const expected = ALARM_KINDS.filter((k) => k !== "Page").flatMap((k) =>
      alarmNamesOf("drill", k).filter((n) => {
        const subject = n.slice(`drill-BoundedSsh-${k}-`.length) || undefined;
        return severityOf(k, n === `drill-BoundedSsh-${k}` ? undefined : subject) === "page";
      }),
    );
    expect(pageLevelAlarms("drill").sort()).toEqual(expected.sort());
    expect(pageLevelAlarms("drill")).toContain("drill-BoundedSsh-LeakedSockets");
    expect(pageLevelAlarms("drill")).not.toContain("drill-BoundedSsh-AvailabilityBurn-Budget");
    // Every alarm it cannot drive is a page alarm with a reason (none today).
    for (const [name, why] of Object.entries(UNDRIVABLE)) {
      expect(pageLevelAlarms("drill")).toContain(name);
      expect(why.length).toBeGreaterThan(20);
    }
  });

  it("fails when a page alarm of the catalog is missing from the template or stays quiet", () => {
    const alarms = evaluateScenario(template, pageScenario(ids, timeoutMs));
    const without = alarms.filter((a) => a.name !== "drill-BoundedSsh-HostKeyMismatch");
    expect(pageProblems(without, "drill", ids.pageTopic)).toEqual([
      "page alarm drill-BoundedSsh-HostKeyMismatch is not in the template",
    ]);
    const quiet = alarms.map((a) =>
      a.name === "drill-BoundedSsh-Heartbeat" ? { ...a, state: "OK" as const } : a,
    );
    expect(pageProblems(quiet, "drill", ids.pageTopic)[0]).toMatch(
      /Heartbeat did not fire in the page scenario/,
    );
  });

  it("reads API Gateway metrics of the API the template deploys (every ApiName dimension)", () => {
    const names = JSON.stringify(template).match(/"Name":"ApiName","Value":"[^"]*"/g) ?? [];
    expect(names.length).toBeGreaterThanOrEqual(2); // ApiEdge-Errors and -Latency, at least
    expect(new Set(names)).toEqual(new Set([`"Name":"ApiName","Value":"${ids.apiName}"`]));
    expect(ids.apiName).toBe("drill-bounded-ssh-api");
  });

  it("sends nothing to the page topic without the faults (40 healthy sessions only)", () => {
    const s = pageScenario(ids, timeoutMs);
    const healthy = {
      ...s,
      events: s.events.filter((e) => !e.message.includes('"error":{')),
      datums: s.datums.filter(
        (d) =>
          (d.namespace === "BoundedSsh" && d.name === "Invocations") ||
          (d.namespace === "AWS/Lambda" && d.name === "Duration" && d.value < 1_000),
      ),
    };
    const paging = evaluateScenario(template, healthy).filter(
      (a) => a.state === "ALARM" && a.alarmActions.includes(ids.pageTopic),
    );
    expect(paging.map((a) => a.name)).toEqual([]);
  });
});
