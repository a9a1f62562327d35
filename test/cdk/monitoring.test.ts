/**
 * The synthesized monitoring: alarms from the catalog, stage-prefixed names, the composite
 * page, the hang-hosts insight rule, saved queries, the enrichment subscription, runbooks.
 * What the alarms do on real traffic is the drill's job (test/drill/drill.test.ts).
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import type { CfnElement } from "aws-cdk-lib";
import { Match } from "aws-cdk-lib/assertions";
import { describe, expect, it } from "vitest";
import { BURN_WINDOWS, HARD_TIMEOUT_MARGIN_MS } from "../../cdk/constructs/monitoring.ts";
import { DEFAULT_METRIC_NAMESPACE, METRIC } from "../../lib/names.ts";
import {
  ALARM_CATALOG,
  ALARM_KINDS,
  alarmNamesOf,
  HANG_ERRORS,
  kindOfAlarmName,
  QUERIES,
  runbookFile,
  runbookHeader,
  SERVICE_ERRORS,
  severityOf,
} from "../../operations/alarm-catalog.ts";
import { AUDIT_TYPE } from "../../operations/audit-fields.ts";
import { queryName, renderQuery } from "../../operations/queries.ts";
import { insightRuleValue, resolve } from "../drill/alarm-evaluator.ts";
import { hungAuditEvent } from "../helpers/audit-lines.ts";
import { evaluate, type LogEvent } from "../helpers/logs-insights.ts";
import { definitionOf, synth, synthOnce } from "./synth.ts";

const { template } = synthOnce();
type Props = Record<string, unknown>;
/** The catalog's metric alarms (not the Maintenance switch). */
const alarms = Object.values(template.findResources("AWS::CloudWatch::Alarm"))
  .map((a) => a.Properties as Props)
  .filter((a) => a.AlarmName !== "dev-BoundedSsh-Maintenance");
const byName = (name: string) => alarms.find((a) => a.AlarmName === `dev-BoundedSsh-${name}`);
const composites = Object.entries(template.findResources("AWS::CloudWatch::CompositeAlarm")).map(
  ([id, r]) => [id, r.Properties as Props] as const,
);
const composite = composites.find(([, p]) => p.AlarmName === "dev-BoundedSsh-Page")?.[1] as Props;
const notifyOf = (name: string) =>
  composites.find(([, p]) => p.AlarmName === `${name}-Notify`)?.[1];
const topicOfNotify = (name: string) =>
  JSON.stringify(notifyOf(`dev-BoundedSsh-${name}`)?.AlarmActions ?? null);
const expressionOf = (p: Props | undefined) =>
  ((p?.Metrics as { Expression?: string }[] | undefined) ?? []).find((q) => q.Expression)
    ?.Expression ?? "";

/** Multiwindow kinds (the SLOs): the routed alarm is a composite over one metric alarm per window. */
const MULTI_WINDOW = ["AvailabilityBurn", "BoundedBurn"] as const;
type BurnKind = (typeof MULTI_WINDOW)[number];
const isMultiWindow = (k: string) => (MULTI_WINDOW as readonly string[]).includes(k);
const burnName = (kind: BurnKind, subject: string) => `dev-BoundedSsh-${kind}-${subject}`;
const windowNames = MULTI_WINDOW.flatMap((kind) =>
  BURN_WINDOWS.flatMap((w) =>
    [w.long[0], w.short[0]].map((label) => `${burnName(kind, w.subject)}-${label}`),
  ),
);
const isWindow = (name: unknown) => windowNames.includes(String(name));

describe("alarm names", () => {
  it("are <stage>-BoundedSsh-<Kind>[-<Subject>] for every catalog kind, and nothing else", () => {
    const single = ALARM_KINDS.filter((k) => k !== "Page" && !isMultiWindow(k)).flatMap((k) =>
      alarmNamesOf("dev", k),
    );
    const multi = MULTI_WINDOW.flatMap((k) => alarmNamesOf("dev", k));
    expect(alarms.map((a) => a.AlarmName).sort()).toEqual([...single, ...windowNames].sort());
    expect(composites.map(([, p]) => p.AlarmName).sort()).toEqual(
      ["dev-BoundedSsh-Page", ...multi, ...single.map((n) => `${n}-Notify`)].sort(),
    );
    const expected = [...single, ...multi, ...windowNames];
    for (const name of expected) {
      expect(kindOfAlarmName("dev", name)).toBeDefined();
      // The -Notify composite stands for its alarm (enrichment, message attributes).
      expect(kindOfAlarmName("dev", `${name}-Notify`)).toEqual(kindOfAlarmName("dev", name));
    }
  });

  it("do not collide between two stages in one account", () => {
    const prod = synth({ stage: "prod" }).template;
    const prodNames = [
      ...Object.values(prod.findResources("AWS::CloudWatch::Alarm")),
      ...Object.values(prod.findResources("AWS::CloudWatch::CompositeAlarm")),
    ].map((a) => (a.Properties as Props).AlarmName as string);
    const devNames = [
      ...alarms.map((a) => a.AlarmName as string),
      ...composites.map(([, p]) => p.AlarmName as string),
      "dev-BoundedSsh-Maintenance",
    ];
    expect(prodNames.every((n) => n.startsWith("prod-BoundedSsh-"))).toBe(true);
    expect(prodNames.filter((n) => devNames.includes(n))).toEqual([]);
    const rules = (t: typeof prod) =>
      Object.values(t.findResources("AWS::CloudWatch::InsightRule")).map(
        (r) => (r.Properties as Props).RuleName,
      );
    expect(rules(prod)).toEqual(["prod-BoundedSsh-HangHosts", "prod-BoundedSsh-ContactedHosts"]);
    expect(rules(template)).toEqual(["dev-BoundedSsh-HangHosts", "dev-BoundedSsh-ContactedHosts"]);
  });
});

describe("alarm descriptions", () => {
  const queryNames = Object.values(template.findResources("AWS::Logs::QueryDefinition")).map(
    (q) => (q.Properties as Props).Name as string,
  );
  it.each([
    ...alarms.map((a) => [a.AlarmName as string, a] as const),
    ...composites.map(([, p]) => [p.AlarmName as string, p] as const),
  ])(
    "%s says what, severity, three checks, a runbook URL, a saved query and the dashboard",
    (_name, p) => {
      const d = p.AlarmDescription as string;
      expect(d.length).toBeLessThanOrEqual(1024);
      expect(d).toMatch(
        /^WHAT: .+\nSEVERITY: ((page|ticket|fleet) \([^)]+\)|summary, notifies no one)\.\nCHECK: 1\) .+; 2\) .+; 3\) .+\.\nRUNBOOK: https:\/\/\S+\/\w+\.md\nQUERY: (\S+) \(Logs Insights saved queries\)\nDASHBOARD: dev-BoundedSsh-Test$/,
      );
      const query = /QUERY: (\S+)/.exec(d)?.[1];
      expect(queryNames).toContain(query);
    },
  );
});

describe("severity and routes", () => {
  const topicOf = (p: Props | undefined) => JSON.stringify(p?.AlarmActions ?? null);
  it("each alarm notifies its own route's topic through its -Notify composite; the summary no one", () => {
    const children = JSON.stringify(composite.AlarmRule);
    const ids = template.findResources("AWS::CloudWatch::Alarm");
    const topic = { page: /PageAlarmTopic/, ticket: /TicketAlarmTopic/, fleet: /FleetAlarmTopic/ };
    for (const [id, resource] of Object.entries(ids)) {
      const p = resource.Properties as Props;
      if (p.AlarmName === "dev-BoundedSsh-Maintenance") continue;
      if (isWindow(p.AlarmName)) {
        // A burn-rate window is read only by its composite, which carries the actions.
        expect(p.AlarmActions, String(p.AlarmName)).toBeUndefined();
        continue;
      }
      const found = kindOfAlarmName("dev", p.AlarmName as string);
      if (!found) throw new Error(`unknown alarm ${p.AlarmName}`);
      const severity = severityOf(found.kind, found.subject);
      // Actions sit on the composite (suppressible), never on the metric alarm.
      expect(p.AlarmActions, String(p.AlarmName)).toBeUndefined();
      const notify = notifyOf(p.AlarmName as string);
      expect(notify?.AlarmActions, String(p.AlarmName)).toEqual([
        { Ref: expect.stringMatching(topic[severity]) },
      ]);
      expect(notify?.OKActions).toEqual(notify?.AlarmActions);
      expect(JSON.stringify(notify?.AlarmRule)).toContain(`"${id}"`);
      if (severity === "page") expect(children).toContain(`"${id}"`);
      else expect(children).not.toContain(`"${id}"`);
    }
    expect(composite.AlarmActions).toBeUndefined();
    expect(composite.OKActions).toBeUndefined();
  });

  it("never routes host trouble to the pager", () => {
    const fleet = ["HandshakeHangs", "ConnectTimeouts", "AuthTimeouts", "ChannelTimeouts"];
    for (const name of [...fleet, "ConnectionLost", "CommandTimeouts"]) {
      expect(topicOf(notifyOf(`dev-BoundedSsh-${name}`)), name).toMatch(/FleetAlarmTopic/);
    }
  });

  it("suppresses every notification while the Maintenance alarm is in ALARM", () => {
    const [maintenanceId] = Object.entries(template.findResources("AWS::CloudWatch::Alarm")).find(
      ([, r]) => (r.Properties as Props).AlarmName === "dev-BoundedSsh-Maintenance",
    ) ?? [""];
    template.hasResourceProperties("AWS::CloudWatch::Alarm", {
      AlarmName: "dev-BoundedSsh-Maintenance",
      MetricName: "MaintenanceWindow",
      Statistic: "Maximum",
      Period: 60,
      EvaluationPeriods: 15,
      DatapointsToAlarm: 1,
      TreatMissingData: "notBreaching",
    });
    for (const [, p] of composites.filter(([, c]) => c.AlarmName !== "dev-BoundedSsh-Page")) {
      expect(p.ActionsSuppressor, String(p.AlarmName)).toEqual({
        "Fn::GetAtt": [maintenanceId, "Arn"],
      });
      expect(p.ActionsSuppressorExtensionPeriod).toBe(600);
    }
  });

  it("puts leaks, overruns, internal errors, API errors and host-key mismatches on the page", () => {
    const pages = ALARM_KINDS.flatMap((k) =>
      alarmNamesOf("dev", k).filter((n) => {
        const f = kindOfAlarmName("dev", n);
        return f && severityOf(f.kind, f.subject) === "page" && f.kind !== "Page";
      }),
    );
    expect(pages.sort()).toEqual(
      [
        "AvailabilityBurn-Fast",
        "AvailabilityBurn-Slow",
        "BoundedBurn-Fast",
        "BoundedBurn-Slow",
        "ApiEdge-Errors",
        "Heartbeat",
        "LeakedSockets",
        "DeadlineOverrun",
        "InternalErrors",
        "LambdaErrors-Api",
        "HostKeyMismatch",
      ]
        .map((n) => `dev-BoundedSsh-${n}`)
        .sort(),
    );
  });
});

describe("availability SLO burn rates", () => {
  const windowAlarm = (name: string) => alarms.find((a) => a.AlarmName === name);
  it("counts only service-caused errors as bad: internal status names, not a command's exit", () => {
    expect([...SERVICE_ERRORS].sort()).toEqual(
      ["CredentialInvalid", "CredentialUnavailable", "InternalError"].sort(),
    );
  });

  it.each(BURN_WINDOWS.map((w) => [w.subject, w] as const))(
    "%s: ALARM(long) AND ALARM(short) at the burn rate, routed by severity, suppressible",
    (subject, w) => {
      const found = composites.find(
        ([, p]) => p.AlarmName === burnName("AvailabilityBurn", subject),
      );
      expect(found).toBeDefined();
      const [, c] = found as (typeof composites)[number];
      const rule = JSON.stringify(c.AlarmRule);
      const ids = Object.entries(template.findResources("AWS::CloudWatch::Alarm"));
      for (const [label, seconds] of [w.long, w.short]) {
        const a = windowAlarm(`${burnName("AvailabilityBurn", subject)}-${label}`) as Props;
        const [id] = ids.find(([, r]) => (r.Properties as Props).AlarmName === a.AlarmName) ?? [];
        expect(rule).toContain(`ALARM(\\"`);
        expect(rule).toContain(`"${id}"`);
        expect(a.Threshold).toBe(w.burn);
        expect(a.ComparisonOperator).toBe("GreaterThanOrEqualToThreshold");
        expect(a.EvaluationPeriods).toBe(1);
        // PutMetricAlarm: Period × EvaluationPeriods ≤ 7 days (≤ 1 day below an hour).
        expect(seconds).toBeLessThanOrEqual(seconds >= 3600 ? 604_800 : 86_400);
        const metrics = a.Metrics as {
          Id: string;
          Expression?: string;
          Period?: number;
          MetricStat?: Props;
        }[];
        const expr = expressionOf(a);
        // Bad over all, over the 99.9 % budget; every metric over the window.
        expect(expr).toMatch(/^\(.+\) \/ MAX\(\[.+, 1\]\) \/ 0\.001$/);
        expect(metrics.find((q) => q.Expression)?.Period ?? seconds).toBe(seconds);
        for (const q of metrics.filter((m) => m.MetricStat)) {
          expect(q.MetricStat?.Period, q.Id).toBe(seconds);
        }
        const errorNames = metrics
          .filter((q) => JSON.stringify(q.MetricStat ?? {}).includes('"ErrorName"'))
          .map((q) => JSON.stringify(q.MetricStat));
        expect(errorNames).toHaveLength(SERVICE_ERRORS.length);
        for (const n of SERVICE_ERRORS) expect(errorNames.join()).toContain(`"${n}"`);
        // Host outcomes are never bad: no timeout, refusal or auth error in the numerator.
        expect(JSON.stringify(metrics)).not.toMatch(/Timeout"|ConnectRefused|AuthFailed|HostKey/);
        expect(metrics.length).toBeLessThanOrEqual(10);
        expect(a.AlarmActions).toBeUndefined();
      }
      const topic =
        severityOf("AvailabilityBurn", subject) === "page" ? /PageAlarm/ : /TicketAlarm/;
      expect(c.AlarmActions).toEqual([{ Ref: expect.stringMatching(topic) }]);
      expect(c.OKActions).toEqual(c.AlarmActions);
      expect(c.ActionsSuppressor).toBeDefined();
      expect(
        JSON.stringify(composite.AlarmRule).includes(JSON.stringify(found?.[0]).slice(1, -1)),
      ).toBe(subject !== "Budget");
    },
  );

  it("takes the target from the deploy config's slo and refuses a target that is no percentage", () => {
    const t = synth({ slo: { availabilityTarget: 99 } }).template;
    const exprs = Object.values(t.findResources("AWS::CloudWatch::Alarm"))
      .map((r) => r.Properties as Props)
      .filter((p) => String(p.AlarmName).includes("AvailabilityBurn"))
      .map(expressionOf);
    expect(exprs).toHaveLength(6);
    for (const e of exprs) expect(e).toMatch(/ \/ 0\.01$/);
    expect(() => synth({ slo: { availabilityTarget: 100 } })).toThrow(/availabilityTarget 100/);
  });
});

describe("bounded SLO burn rates", () => {
  const { stack } = synthOnce();
  const fnId = (fn: typeof stack.apiFunction) =>
    stack.resolve((fn.function.node.defaultChild as CfnElement).logicalId) as string;
  type Query = { Id: string; Expression?: string; Period?: number; MetricStat?: Props };
  const queriesOf = (a: Props) => a.Metrics as Query[];
  const stat = (a: Props, id: string) =>
    queriesOf(a).find((q) => q.Id === id)?.MetricStat as
      | { Metric: { Namespace: string; MetricName: string; Dimensions?: unknown }; Stat: string }
      | undefined;

  it.each(BURN_WINDOWS.map((w) => [w.subject, w] as const))(
    "%s: ALARM(long) AND ALARM(short) of unbounded / all over the budget, routed like availability",
    (subject, w) => {
      const found = composites.find(([, p]) => p.AlarmName === burnName("BoundedBurn", subject));
      expect(found).toBeDefined();
      const [compositeId, c] = found as (typeof composites)[number];
      const ids = Object.entries(template.findResources("AWS::CloudWatch::Alarm"));
      for (const [label, seconds] of [w.long, w.short]) {
        const name = `${burnName("BoundedBurn", subject)}-${label}`;
        const [id, r] = ids.find(([, x]) => (x.Properties as Props).AlarmName === name) ?? [];
        const a = r?.Properties as Props;
        expect(JSON.stringify(c.AlarmRule)).toContain(`"${id}"`);
        expect(a).toMatchObject({
          Threshold: w.burn,
          ComparisonOperator: "GreaterThanOrEqualToThreshold",
          EvaluationPeriods: 1,
          TreatMissingData: "notBreaching",
        });
        expect(a.AlarmActions).toBeUndefined();
        const expr = expressionOf(a);
        expect(expr).toMatch(/^\(.+\) \/ MAX\(\[.+, 1\]\) \/ 0\.001$/);
        // What the handlers report of themselves: Unbounded Sum (slack < 0 or a leak) ...
        expect(stat(a, "unbounded")).toMatchObject({
          Metric: { Namespace: DEFAULT_METRIC_NAMESPACE, MetricName: METRIC.Unbounded },
          Stat: "Sum",
        });
        expect(stat(a, "all")?.Metric.MetricName).toBe(METRIC.Invocations);
        // ... and the hard timeouts they cannot: the workflows' structured failure events and
        // each function's Duration at its own timeout, never free text.
        expect(stat(a, "sfnHard")?.Metric.MetricName).toBe("WorkflowHardTimeouts");
        for (const [key, fn] of [
          ["Api", stack.apiFunction],
          ["Task", stack.taskFunction],
        ] as const) {
          expect(stat(a, `dur${key}`)).toMatchObject({
            Metric: {
              Namespace: "AWS/Lambda",
              MetricName: "Duration",
              Dimensions: [{ Name: "FunctionName", Value: { Ref: fnId(fn) } }],
            },
            Stat: "Maximum",
          });
          expect(expr).toContain(
            `FILL(dur${key}, 0) >= ${fn.timeout.toMilliseconds() - HARD_TIMEOUT_MARGIN_MS}`,
          );
        }
        expect(stat(a, "errApi")?.Metric).toMatchObject({
          MetricName: "Errors",
          Dimensions: [{ Name: "FunctionName", Value: { Ref: fnId(stack.apiFunction) } }],
        });
        // Every metric over the window; within CloudWatch's 10 metrics per alarm.
        for (const q of queriesOf(a)) {
          expect(q.MetricStat?.Period ?? q.Period ?? seconds, q.Id).toBe(seconds);
        }
        expect(queriesOf(a).length).toBeLessThanOrEqual(10);
        // Hard timeouts never published Invocations: in the denominator as well.
        const [bad, all] = expr.slice(1).split(") / MAX([");
        for (const term of ["FILL(durApi, 0)", "FILL(durTask, 0)", "FILL(sfnHard, 0)"]) {
          expect(bad).toContain(term);
          expect(all).toContain(term);
        }
        expect(bad).toContain("FILL(unbounded, 0)");
        expect(bad).not.toContain("FILL(all, 0)");
      }
      const topic = severityOf("BoundedBurn", subject) === "page" ? /PageAlarm/ : /TicketAlarm/;
      expect(c.AlarmActions).toEqual([{ Ref: expect.stringMatching(topic) }]);
      expect(c.OKActions).toEqual(c.AlarmActions);
      expect(c.ActionsSuppressor).toBeDefined();
      expect(JSON.stringify(composite.AlarmRule).includes(`"${compositeId}"`)).toBe(
        subject !== "Budget",
      );
      expect(severityOf("BoundedBurn", subject)).toBe(severityOf("AvailabilityBurn", subject));
    },
  );

  it("takes slo.boundedTarget from the deploy config, apart from availability, and refuses 100", () => {
    const t = synth({ slo: { boundedTarget: 99.99 } }).template;
    const exprsOf = (kind: BurnKind) =>
      Object.values(t.findResources("AWS::CloudWatch::Alarm"))
        .map((r) => r.Properties as Props)
        .filter((p) => String(p.AlarmName).includes(`-${kind}-`))
        .map(expressionOf);
    expect(exprsOf("BoundedBurn")).toHaveLength(6);
    for (const e of exprsOf("BoundedBurn")) expect(e).toMatch(/ \/ 0\.0001$/);
    for (const e of exprsOf("AvailabilityBurn")) expect(e).toMatch(/ \/ 0\.001$/);
    expect(() => synth({ slo: { boundedTarget: 100 } })).toThrow(/slo\.boundedTarget 100/);
  });
});

describe("the API edge, delivery and enrichment", () => {
  const metricsOf = (name: string) =>
    JSON.stringify((byName(name)?.Metrics as unknown[] | undefined) ?? byName(name));

  it("pages on 5XX answers beyond the API function's invocations (the edge's own errors)", () => {
    const a = byName("ApiEdge-Errors") as Props;
    expect(expressionOf(a)).toBe("MAX([FILL(e5xx, 0) - FILL(inv, 0), 0])");
    expect(metricsOf("ApiEdge-Errors")).toContain('"MetricName":"5XXError"');
    expect(metricsOf("ApiEdge-Errors")).toContain('"Namespace":"AWS/ApiGateway"');
    expect(metricsOf("ApiEdge-Errors")).toContain('"MetricName":"Invocations"');
    expect(a.Threshold).toBe(5);
    expect(topicOfNotify("ApiEdge-Errors")).toMatch(/PageAlarmTopic/);
  });

  it("tickets on integration latency p99 at 90 % of the integration timeout, 3 periods", () => {
    const a = byName("ApiEdge-Latency") as Props;
    expect(a).toMatchObject({
      MetricName: "IntegrationLatency",
      Namespace: "AWS/ApiGateway",
      ExtendedStatistic: "p99",
      EvaluationPeriods: 3,
    });
    // The default stack's integration timeout is 29 s.
    expect(a.Threshold).toBe(Math.floor(0.9 * 29_000));
    expect(topicOfNotify("ApiEdge-Latency")).toMatch(/TicketAlarmTopic/);
  });

  it("tickets on SNS delivery failures of every route topic", () => {
    const metrics = metricsOf("NotificationFailures");
    expect(expressionOf(byName("NotificationFailures"))).toBe(
      "FILL(page, 0) + FILL(ticket, 0) + FILL(fleet, 0)",
    );
    expect(metrics.match(/"MetricName":"NumberOfNotificationsFailed"/g)).toHaveLength(3);
    for (const route of ["Page", "Ticket", "Fleet"]) {
      expect(metrics).toMatch(new RegExp(`${route}Topic[0-9A-F]+","TopicName"`));
    }
    expect(topicOfNotify("NotificationFailures")).toMatch(/TicketAlarmTopic/);
  });

  it("tickets on errors of any route's enrichment function", () => {
    const metrics = metricsOf("EnrichmentErrors");
    expect(metrics.match(/"MetricName":"Errors"/g)).toHaveLength(3);
    expect(metrics).toContain('"Namespace":"AWS/Lambda"');
    expect(topicOfNotify("EnrichmentErrors")).toMatch(/TicketAlarmTopic/);
  });

  it("pages on Heartbeat: while it fires every other alarm is blind", () => {
    expect(topicOfNotify("Heartbeat")).toMatch(/PageAlarmTopic/);
  });
});

describe("capacity", () => {
  it("tickets the task function at 90 % of its reserved concurrency (default 50), 3 periods", () => {
    const a = byName("TaskConcurrency") as Props;
    expect(a).toMatchObject({
      MetricName: "ConcurrentExecutions",
      Namespace: "AWS/Lambda",
      Statistic: "Maximum",
      Threshold: 45,
      EvaluationPeriods: 3,
    });
    expect(topicOfNotify("TaskConcurrency")).toMatch(/TicketAlarmTopic/);
  });

  it("has no concurrency alarm when the task function is unreserved", () => {
    const t = synth({ taskReservedConcurrency: null }).template;
    const names = Object.values(t.findResources("AWS::CloudWatch::Alarm")).map(
      (r) => (r.Properties as Props).AlarmName,
    );
    expect(names).not.toContain("dev-BoundedSsh-TaskConcurrency");
  });

  it.each(["SingleHost", "Fleet"])("tickets Step Functions throttles of %s", (subject) => {
    const a = byName(`WorkflowThrottles-${subject}`) as Props;
    expect(a).toMatchObject({
      MetricName: "ExecutionThrottled",
      Namespace: "AWS/States",
      Statistic: "Sum",
      Threshold: 1,
    });
    expect(topicOfNotify(`WorkflowThrottles-${subject}`)).toMatch(/TicketAlarmTopic/);
  });

  it.each(["Idempotency", "Breaker"])(
    "tickets read + write throttles of the %s table",
    (subject) => {
      const a = byName(`DynamoThrottles-${subject}`) as Props;
      const metrics = JSON.stringify(a.Metrics);
      expect(expressionOf(a)).toBe("FILL(r, 0) + FILL(w, 0)");
      expect(metrics).toContain('"MetricName":"ReadThrottleEvents"');
      expect(metrics).toContain('"MetricName":"WriteThrottleEvents"');
      expect(metrics).toMatch(new RegExp(`FleetState${subject}[0-9A-F]+"`));
      expect(topicOfNotify(`DynamoThrottles-${subject}`)).toMatch(/TicketAlarmTopic/);
    },
  );
});

describe("hangs counted in hosts", () => {
  it("has a Contributor Insights rule on the audit lines keyed on the attributed host and port", () => {
    const rule = Object.values(template.findResources("AWS::CloudWatch::InsightRule"))[0]
      ?.Properties as { RuleBody: unknown };
    const text = JSON.stringify(rule.RuleBody);
    expect(text).toContain('\\"Keys\\":[\\"$.error.host\\",\\"$.error.port\\"]');
    expect(text).toContain(`{\\"Match\\":\\"$.type\\",\\"In\\":[\\"${AUDIT_TYPE}\\"]}`);
    expect(text).toContain(
      `{\\"Match\\":\\"$.error.name\\",\\"In\\":[${HANG_ERRORS.map((e) => `\\"${e}\\"`).join(",")}]}`,
    );
    // A ConnectionLost once the command runs (a reboot) is not a hang.
    expect(text).toContain('{\\"Match\\":\\"$.phase\\",\\"NotIn\\":[\\"exec\\"]}');
  });

  it("has a rule counting every host contacted (the ratio's denominator)", () => {
    const rule = Object.values(template.findResources("AWS::CloudWatch::InsightRule"))
      .map((r) => r.Properties as { RuleName: string; RuleBody: unknown })
      .find((r) => r.RuleName === "dev-BoundedSsh-ContactedHosts");
    const body = JSON.parse(resolve(rule?.RuleBody)) as { Contribution: unknown };
    expect(body.Contribution).toEqual({
      Keys: ["$.target.host", "$.target.port"],
      Filters: [{ Match: "$.type", In: [AUDIT_TYPE] }],
    });
  });

  // Real audit lines (auditLineOf) through the synthesized rule (the drill's evaluator).
  const handshakeHangs = (events: LogEvent[]) => ({
    values: [
      insightRuleValue(
        template.toJSON() as Parameters<typeof insightRuleValue>[0],
        "dev-BoundedSsh-HangHosts",
        events,
      ),
    ],
  });
  const ruleLogGroup = () => {
    const rule = Object.values(template.findResources("AWS::CloudWatch::InsightRule"))[0]
      ?.Properties as { RuleBody: unknown };
    const body = JSON.parse(resolve(rule.RuleBody)) as { LogGroupNames: unknown[] };
    return resolve(body.LogGroupNames[0]);
  };
  const bastion = { host: "bastion.example", port: 2222, username: "jump" };
  const behindBastion = (hop: "via" | "target") =>
    Array.from({ length: 20 }, (_, i) =>
      hungAuditEvent(ruleLogGroup(), Date.now() - 500, {
        host: `10.0.1.${i + 1}`,
        via: bastion,
        hop,
      }),
    );

  it("counts a dead jump host in front of 20 targets once, as itself", () => {
    const hang = handshakeHangs(behindBastion("via"));
    expect(hang?.values.at(-1)).toBe(1);
  });

  it("counts targets that hang behind a healthy jump host as themselves (hop target)", () => {
    const hang = handshakeHangs(behindBastion("target"));
    expect(hang?.values.at(-1)).toBe(20);
  });

  it("still counts direct targets (no via) by target host and port", () => {
    const g = ruleLogGroup();
    const at = Date.now() - 500;
    const hang = handshakeHangs([
      hungAuditEvent(g, at, { host: "10.0.2.1" }),
      hungAuditEvent(g, at, { host: "10.0.2.1" }),
      hungAuditEvent(g, at, { host: "10.0.2.1", port: 2201 }),
      hungAuditEvent(g, at, { host: "10.0.2.2" }),
    ]);
    expect(hang?.values.at(-1)).toBe(3);
  });

  it("fires HandshakeHangs on hang hosts / hosts contacted: ≥ 1 % and ≥ 5 hosts, 1 of 5 × 15 min", () => {
    template.hasResourceProperties("AWS::CloudWatch::Alarm", {
      AlarmName: "dev-BoundedSsh-HandshakeHangs",
      Threshold: 1,
      ComparisonOperator: "GreaterThanOrEqualToThreshold",
      EvaluationPeriods: 5,
      DatapointsToAlarm: 1,
      TreatMissingData: "notBreaching",
      Metrics: Match.arrayWith([
        Match.objectLike({
          Expression:
            "IF(FILL(hang, 0) >= 5, 100 * FILL(hang, 0) / MAX([FILL(contacted, 0), FILL(hang, 0), 1]), 0)",
          ReturnData: true,
        }),
        {
          Id: "hang",
          Expression: "INSIGHT_RULE_METRIC('dev-BoundedSsh-HangHosts', 'UniqueContributors')",
          Label: "hosts with hang errors",
          Period: 900,
          ReturnData: false,
        },
        {
          Id: "contacted",
          Expression: "INSIGHT_RULE_METRIC('dev-BoundedSsh-ContactedHosts', 'UniqueContributors')",
          Label: "hosts contacted",
          Period: 900,
          ReturnData: false,
        },
      ]),
    });
  });

  it("does not count a ConnectionLost during the command (a reboot run) as a hang host", () => {
    const g = ruleLogGroup();
    const at = Date.now() - 500;
    const lost = (host: string, phase: string) => {
      const e = hungAuditEvent(g, at, { host });
      const line = JSON.parse(e.message);
      line.error.name = "ConnectionLost";
      line.phase = phase;
      return { ...e, message: JSON.stringify(line) };
    };
    expect(handshakeHangs([lost("10.0.3.1", "exec"), lost("10.0.3.2", "exec")]).values).toEqual([
      0,
    ]);
    expect(handshakeHangs([lost("10.0.3.1", "auth"), lost("10.0.3.2", "exec")]).values).toEqual([
      1,
    ]);
  });
});

describe("real overruns only", () => {
  it("counts hard timeouts, negative slack and Duration at the timeout; not 90% of it", () => {
    const e = expressionOf(byName("DeadlineOverrun"));
    expect(e).toContain("FILL(sfnHard, 0)");
    expect(e).toContain("IF(FILL(slack, 0) < 0, 1, 0)");
    expect(e).toContain(`>= ${25_000 - HARD_TIMEOUT_MARGIN_MS}`);
    expect(e).toContain(`>= ${60_000 - HARD_TIMEOUT_MARGIN_MS}`);
    expect(e).not.toContain("22500");
    // The API function's designed maximum (timeout − reserve + 50 ms) stays below the limit.
    expect(25_000 - 2_000 + 50).toBeLessThan(25_000 - HARD_TIMEOUT_MARGIN_MS);
  });

  it("reads no free text: no filter on the functions' logs, workflows by structured error name", () => {
    const filters = Object.values(template.findResources("AWS::Logs::MetricFilter")).map(
      (r) =>
        r.Properties as { FilterPattern: string; MetricTransformations: { MetricName: string }[] },
    );
    const overrun = filters.filter((f) =>
      f.MetricTransformations.some((t) => t.MetricName === "WorkflowHardTimeouts"),
    );
    expect(overrun.length).toBeGreaterThan(0);
    for (const f of overrun) {
      expect(f.FilterPattern).toBe(
        '{ ($.details.error = "Sandbox.Timedout") || ($.details.error = "Lambda.Unknown") }',
      );
    }
    // No other filter feeds the overrun alarm, and none matches Lambda's free-text line.
    expect(filters.filter((f) => f.FilterPattern.includes("Task timed out"))).toEqual([]);
  });
});

describe("new and fixed alarms", () => {
  it.each([
    ["ResolveTimeouts", "resolve", 5],
    ["ConnectTimeouts", "connect", 5],
    ["AuthTimeouts", "auth", 3],
    ["ChannelTimeouts", "channel", 3],
    ["CommandTimeouts", "exec", 3],
  ])("%s watches Timeouts Phase=%s (threshold %d)", (name, phase, threshold) => {
    expect(byName(name)).toMatchObject({
      MetricName: METRIC.Timeouts,
      Namespace: DEFAULT_METRIC_NAMESPACE,
      Dimensions: [{ Name: "Phase", Value: phase }],
      Statistic: "Sum",
      Threshold: threshold,
    });
  });

  it.each([
    ["ConnectionLost", 3],
    ["HostKeyMismatch", 1],
    ["InternalErrors", 1],
  ])("%s watches Errors ErrorName=%s", (name, threshold) => {
    expect(byName(name)).toMatchObject({
      MetricName: METRIC.Errors,
      Dimensions: [
        { Name: "ErrorName", Value: name === "InternalErrors" ? "InternalError" : name },
      ],
      Threshold: threshold,
    });
  });

  it("has a heartbeat: Lambda invocations without BoundedSsh invocations for 3 periods", () => {
    const p = byName("Heartbeat");
    expect(p).toMatchObject({ EvaluationPeriods: 3, Threshold: 1 });
    const metrics = JSON.stringify(p?.Metrics);
    expect(metrics).toContain('"MetricName":"Invocations","Namespace":"AWS/Lambda"');
    expect(metrics).toContain(
      `"MetricName":"Invocations","Namespace":"${DEFAULT_METRIC_NAMESPACE}"`,
    );
  });

  it("counts failed, timed-out and aborted workflow executions", () => {
    for (const subject of ["SingleHost", "Fleet"]) {
      const metrics = JSON.stringify(byName(`WorkflowFailures-${subject}`)?.Metrics);
      for (const m of ["ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted"]) {
        expect(metrics).toContain(`"MetricName":"${m}"`);
      }
    }
  });

  it("describes throttles the way the workflows handle them (retried with jitter)", () => {
    const retried = JSON.stringify(definitionOf(template, "WorkflowsFleet")).includes(
      "Lambda.TooManyRequestsException",
    );
    const text = ALARM_CATALOG.LambdaThrottles.meaning;
    expect(retried).toBe(true);
    expect(text).toContain("retry with backoff and full jitter");
  });
});

describe("saved queries", () => {
  const saved = Object.values(template.findResources("AWS::Logs::QueryDefinition")).map(
    (q) => q.Properties as { Name: string; QueryString: string },
  );

  it("are the catalog's queries, rendered, in the stage's folder", () => {
    expect(saved.map((q) => q.Name).sort()).toEqual(
      Object.values(QUERIES)
        .map((s) => queryName("dev", s))
        .sort(),
    );
    for (const spec of Object.values(QUERIES)) {
      expect(saved.find((q) => q.Name === queryName("dev", spec))?.QueryString).toBe(
        renderQuery(spec),
      );
    }
  });

  it("never match every line: no (?i)ERROR, no @requestId (blank on raw lines)", () => {
    for (const q of saved) {
      expect(q.QueryString).not.toMatch(/\(\?i\)/);
      expect(q.QueryString).not.toContain("@requestId");
      expect(q.QueryString).not.toMatch(/like \/[^/]*(?<!\\t)ERROR(?!\\t)/);
    }
  });

  it("list hosts with first seen, last seen, address and source", () => {
    const hang = saved.find((q) => q.Name === "bounded-ssh-dev/hang-hosts")?.QueryString ?? "";
    expect(hang).toContain("min(@timestamp) as firstSeen");
    expect(hang).toContain("max(@timestamp) as lastSeen");
    expect(hang).toContain(
      "by error.host, error.port, error.address, error.name, phase, source, error.hop",
    );
    expect(hang).toContain("count_distinct(target.host) as targets");
  });

  it("list a dead jump host once, as itself, with hop via and the targets behind it", () => {
    const at = Date.now();
    const events = [
      ...Array.from({ length: 20 }, (_, i) =>
        hungAuditEvent("G", at, {
          host: `10.0.1.${i + 1}`,
          via: { host: "bastion.example", port: 2222, username: "jump" },
          hop: "via",
        }),
      ),
      hungAuditEvent("G", at, { host: "10.0.2.1", port: 2201 }),
    ];
    const rows = evaluate(QUERIES.HangHosts, events).map((r) =>
      Object.fromEntries(r.map((c) => [c.field, c.value])),
    );
    expect(rows).toHaveLength(2);
    expect(rows[0]).toMatchObject({
      "error.host": "bastion.example",
      "error.port": "2222",
      "error.hop": "via",
      sessions: "20",
      targets: "20",
    });
    expect(rows[1]).toMatchObject({
      "error.host": "10.0.2.1",
      "error.port": "2201",
      "error.hop": "",
      sessions: "1",
      targets: "1",
    });
  });

  it("find leaks and overruns on fields the audit line carries", () => {
    const text = (id: string) => saved.find((q) => q.Name === `bounded-ssh-dev/${id}`)?.QueryString;
    expect(text("leaked-sockets")).toContain("leakedSockets > 0");
    expect(text("deadline-overruns")).toContain("slackMs < 0");
    expect(text("deadline-overruns")).toContain("not ispresent(type)");
  });
});

describe("enrichment", () => {
  it.each([
    ["page", "Enrichment"],
    ["ticket", "Enrichmentticket"],
    ["fleet", "Enrichmentfleet"],
  ])(
    "subscribes the %s route's function to its alarm topic; it publishes to its route topic",
    (route, id) => {
      const cap = `${route[0]?.toUpperCase()}${route.slice(1)}`;
      template.hasResourceProperties("AWS::SNS::Subscription", {
        Protocol: "lambda",
        TopicArn: { Ref: Match.stringLikeRegexp(`${cap}AlarmTopic`) },
        Endpoint: { "Fn::GetAtt": [Match.stringLikeRegexp(`Monitoring${id}Handler`), "Arn"] },
      });
      template.hasResourceProperties("AWS::Lambda::Function", {
        Environment: {
          Variables: Match.objectLike({
            BSSH_STAGE: "dev",
            BSSH_ENRICHED_TOPIC_ARN: { Ref: Match.stringLikeRegexp(`Topics${cap}Topic`) },
          }),
        },
      });
      template.hasResourceProperties("AWS::IAM::Policy", {
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({ Action: "logs:StartQuery" }),
            Match.objectLike({ Action: ["logs:GetQueryResults", "logs:StopQuery"] }),
          ]),
        },
      });
    },
  );
});

describe("enrichment failure", () => {
  it.each(["Page", "Ticket", "Fleet"])(
    "sends the unenriched alarm to the %s topic when its enrichment fails after its retries",
    (cap) => {
      template.hasResourceProperties("AWS::Lambda::EventInvokeConfig", {
        MaximumRetryAttempts: 2,
        MaximumEventAgeInSeconds: 3600,
        DestinationConfig: {
          OnFailure: { Destination: { Ref: Match.stringLikeRegexp(`Topics${cap}Topic`) } },
        },
      });
    },
  );
});

describe("runbooks", () => {
  it("one page per kind, each starting with the catalog's header", () => {
    const pages = readdirSync("docs/runbooks").sort();
    expect(pages).toEqual(ALARM_KINDS.map(runbookFile).sort());
    for (const kind of ALARM_KINDS) {
      const file = `docs/runbooks/${runbookFile(kind)}`;
      expect(existsSync(file)).toBe(true);
      const text = readFileSync(file, "utf8");
      expect(text.startsWith(runbookHeader(kind)), `${file}: run npm run runbooks`).toBe(true);
      expect(text).toContain("## Impact");
      expect(text).toContain("## Remediation");
      // Every alarm name a page mentions exists.
      for (const [name] of text.matchAll(/<stage>-BoundedSsh-[A-Za-z-]+/g)) {
        const found = kindOfAlarmName("<stage>", name);
        expect(found, name).toBeDefined();
      }
    }
  });
});

describe("dashboard", () => {
  it("shows top hang hosts, Errors by ErrorName and the platform metrics", () => {
    const [dash] = Object.values(template.findResources("AWS::CloudWatch::Dashboard"));
    const body = JSON.stringify(dash?.Properties);
    expect(body).toContain(
      '\\"insightRule\\":{\\"maxContributorCount\\":10,\\"orderBy\\":\\"Sum\\",\\"ruleName\\":\\"dev-BoundedSsh-HangHosts\\"}',
    );
    expect(body).toContain(
      "SEARCH('{BoundedSsh,ErrorName} MetricName=\\\\\\\"Errors\\\\\\\"', 'Sum', 300)",
    );
    for (const ns of ["AWS/Lambda", "AWS/States", "AWS/ApiGateway"]) expect(body).toContain(ns);
    expect(body).toContain("ExecutionsTimedOut");
    expect(body).toContain("ConcurrentExecutions");
  });

  it("graphs the bounded SLI's bad events: Unbounded Sum beside leaks and hard timeouts", () => {
    const [dash] = Object.values(template.findResources("AWS::CloudWatch::Dashboard"));
    const body = JSON.stringify(dash?.Properties);
    expect(body).toContain("Unbounded (slack < 0 or a leak)");
    expect(body).toMatch(/\\"Unbounded\\".{0,200}\\"stat\\":\\"Sum\\"/);
  });

  it("counts hosts the breaker refused (Errors, ErrorName=HostQuarantined)", () => {
    const [dash] = Object.values(template.findResources("AWS::CloudWatch::Dashboard"));
    const body = JSON.stringify(dash?.Properties);
    expect(body).toContain("HostQuarantined (no dial)");
    expect(body).toMatch(/Errors.{0,40}ErrorName.{0,40}HostQuarantined/);
  });
});
