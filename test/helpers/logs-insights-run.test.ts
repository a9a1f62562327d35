/**
 * The query-text interpreter (what the drill's fake Logs endpoint runs) against the catalog
 * spec evaluator (logs-insights.ts): two independent readings of every catalog query must find
 * the same rows, so neither can drift from the rendered text unnoticed.
 */
import { describe, expect, it } from "vitest";
import { QUERIES } from "../../operations/alarm-catalog.ts";
import { renderQuery } from "../../operations/queries.ts";
import { NightData } from "../drill/night.ts";
import { hungAuditEvent } from "./audit-lines.ts";
import { evaluate, type LogEvent, type ResultRow } from "./logs-insights.ts";
import { runQuery } from "./logs-insights-run.ts";

const T0 = Date.UTC(2026, 11, 7, 3, 0, 0);
const G = "TaskLogs";

/** A mixed hour: healthy, hung, rebooted, internal errors, overruns, Lambda's own lines. */
function events(): LogEvent[] {
  const d = new NightData({
    namespace: "BoundedSsh",
    taskFunction: "T",
    apiFunction: "A",
    taskLogs: G,
  });
  for (let i = 0; i < 30; i++) d.session(T0 + i * 1_000, `ok-${i}.fleet.example`, {});
  for (let i = 0; i < 4; i++) {
    for (let a = 0; a < 3; a++) {
      d.session(T0 + 40_000 + i * 5_000 + a * 1_000, `wedged-${i}.fleet.example`, {
        error: { name: "BannerTimeout", phase: "banner" },
      });
    }
  }
  d.session(T0 + 70_000, "db-1.fleet.example", {
    error: { name: "ConnectionLost", phase: "exec" },
  });
  d.session(T0 + 71_000, "db-2.fleet.example", { error: { name: "AuthTimeout", phase: "auth" } });
  d.session(T0 + 72_000, "db-3.fleet.example", {
    error: { name: "InternalError", phase: "exec" },
    slackMs: -4,
  });
  d.session(T0 + 73_000, "rebuilt.fleet.example", {
    error: { name: "HostKeyMismatch", phase: "handshake" },
  });
  return [
    ...d.events,
    hungAuditEvent(G, T0 + 74_000, {
      host: "app.internal",
      via: { host: "bastion.example", port: 2222, username: "jump" },
      hop: "via",
    }),
    {
      logGroup: G,
      logStream: "s",
      timestamp: T0 + 80_000,
      message: "2026-12-07T03:01:20.000Z 1a2b Task timed out after 15.00 seconds",
    },
    {
      logGroup: G,
      logStream: "s",
      timestamp: T0 + 81_000,
      message: `2026-12-07T03:01:21.000Z\t1a2b\tERROR\tInvoke Error \t{"errorType":"BannerTimeout","errorMessage":"Task timed out after 1.00 seconds"}`,
    },
    {
      logGroup: G,
      logStream: "s",
      timestamp: T0 + 82_000,
      message: `2026-12-07T03:01:22.000Z\t1a2b\tERROR\tUncaught Exception \t{"errorType":"TypeError","errorMessage":"x"}`,
    },
  ];
}

/** Rows as comparable objects: empty values dropped (one side prints "", the other omits). */
const normal = (rows: ResultRow[]) =>
  rows
    .map((r) =>
      JSON.stringify(
        Object.fromEntries(
          r.filter((f) => f.value !== "").map((f) => [f.field, f.value]),
        ).valueOf(),
      ),
    )
    .map((s) => JSON.parse(s) as Record<string, string>)
    .map((o) => JSON.stringify(Object.fromEntries(Object.entries(o).sort())))
    .sort();

describe("query text interpreter", () => {
  const all = events();
  const evaluated = Object.entries(QUERIES).filter(
    ([, s]) => s.shape === "hosts" || s.shape === "invocations",
  );

  it.each(evaluated)("finds what the spec evaluator finds: %s", (_key, spec) => {
    const byText = runQuery(renderQuery(spec), all);
    const bySpec = evaluate(spec, all);
    expect(normal(byText)).toEqual(normal(bySpec));
  });

  it("finds something for the queries that matter (the comparison is not vacuous)", () => {
    const count = (q: (typeof QUERIES)[keyof typeof QUERIES]) =>
      runQuery(renderQuery(q), all).length;
    expect(count(QUERIES.HangHosts)).toBe(6); // 4 wedged, the auth host, the jump host
    expect(count(QUERIES.DeadlineOverruns)).toBe(2); // slack -4, Lambda's own timeout line
    expect(count(QUERIES.InvocationFailures)).toBe(3); // InternalError, uncaught, timeout line
    expect(count(QUERIES.HostKeyMismatchHosts)).toBe(1);
  });

  it("runs the callers and workflow queries (no spec evaluator for them)", () => {
    const callers = runQuery(renderQuery(QUERIES.CallerVolume), all);
    // NightData's lines carry no caller: one group per minute, caller empty (so omitted).
    expect(callers).toEqual([
      [
        { field: "bin(1m)", value: "2026-12-07 03:00:00.000" },
        { field: "invocations", value: "42" },
      ],
      [
        { field: "bin(1m)", value: "2026-12-07 03:01:00.000" },
        { field: "invocations", value: "5" },
      ],
    ]);
    const flow: LogEvent = {
      logGroup: "F",
      timestamp: T0,
      message: JSON.stringify({
        type: "ExecutionFailed",
        execution_arn: "arn:x",
        details: { error: "States.Timeout" },
      }),
    };
    expect(runQuery(renderQuery(QUERIES.WorkflowFailures), [flow])).toEqual([
      [
        { field: "@timestamp", value: "2026-12-07 03:00:00.000" },
        { field: "type", value: "ExecutionFailed" },
        { field: "execution_arn", value: "arn:x" },
        { field: "details.error", value: "States.Timeout" },
      ],
    ]);
  });

  it("reads fields the way Logs Insights does: missing is false, not negates, bin floors time", () => {
    const e = (timestamp: number, o: unknown): LogEvent => ({
      logGroup: G,
      timestamp,
      message: JSON.stringify(o),
    });
    const lines = [
      e(T0 + 5_000, { a: 1, b: "x" }),
      e(T0 + 65_000, { a: 3 }),
      e(T0 + 70_000, { b: "y" }),
    ];
    const n = (q: string) => runQuery(q, lines).length;
    expect(n("filter a > 0")).toBe(2);
    expect(n("filter not a > 0")).toBe(1);
    expect(n('filter b in ["x", "y"]')).toBe(2);
    expect(n('filter b not in ["x"]')).toBe(2); // missing b is "not in"
    expect(n('filter ispresent(b) and b not in ["x"]')).toBe(1);
    expect(n('filter @message like /"a":3/')).toBe(1);
    expect(
      runQuery("stats count(*) as n, count(b) as nb, sum(a) as s by bin(1m) | sort n desc", lines),
    ).toEqual([
      [
        { field: "bin(1m)", value: "2026-12-07 03:01:00.000" },
        { field: "n", value: "2" },
        { field: "nb", value: "1" },
        { field: "s", value: "3" },
      ],
      [
        { field: "bin(1m)", value: "2026-12-07 03:00:00.000" },
        { field: "n", value: "1" },
        { field: "nb", value: "1" },
        { field: "s", value: "1" },
      ],
    ]);
    expect(runQuery("fields a | sort a desc | limit 1", lines)).toEqual([
      [{ field: "a", value: "3" }],
    ]);
    expect(() => runQuery("filter a = 1 | dedup a", lines)).toThrow(/not interpreted/);
    expect(() => runQuery("filter a = ", lines)).toThrow(/expected a value/);
  });
});
