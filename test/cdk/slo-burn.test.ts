/**
 * The "bounded" SLO's burn-rate alarms (`BoundedBurn-Fast/-Slow/-Budget`) on synthetic traffic,
 * evaluated on the synthesized template by the drill's CloudWatch (test/drill/alarm-evaluator.ts):
 * a breach fires the right window pair and route, a healthy hour does not, hard timeouts count
 * per invocation from the signals no remote text can produce, and the page resets once the
 * fault stops. The per-invocation `Unbounded` datum itself: test/functions/metrics-unbounded.test.ts.
 */
import type { CfnElement } from "aws-cdk-lib";
import type { Construct } from "constructs";
import { beforeAll, describe, expect, it } from "vitest";
import { ROUTES, type Severity } from "../../operations/alarm-catalog.ts";
import { type AlarmResult, type Datum, evaluateAlarms, resolve } from "../drill/alarm-evaluator.ts";
import { unitOf } from "../drill/night.ts";
import type { LogEvent } from "../helpers/logs-insights.ts";
import { synth } from "./synth.ts";

const MINUTE = 60_000;
/** Periods align to it (the evaluator aligns to its origin; CloudWatch to the clock). */
const ORIGIN = Date.UTC(2026, 11, 7, 0, 0, 0);
const at = (hh: number, mm = 0) => ORIGIN + (hh * 60 + mm) * MINUTE;
/** The moment the period ending at `t` is complete. */
const end = (t: number) => t - 1;
/** The default `slo.boundedTarget` (99.9 %): its error budget. */
const BUDGET = 0.001;

type Template = Parameters<typeof evaluateAlarms>[0];
let template: Template;
let ids: {
  namespace: string;
  api: string;
  task: string;
  taskLogs: string;
  workflowLogs: string;
  apiTimeoutMs: number;
  taskTimeoutMs: number;
};
let routeOf: (topic: string) => Severity | undefined;

const logicalId = (c: Construct) => {
  const child = c.node.defaultChild as CfnElement;
  return child.stack.resolve(child.logicalId) as string;
};

beforeAll(() => {
  const { stack, template: t } = synth({ stage: "slo" });
  template = t.toJSON() as Template;
  const leak = Object.values(template.Resources).find(
    (r) => r.Properties.AlarmName === "slo-BoundedSsh-LeakedSockets",
  );
  const hardTimeoutFilter = Object.values(template.Resources).find(
    (r) =>
      r.Type === "AWS::Logs::MetricFilter" &&
      JSON.stringify(r.Properties.MetricTransformations).includes("WorkflowHardTimeouts"),
  );
  ids = {
    namespace: String(leak?.Properties.Namespace),
    api: logicalId(stack.apiFunction.function),
    task: logicalId(stack.taskFunction.function),
    taskLogs: logicalId(stack.taskFunction.logGroup),
    workflowLogs: resolve(hardTimeoutFilter?.Properties.LogGroupName),
    apiTimeoutMs: stack.apiFunction.timeout.toMilliseconds(),
    taskTimeoutMs: stack.taskFunction.timeout.toMilliseconds(),
  };
  const routes = new Map<string, Severity>(
    ROUTES.map((r) => [logicalId(stack.monitoring.alarmTopics[r] as unknown as Construct), r]),
  );
  routeOf = (topic) => routes.get(topic);
}, 240_000);

/**
 * Traffic as the handlers and Lambda report it, per minute: BoundedSsh `Invocations` and
 * `Unbounded` (summed), Lambda's `Duration` (max) and `Errors`, and workflow log events.
 */
class Traffic {
  readonly events: LogEvent[] = [];
  private readonly sums = new Map<string, Datum>();
  /** Unbounded invocations due so far, and reported so far (a share without randomness). */
  private due = 0;
  private bad = 0;

  datum(
    name: string,
    value: number,
    time: number,
    opts: { namespace?: string; dimensions?: Record<string, string>; max?: boolean } = {},
  ): void {
    const minute = Math.floor(time / MINUTE) * MINUTE;
    const namespace = opts.namespace ?? ids.namespace;
    const dimensions = opts.dimensions ?? {};
    const key = JSON.stringify([namespace, name, dimensions, minute]);
    const d = this.sums.get(key);
    if (!d) {
      const unit = unitOf(namespace === ids.namespace, name);
      this.sums.set(key, { namespace, name, dimensions, value, timestamp: minute, unit });
    } else d.value = opts.max ? Math.max(d.value, value) : d.value + value;
  }

  /**
   * `perMinute` task invocations every minute of [from, to), a `share` of them unbounded as
   * the handler reports it (slack < 0 or a leaked socket: `Unbounded` = 1).
   */
  steady(from: number, to: number, perMinute: number, share = 0): this {
    for (let t = from; t < to; t += MINUTE) {
      this.due += perMinute * share;
      const k = Math.floor(this.due + 1e-9) - this.bad;
      this.bad += k;
      this.datum("Invocations", perMinute, t);
      this.datum("Unbounded", k, t);
      const fn = { FunctionName: ids.task };
      this.datum("Invocations", perMinute, t, { namespace: "AWS/Lambda", dimensions: fn });
      this.datum("Duration", 900, t, { namespace: "AWS/Lambda", dimensions: fn, max: true });
    }
    return this;
  }

  /**
   * `count` task invocations killed at the timeout at `time`: Lambda's Duration at the timeout
   * and, when a project workflow made them, its failure events (structured `details.error`).
   * They publish nothing of their own.
   */
  taskHardTimeouts(time: number, count: number, workflowEvents = true): this {
    const fn = { FunctionName: ids.task };
    this.datum("Duration", ids.taskTimeoutMs, time, {
      namespace: "AWS/Lambda",
      dimensions: fn,
      max: true,
    });
    this.datum("Invocations", count, time, { namespace: "AWS/Lambda", dimensions: fn });
    this.datum("Errors", count, time, { namespace: "AWS/Lambda", dimensions: fn });
    if (workflowEvents) {
      for (let i = 0; i < count; i++) {
        this.events.push({
          logGroup: ids.workflowLogs,
          timestamp: time + i,
          message: JSON.stringify({
            type: "TaskFailed",
            details: { error: "Sandbox.Timedout", cause: "Task timed out after 60.00 seconds" },
          }),
        });
      }
    }
    return this;
  }

  /** `count` API invocations killed at the timeout at `time` (Lambda Errors, Duration). */
  apiHardTimeouts(time: number, count: number): this {
    const fn = { FunctionName: ids.api };
    const lambda = { namespace: "AWS/Lambda", dimensions: fn };
    this.datum("Duration", ids.apiTimeoutMs, time, { ...lambda, max: true });
    this.datum("Invocations", count, time, lambda);
    this.datum("Errors", count, time, lambda);
    return this;
  }

  get datums(): Datum[] {
    return [...this.sums.values()];
  }
}

/** Every alarm of the template at `now`, by name. */
function evaluate(traffic: Traffic, now: number): Map<string, AlarmResult> {
  const { alarms } = evaluateAlarms(template, traffic.datums, traffic.events, ORIGIN, now);
  return new Map(alarms.map((a) => [a.name, a]));
}
const name = (subject: string, window?: string) =>
  `slo-BoundedSsh-BoundedBurn-${subject}${window ? `-${window}` : ""}`;
const stateOf = (r: Map<string, AlarmResult>, subject: string) => r.get(name(subject))?.state;
const burnOf = (r: Map<string, AlarmResult>, subject: string, window: string) =>
  r.get(name(subject, window))?.values.at(-1) ?? Number.NaN;

describe("BoundedBurn on synthetic traffic", () => {
  it("a healthy hour at fleet volume: every window at 0, nothing fires", () => {
    const r = evaluate(new Traffic().steady(at(0), at(1), 34), end(at(1)));
    for (const subject of ["Fast", "Slow", "Budget"]) expect(stateOf(r, subject)).toBe("OK");
    expect(burnOf(r, "Fast", "1h")).toBe(0);
    expect(burnOf(r, "Fast", "5m")).toBe(0);
  });

  it("a one-off late invocation pages through DeadlineOverrun, not through the SLO", () => {
    const traffic = new Traffic().steady(at(0), at(1), 34);
    traffic.datum("Unbounded", 1, at(0, 57));
    traffic.datum("DeadlineSlack", -120, at(0, 57));
    const r = evaluate(traffic, end(at(1)));
    // 1 of 2,040 in the hour, 1 of 170 in the last 5 minutes: burn 0.5 and 5.9, under 14.4.
    expect(burnOf(r, "Fast", "1h")).toBeCloseTo(1 / 2040 / BUDGET, 6);
    expect(burnOf(r, "Fast", "5m")).toBeCloseTo(1 / 170 / BUDGET, 6);
    expect(stateOf(r, "Fast")).toBe("OK");
    expect(r.get("slo-BoundedSsh-DeadlineOverrun")?.state).toBe("ALARM");
  });

  it("a leaking container (5 % of invocations unbounded): Fast and Slow page, Budget tickets, Fast resets after the fix", () => {
    const traffic = new Traffic()
      .steady(at(0), at(0, 30), 34)
      .steady(at(0, 30), at(1, 30), 34, 0.05)
      .steady(at(1, 30), at(2), 34);
    const during = evaluate(traffic, end(at(1)));
    // The hour: 30 minutes at 5 %, 2.5 % of it: burn 25; the last 5 minutes: 50.
    expect(burnOf(during, "Fast", "1h")).toBeCloseTo(25, 0);
    expect(burnOf(during, "Fast", "5m")).toBeGreaterThan(40);
    for (const subject of ["Fast", "Slow", "Budget"])
      expect(stateOf(during, subject)).toBe("ALARM");
    // Routed like availability: Fast and Slow to the page topic, Budget to the ticket topic.
    const routes = (subject: string) => during.get(name(subject))?.alarmActions.map(routeOf);
    expect(routes("Fast")).toEqual(["page"]);
    expect(routes("Slow")).toEqual(["page"]);
    expect(routes("Budget")).toEqual(["ticket"]);
    // The windows themselves notify no one: only the composites.
    expect(during.get(name("Fast", "1h"))?.alarmActions).toEqual([]);

    // Fixed at 01:30: the short windows drop at once, so the pages reset while the hour is
    // still over budget (the long window alone never holds a page open).
    const after = evaluate(traffic, end(at(1, 40)));
    expect(burnOf(after, "Fast", "1h")).toBeGreaterThan(14.4);
    expect(burnOf(after, "Fast", "5m")).toBe(0);
    expect(stateOf(after, "Fast")).toBe("OK");
    expect(stateOf(after, "Slow")).toBe("OK");
  });

  it("a slower leak (1 %) burns Slow, not Fast", () => {
    const r = evaluate(new Traffic().steady(at(0), at(6), 34, 0.01), end(at(6)));
    expect(burnOf(r, "Fast", "1h")).toBeCloseTo(10, 0);
    expect(stateOf(r, "Fast")).toBe("OK");
    expect(burnOf(r, "Slow", "6h")).toBeCloseTo(10, 0);
    expect(stateOf(r, "Slow")).toBe("ALARM");
  });

  it("a trickle (0.2 % for 3 days) opens only the Budget ticket", () => {
    const r = evaluate(new Traffic().steady(at(0), at(72), 10, 0.002), end(at(72)));
    expect(burnOf(r, "Budget", "3d")).toBeCloseTo(2, 1);
    expect(burnOf(r, "Budget", "6h")).toBeGreaterThanOrEqual(1);
    expect(stateOf(r, "Budget")).toBe("ALARM");
    expect(stateOf(r, "Fast")).toBe("OK");
    expect(stateOf(r, "Slow")).toBe("OK");
  });
});

describe("hard timeouts, which the killed invocation cannot report", () => {
  const N = 34 * 60;

  it("counts each task hard timeout a workflow saw, in the bad events and in all", () => {
    const traffic = new Traffic().steady(at(0), at(1), 34).taskHardTimeouts(at(0, 57), 60);
    const r = evaluate(traffic, end(at(1)));
    expect(burnOf(r, "Fast", "1h")).toBeCloseTo(60 / (N + 60) / BUDGET, 6);
    expect(stateOf(r, "Fast")).toBe("ALARM");
  });

  it("counts at least one when only Lambda's Duration reached the timeout (no project workflow)", () => {
    const traffic = new Traffic().steady(at(0), at(1), 34).taskHardTimeouts(at(0, 57), 5, false);
    const r = evaluate(traffic, end(at(1)));
    expect(burnOf(r, "Fast", "1h")).toBeCloseTo(1 / (N + 1) / BUDGET, 6);
  });

  it("counts the API function's failed invocations of a window in which it hit its timeout", () => {
    const traffic = new Traffic().steady(at(0), at(1), 34).apiHardTimeouts(at(0, 58), 40);
    const r = evaluate(traffic, end(at(1)));
    expect(burnOf(r, "Fast", "1h")).toBeCloseTo(40 / (N + 40) / BUDGET, 6);
    expect(stateOf(r, "Fast")).toBe("ALARM");
  });

  it("reads no text: Lambda's and Step Functions' words in a cause or a log line count nothing", () => {
    const traffic = new Traffic().steady(at(0), at(1), 34);
    for (let i = 0; i < 100; i++) {
      const time = at(0, 50) + i;
      traffic.events.push(
        {
          logGroup: ids.workflowLogs,
          timestamp: time,
          message: JSON.stringify({
            type: "TaskFailed",
            details: { error: "ProtocolError", cause: "Sandbox.Timedout: Task timed out after" },
          }),
        },
        {
          logGroup: ids.taskLogs,
          timestamp: time,
          message: `2026-12-07T00:50:00.000Z\treq\tTask timed out after 1.00 seconds`,
        },
      );
    }
    const r = evaluate(traffic, end(at(1)));
    expect(burnOf(r, "Fast", "1h")).toBe(0);
    expect(burnOf(r, "Fast", "5m")).toBe(0);
  });
});

describe("the simulated night's 03:00 fault, as the bounded SLI sees it", () => {
  it("stays under every page threshold at the default target: the cause alarms page it, once", () => {
    // The night's volume: a 2,000-host run at h:01 over 8 minutes (1 % wedged, three attempts
    // each: 2,040 invocations). At 03:00 a leaking container and an overrun: 5 unbounded
    // invocations (test/drill/night.test.ts models the same fault).
    const traffic = new Traffic();
    for (let h = 0; h < 4; h++) traffic.steady(at(h, 1), at(h, 9), 255);
    for (const m of [2, 6, 7, 12, 17]) {
      traffic.datum("Invocations", 1, at(3, m));
      traffic.datum("Unbounded", 1, at(3, m));
    }
    let worstHour = 0;
    let worstShort = 0;
    for (let t = at(3, 5); t <= at(4); t += 5 * MINUTE) {
      const r = evaluate(traffic, end(t));
      expect(stateOf(r, "Fast"), new Date(t).toISOString()).toBe("OK");
      expect(stateOf(r, "Slow"), new Date(t).toISOString()).toBe("OK");
      worstHour = Math.max(worstHour, burnOf(r, "Fast", "1h"));
      worstShort = Math.max(worstShort, burnOf(r, "Fast", "5m"));
    }
    // The hour: 5 of 2,045 (burn 2.4). A quiet 5 minutes with one late invocation burns at
    // 1,000 on its own: the long window is what keeps a one-off from paging twice.
    expect(worstHour).toBeCloseTo(5 / (8 * 255 + 5) / BUDGET, 6);
    expect(worstShort).toBeGreaterThan(14.4);
  });
});
