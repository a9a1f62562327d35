/**
 * Alarm actions go through one strategy (`cdk/monitoring/alarm-actions.ts`): the factory hands
 * it every alarm with its catalog facts; the default routes each page-level alarm on its own (a
 * second fault is never hidden behind a first), tickets and fleet alarms to their own topics, and
 * the composite summary nowhere. A small stack of the factory alone (no handler bundling).
 */
import { App, Stack } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as sns from "aws-cdk-lib/aws-sns";
import type { Construct } from "constructs";
import { describe, expect, it } from "vitest";
import {
  type AlarmActionStrategyProps,
  bySeverity,
  defaultAlarmActions,
  type IAlarmActionStrategy,
  multipleActions,
  notifySns,
} from "../../cdk/monitoring/alarm-actions.ts";
import { AlarmFactory } from "../../cdk/monitoring/alarm-factory.ts";

type Props = Record<string, unknown>;
type Topics = { a: sns.Topic; b: sns.Topic; c: sns.Topic };

/**
 * A stack with three topics, two page-level alarms, one ticket, one fleet alarm and the
 * composite summary; `suppressor` adds the Maintenance-style suppressor.
 */
function factoryStack(
  actions: (topics: Topics) => IAlarmActionStrategy,
  opts: { suppressor?: boolean } = {},
) {
  const stack = new Stack(new App(), "Alarms");
  const topics = {
    a: new sns.Topic(stack, "A"),
    b: new sns.Topic(stack, "B"),
    c: new sns.Topic(stack, "C"),
  };
  const metric = new cloudwatch.Metric({ namespace: "Test", metricName: "M" });
  const suppressor = opts.suppressor
    ? new cloudwatch.Alarm(stack, "Maint", {
        alarmName: "dev-BoundedSsh-Maintenance",
        metric,
        threshold: 1,
        evaluationPeriods: 1,
      })
    : undefined;
  const f = new AlarmFactory(stack, {
    stage: "dev",
    actions: actions(topics),
    runbookBaseUrl: "https://example.com/runbooks",
    dashboardName: "dash",
    ...(suppressor ? { suppressor } : {}),
  });
  f.create({ kind: "LeakedSockets", metric, threshold: 1 });
  f.create({ kind: "InternalErrors", metric, threshold: 1 });
  f.create({ kind: "ResolveTimeouts", metric, threshold: 5 });
  f.create({ kind: "HandshakeHangs", metric, threshold: 1 });
  f.createPage();
  const template = Template.fromStack(stack);
  const id = (c: Construct) => stack.getLogicalId(c.node.defaultChild as never);
  const ref = (topic: sns.Topic) => ({ Ref: id(topic) });
  const byName = (name: string): Props => {
    const all = {
      ...template.findResources("AWS::CloudWatch::Alarm"),
      ...template.findResources("AWS::CloudWatch::CompositeAlarm"),
    };
    const found = Object.values(all).find((r) => (r.Properties as Props).AlarmName === name);
    if (!found) throw new Error(`no alarm ${name}`);
    return found.Properties as Props;
  };
  return { topics, ref, byName, template, f, id, suppressor };
}

const routes = ({ a, b, c }: Topics) => ({ page: a, ticket: b, fleet: c });

describe("alarm actions", () => {
  it("default: every page-level alarm notifies the page topic on its own; the summary no one", () => {
    // Act
    const { topics, ref, byName } = factoryStack((t) => defaultAlarmActions(routes(t)));
    // Assess: a second page-level fault has its own ALARM transition and its own action.
    for (const name of ["dev-BoundedSsh-LeakedSockets", "dev-BoundedSsh-InternalErrors"]) {
      expect(byName(name).AlarmActions, name).toEqual([ref(topics.a)]);
      expect(byName(name).OKActions, name).toEqual([ref(topics.a)]);
    }
    expect(byName("dev-BoundedSsh-ResolveTimeouts").AlarmActions).toEqual([ref(topics.b)]);
    expect(byName("dev-BoundedSsh-HandshakeHangs").AlarmActions).toEqual([ref(topics.c)]);
    expect(byName("dev-BoundedSsh-Page").AlarmActions).toBeUndefined();
    expect(byName("dev-BoundedSsh-Page").OKActions).toBeUndefined();
  });

  it("never sends a fleet alarm to the page or ticket topic", () => {
    const { topics, ref, byName } = factoryStack((t) => defaultAlarmActions(routes(t)));
    const hang = byName("dev-BoundedSsh-HandshakeHangs");
    expect(JSON.stringify(hang)).not.toContain(JSON.stringify(ref(topics.a)));
    expect(JSON.stringify(hang)).not.toContain(JSON.stringify(ref(topics.b)));
  });

  it("routes each severity to its own strategy; fleet falls back to the ticket strategy", () => {
    // Act: pages to a on ALARM only, tickets to b, no fleet strategy given.
    const { topics, ref, byName } = factoryStack(({ a, b }) =>
      bySeverity({ page: notifySns(a), ticket: notifySns(b) }),
    );
    // Assess
    expect(byName("dev-BoundedSsh-LeakedSockets").AlarmActions).toEqual([ref(topics.a)]);
    expect(byName("dev-BoundedSsh-LeakedSockets").OKActions).toBeUndefined();
    expect(byName("dev-BoundedSsh-ResolveTimeouts").AlarmActions).toEqual([ref(topics.b)]);
    expect(byName("dev-BoundedSsh-HandshakeHangs").AlarmActions).toEqual([ref(topics.b)]);
  });

  it("hands every alarm to the strategy once, with its catalog facts", () => {
    // Prepare
    const seen: Omit<AlarmActionStrategyProps, "alarm">[] = [];
    const record: IAlarmActionStrategy = {
      addAlarmActions: ({ alarm: _alarm, ...facts }) => seen.push(facts),
    };
    // Act
    const { topics, ref, byName } = factoryStack(({ b }) =>
      multipleActions(record, notifySns(b, undefined, b)),
    );
    // Assess
    expect(seen).toEqual([
      { kind: "LeakedSockets", severity: "page", composite: false },
      { kind: "InternalErrors", severity: "page", composite: false },
      { kind: "ResolveTimeouts", severity: "ticket", composite: false },
      { kind: "HandshakeHangs", severity: "fleet", composite: false },
      { kind: "Page", severity: "page", composite: true },
    ]);
    expect(byName("dev-BoundedSsh-ResolveTimeouts").InsufficientDataActions).toEqual([
      ref(topics.b),
    ]);
  });

  it("with a suppressor: actions move to <name>-Notify composites suppressed by it", () => {
    // Act
    const { topics, ref, byName, id, suppressor } = factoryStack(
      (t) => defaultAlarmActions(routes(t)),
      { suppressor: true },
    );
    // Assess: the metric alarm keeps its public name and notifies no one itself.
    const metricAlarm = byName("dev-BoundedSsh-LeakedSockets");
    expect(metricAlarm.AlarmActions).toBeUndefined();
    const notify = byName("dev-BoundedSsh-LeakedSockets-Notify");
    expect(notify.AlarmActions).toEqual([ref(topics.a)]);
    expect(notify.ActionsSuppressor).toEqual({ "Fn::GetAtt": [id(suppressor!), "Arn"] });
    expect(notify.ActionsSuppressorExtensionPeriod).toBe(600);
    expect(JSON.stringify(notify.AlarmRule)).toContain("ALARM(");
    expect(byName("dev-BoundedSsh-HandshakeHangs-Notify").AlarmActions).toEqual([ref(topics.c)]);
  });
});
