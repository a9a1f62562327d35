/** The drill's evaluator on hand-made templates: it must be right before the drill can be. */
import { describe, expect, it } from "vitest";
import type { AuditField } from "../../operations/audit-fields.ts";
import { evaluateAlarms, filterMatches, parseExpression } from "./alarm-evaluator.ts";

describe("filter patterns", () => {
  it("needs every plain term, no excluded term, and one of the optional terms", () => {
    const p = '"Task timed out after" -"bounded-ssh.audit"';
    expect(filterMatches(p, "2026 abc Task timed out after 3.00 seconds")).toBe(true);
    expect(
      filterMatches(p, '{"type":"bounded-ssh.audit","command":"echo Task timed out after"}'),
    ).toBe(false);
    expect(filterMatches('?"Sandbox.Timedout" ?"Lambda.Unknown"', "x Lambda.Unknown y")).toBe(true);
    expect(filterMatches('?"Sandbox.Timedout" ?"Lambda.Unknown"', "States.Runtime")).toBe(false);
  });

  it("matches JSON patterns on JSON events only, by field value, never by text inside a value", () => {
    const p = '{ ($.details.error = "Sandbox.Timedout") || ($.details.error = "Lambda.Unknown") }';
    expect(filterMatches(p, '{"type":"TaskFailed","details":{"error":"Sandbox.Timedout"}}')).toBe(
      true,
    );
    expect(filterMatches(p, '{"details":{"error":"Lambda.Unknown","cause":"x"}}')).toBe(true);
    // The words in a cause, in another field, or in a non-JSON line match nothing.
    expect(
      filterMatches(p, '{"details":{"error":"ProtocolError","cause":"Sandbox.Timedout"}}'),
    ).toBe(false);
    expect(filterMatches(p, 'x Invoke Error {"details":{"error":"Sandbox.Timedout"}}')).toBe(false);
    expect(filterMatches(p, '{"details":{"error":"Sandbox.Timedout.x"}}')).toBe(false);
    expect(filterMatches('{ $.a = 1 && $.b != "x" }', '{"a":1,"b":"y"}')).toBe(true);
    expect(filterMatches('{ $.a = 1 && $.b != "x" }', '{"a":1,"b":"x"}')).toBe(false);
    expect(() => filterMatches("{ $.a ~ 1 }", "{}")).toThrow();
  });
});

describe("metric math", () => {
  it("parses precedence: comparison below arithmetic, AND below comparison", () => {
    expect(JSON.stringify(parseExpression("IF(FILL(a, 0) + 1 >= 2 AND b < 3, 1, 0)"))).toContain(
      '"op":"AND"',
    );
    expect(() => parseExpression("a +")).toThrow();
  });
});

describe("alarms", () => {
  const T0 = 1_000_000;
  const alarm = (props: Record<string, unknown>) => ({
    Resources: {
      A: {
        Type: "AWS::CloudWatch::Alarm",
        Properties: {
          AlarmName: "a",
          EvaluationPeriods: 1,
          Threshold: 1,
          ComparisonOperator: "GreaterThanOrEqualToThreshold",
          TreatMissingData: "notBreaching",
          ...props,
        },
      },
      P: {
        Type: "AWS::CloudWatch::CompositeAlarm",
        Properties: {
          AlarmName: "p",
          AlarmRule: { "Fn::Join": ["", ['ALARM("', { "Fn::GetAtt": ["A", "Arn"] }, '")']] },
        },
      },
    },
  });
  const datum = (name: string, value: number, dimensions: Record<string, string> = {}) => ({
    namespace: "N",
    name,
    dimensions,
    value,
    timestamp: T0 + 10,
  });

  it("matches the full dimension set and the statistic", () => {
    const t = alarm({
      Namespace: "N",
      MetricName: "M",
      Statistic: "Maximum",
      Period: 300,
      Dimensions: [{ Name: "D", Value: "x" }],
    });
    const hit = evaluateAlarms(t, [datum("M", 2, { D: "x" })], [], T0, T0 + 20);
    expect(hit.fired).toEqual(["a", "p"]);
    const otherDims = evaluateAlarms(
      t,
      [datum("M", 2), datum("M", 2, { D: "x", E: "y" })],
      [],
      T0,
      T0 + 20,
    );
    expect(otherDims.fired).toEqual([]);
  });

  it("reads only datums of the unit an alarm names (CloudWatch: another unit is no data)", () => {
    const t = alarm({
      Namespace: "N",
      MetricName: "M",
      Statistic: "Sum",
      Period: 300,
      Unit: "Count",
    });
    const counted = { ...datum("M", 2), unit: "Count" };
    const seconds = { ...datum("M", 2), unit: "Seconds" };
    expect(evaluateAlarms(t, [counted], [], T0, T0 + 20).fired).toEqual(["a", "p"]);
    expect(evaluateAlarms(t, [seconds, datum("M", 2)], [], T0, T0 + 20).fired).toEqual([]);
    const any = alarm({ Namespace: "N", MetricName: "M", Statistic: "Sum", Period: 300 });
    expect(evaluateAlarms(any, [seconds], [], T0, T0 + 20).fired).toEqual(["a", "p"]);
  });

  it("evaluates math with FILL/IF and missing data", () => {
    const t = alarm({
      Metrics: [
        {
          Id: "m",
          MetricStat: { Metric: { Namespace: "N", MetricName: "M" }, Period: 300, Stat: "Minimum" },
          ReturnData: false,
        },
        { Id: "e", Expression: "IF(FILL(m, 0) < 0, 1, 0)", Period: 300 },
      ],
    });
    expect(evaluateAlarms(t, [datum("M", 5), datum("M", -1)], [], T0, T0 + 20).fired).toEqual([
      "a",
      "p",
    ]);
    expect(evaluateAlarms(t, [datum("M", 5)], [], T0, T0 + 20).fired).toEqual([]);
    expect(evaluateAlarms(t, [], [], T0, T0 + 20).fired).toEqual([]);
  });

  it("needs every evaluation period to breach", () => {
    const t = alarm({
      Namespace: "N",
      MetricName: "M",
      Statistic: "Sum",
      Period: 300,
      EvaluationPeriods: 3,
    });
    expect(evaluateAlarms(t, [datum("M", 9)], [], T0, T0 + 20).fired).toEqual([]);
  });

  it("counts distinct contributors of an insight rule", () => {
    const rule = {
      Type: "AWS::CloudWatch::InsightRule",
      Properties: {
        RuleName: "r",
        RuleBody: JSON.stringify({
          LogGroupNames: ["G"],
          LogFormat: "JSON",
          Contribution: { Keys: ["$.k"], Filters: [{ Match: "$.e", In: ["x"] }] },
        }),
      },
    };
    const t = alarm({
      Metrics: [
        { Id: "e", Expression: "INSIGHT_RULE_METRIC('r', 'UniqueContributors')", Period: 300 },
      ],
      Threshold: 2,
    });
    (t.Resources as Record<string, unknown>).R = rule;
    const line = (k: string, e: string) => ({
      logGroup: "G",
      timestamp: T0 + 5,
      message: JSON.stringify({ k, e }),
    });
    const sameHost = [line("h1", "x"), line("h1", "x"), line("h1", "x"), line("h2", "y")];
    expect(evaluateAlarms(t, [], sameHost, T0, T0 + 20).alarms[0]?.values).toEqual([1]);
    expect(evaluateAlarms(t, [], [...sameHost, line("h3", "x")], T0, T0 + 20).fired).toEqual([
      "a",
      "p",
    ]);
  });
});

describe("typed audit fields", () => {
  it("rejects a field no audit line carries (a tsc error, checked by npm run typecheck)", () => {
    const ok: AuditField = "target.address";
    // @ts-expect-error: the audit line has no `target.hostname`
    const wrong: AuditField = "target.hostname";
    expect([ok, wrong]).toHaveLength(2);
  });
});
