/**
 * Alarm actions go through one strategy (`cdk/monitoring/alarm-actions.ts`): the factory hands
 * it every alarm with its catalog facts, and the default routes pages through the composite
 * only. A small stack of the factory alone (no handler bundling), read with `Template`.
 */
import { App, Stack } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as sns from "aws-cdk-lib/aws-sns";
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

/** A stack with two topics, one page-level alarm, one ticket and the composite page. */
function factoryStack(actions: (topics: { a: sns.Topic; b: sns.Topic }) => IAlarmActionStrategy) {
  const stack = new Stack(new App(), "Alarms");
  const topics = { a: new sns.Topic(stack, "A"), b: new sns.Topic(stack, "B") };
  const f = new AlarmFactory(stack, {
    stage: "dev",
    actions: actions(topics),
    runbookBaseUrl: "https://example.com/runbooks",
    dashboardName: "dash",
  });
  const metric = new cloudwatch.Metric({ namespace: "Test", metricName: "M" });
  f.create({ kind: "HandshakeHangs", metric, threshold: 2 });
  f.create({ kind: "ConnectTimeouts", metric, threshold: 5 });
  f.createPage();
  const template = Template.fromStack(stack);
  const ref = (topic: sns.Topic) => ({ Ref: stack.getLogicalId(topic.node.defaultChild as never) });
  const byName = (name: string): Props => {
    const all = {
      ...template.findResources("AWS::CloudWatch::Alarm"),
      ...template.findResources("AWS::CloudWatch::CompositeAlarm"),
    };
    const found = Object.values(all).find((r) => (r.Properties as Props).AlarmName === name);
    if (!found) throw new Error(`no alarm ${name}`);
    return found.Properties as Props;
  };
  return { topics, ref, byName };
}

describe("alarm actions", () => {
  it("default: the page and tickets notify on ALARM and OK; page-level children only through the page", () => {
    // Act
    const { topics, ref, byName } = factoryStack(({ a }) => defaultAlarmActions(a));
    // Assess
    const child = byName("dev-BoundedSsh-HandshakeHangs");
    expect(child.AlarmActions).toBeUndefined();
    expect(child.OKActions).toBeUndefined();
    for (const name of ["dev-BoundedSsh-ConnectTimeouts", "dev-BoundedSsh-Page"]) {
      expect(byName(name).AlarmActions, name).toEqual([ref(topics.a)]);
      expect(byName(name).OKActions, name).toEqual([ref(topics.a)]);
    }
  });

  it("routes each severity to its own strategy, page-level children included", () => {
    // Act: pages to a, tickets to b; children notify a on ALARM only.
    const { topics, ref, byName } = factoryStack(({ a, b }) =>
      bySeverity({ page: notifySns(a, a), ticket: notifySns(b), pageChild: notifySns(a) }),
    );
    // Assess
    expect(byName("dev-BoundedSsh-Page").AlarmActions).toEqual([ref(topics.a)]);
    expect(byName("dev-BoundedSsh-HandshakeHangs").AlarmActions).toEqual([ref(topics.a)]);
    expect(byName("dev-BoundedSsh-HandshakeHangs").OKActions).toBeUndefined();
    expect(byName("dev-BoundedSsh-ConnectTimeouts").AlarmActions).toEqual([ref(topics.b)]);
    expect(byName("dev-BoundedSsh-ConnectTimeouts").OKActions).toBeUndefined();
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
      { kind: "HandshakeHangs", severity: "page", composite: false },
      { kind: "ConnectTimeouts", severity: "ticket", composite: false },
      { kind: "Page", severity: "page", composite: true },
    ]);
    expect(byName("dev-BoundedSsh-ConnectTimeouts").InsufficientDataActions).toEqual([
      ref(topics.b),
    ]);
  });
});
