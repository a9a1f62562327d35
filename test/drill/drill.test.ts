/**
 * The incident drill (`npm run drill`) as a test: exactly the intended alarms fire on the
 * drill's incident, the full-budget run fires none, and the enriched page names every hung
 * host with its phase. Also checks, on the same captured lines, the fixes the old template
 * got wrong (each with its old rule, so the check can fail).
 */
import { beforeAll, describe, expect, it } from "vitest";
import { QUERIES } from "../../operations/alarm-catalog.ts";
import { renderQuery } from "../../operations/queries.ts";
import { evaluate, matches } from "../helpers/logs-insights.ts";
import { runQuery } from "../helpers/logs-insights-run.ts";
import { evaluateAlarms, filterMatches } from "./alarm-evaluator.ts";
import { type DrillReport, formatReport, runDrill } from "./drill.ts";
import { drillProblems, INTENDED, recordedProblems } from "./drill-checks.ts";
import { checkOf, MUTATIONS, mutationProblems, thresholdMutations } from "./mutations.ts";
import { evaluateScenario, pageLevelAlarms, pageScenario } from "./page-scenario.ts";

let report: DrillReport;

beforeAll(async () => {
  report = await runDrill();
}, 90_000);

describe("incident drill", () => {
  it("fires exactly the intended alarms and names every hung host with its phase", () => {
    expect(drillProblems(report), formatReport(report)).toEqual([]);
    expect([...report.fired].sort()).toEqual([...INTENDED].sort());
  });

  it("ran 22 hosts through the real task handler, retries included", () => {
    expect(report.hosts).toHaveLength(22);
    expect(report.summary).toEqual({
      total: 22,
      succeeded: 14,
      failed: 1,
      timed_out: 6,
      error: 1,
      notStarted: 0,
    });
    // 5 tarpits and the auth host are retried (3 attempts), the rest run once.
    expect(report.invocations).toBe(16 + 6 * 3);
    expect(report.auditLines).toBe(report.invocations);
  });

  it("does not page for a run that used its whole budget (the old 0.9 × timeout rule would)", () => {
    const { durationMs, timeoutMs } = report.fullBudget;
    expect(durationMs).toBeGreaterThan(0.9 * timeoutMs);
    expect(report.alarms.find((a) => a.name === "drill-BoundedSsh-DeadlineOverrun")?.state).toBe(
      "OK",
    );
  });

  it("counts hung hosts as a share of distinct hosts contacted, from 18 hang sessions", () => {
    // Every host has its own name and address and listens on port 22, as in production: 6 hang
    // hosts of 22 contacted. Earlier periods are empty.
    expect(new Set(report.hosts.map((h) => h.name)).size).toBe(22);
    expect(new Set(report.hosts.map((h) => h.address)).size).toBe(22);
    expect(new Set(report.hosts.map((h) => h.port))).toEqual(new Set([22]));
    const hang = report.alarms.find((a) => a.name === "drill-BoundedSsh-HandshakeHangs");
    expect(hang?.values.at(-1)).toBeCloseTo((100 * 6) / 22, 6);
    const sessions = report.events.filter((e) => matches(QUERIES.HangHosts, e)).length;
    // 5 tarpits and the auth host, 3 attempts each; the frozen host (lost during its
    // command) is not a hang.
    expect(sessions).toBe(6 * 3);
  });

  it("ends every baseline and adversary with its own expected outcome", () => {
    const outcome = (role: string) =>
      report.hosts.flatMap((h, i) => {
        const r = report.results[i];
        return h.role === role ? [`${r?.status} ${r?.error ?? "-"} ${r?.phase ?? "-"}`] : [];
      });
    expect(outcome("full-budget")).toEqual(["succeeded - exec"]);
    expect(outcome("tarpit")).toEqual(Array(5).fill("timed_out BannerTimeout banner"));
    expect(outcome("auth")).toEqual(["timed_out AuthTimeout auth"]);
    expect(outcome("freeze")).toEqual(["error ConnectionLost exec"]);
    expect(outcome("healthy")).toEqual(Array(13).fill("succeeded - exec"));
    expect(outcome("nonzero")).toEqual(["failed - exec"]);
    expect(report.fullBudget.released).toBe(true);
  });

  it("does not count an audit line that quotes 'Task timed out after' as a hard timeout", () => {
    const quoting = report.events.filter((e) => e.message.includes("Task timed out after"));
    expect(quoting.length).toBeGreaterThan(0); // the healthy host's command
    expect(quoting.filter((e) => filterMatches('"Task timed out after"', e.message)).length).toBe(
      quoting.length,
    ); // the old filter
    expect(
      quoting.filter((e) =>
        filterMatches('"Task timed out after" -"bounded-ssh.audit"', e.message),
      ),
    ).toEqual([]);
    expect(evaluate(QUERIES.DeadlineOverruns, report.events)).toEqual([]);
  });

  it("lists no healthy line and no by-design SPEC error in invocation-failures", () => {
    // The task's SPEC errors are logged by the runtime as "\tERROR\tInvoke Error" lines.
    expect(report.events.filter((e) => e.message.includes("\tERROR\tInvoke Error")).length).toBe(
      6 * 3 + 1,
    );
    expect(evaluate(QUERIES.InvocationFailures, report.events)).toEqual([]);
  });
});

describe("the drill's queries, read two ways", () => {
  it("finds the same rows by running each catalog query's text and by evaluating its spec", () => {
    const norm = (rows: { field: string; value: string }[][]) =>
      rows
        .map((r) =>
          JSON.stringify(
            r.filter((f) => f.value !== "").sort((a, b) => a.field.localeCompare(b.field)),
          ),
        )
        .sort();
    let nonEmpty = 0;
    for (const spec of Object.values(QUERIES)) {
      if (spec.shape !== "hosts" && spec.shape !== "invocations") continue;
      const byText = runQuery(renderQuery(spec), report.events);
      expect(norm(byText), spec.id).toEqual(norm(evaluate(spec, report.events)));
      if (byText.length > 0) nonEmpty++;
    }
    expect(nonEmpty).toBeGreaterThanOrEqual(3); // hosts-by-error, hang-hosts, auth-timeout-hosts, …
  });
});

describe("mutations of the template and catalog (on the recorded run: no new sessions)", () => {
  it("passes every recorded check with the template as synthesized", () => {
    expect(recordedProblems(report)).toEqual([]);
  });

  it("fails the drill when the hang rule is keyed on the port alone", () => {
    const m = MUTATIONS.find((x) => x.id === "hang-rule-port-only");
    const problems = m ? mutationProblems(report, m) : [];
    // Every host is on port 22: one "hung host", under the minimum of 5, so nothing fires.
    expect(problems.map(checkOf)).toEqual(expect.arrayContaining(["fired", "hang-ratio"]));
    expect(problems.join("\n")).toMatch(/HandshakeHangs reads 0 %/);
  });

  it("catches every hand-picked mutation (key, threshold, dimension, statistic, unit, periods, route, filter, query)", () => {
    const rows = MUTATIONS.map((m) => {
      const problems = mutationProblems(report, m);
      return { id: m.id, what: m.what, caughtBy: [...new Set(problems.map(checkOf))].join(", ") };
    });
    console.log(
      [
        "| mutation | caught by |",
        "| --- | --- |",
        ...rows.map((r) => `| ${r.what} | ${r.caughtBy || "NOT CAUGHT"} |`),
      ].join("\n"),
    );
    expect(rows.filter((r) => r.caughtBy === "")).toEqual([]);
  });

  it("catches a threshold moved past the value of every checked alarm that fires (drill and page scenario)", () => {
    const rec = report.recorded;
    // Checked: the drill's intended alarms, and the page-level alarms with their windows
    // (AvailabilityBurn-Fast-1h, -5m). A ticket that fires on the way (the burn's Budget
    // windows) is no check's business, so moving its threshold is not a mutation it can catch.
    const page = pageLevelAlarms(rec.stage);
    const checked = (name: string) =>
      (INTENDED as readonly string[]).includes(name) ||
      page.some((p) => name === p || name.startsWith(`${p}-`));
    const firing = [
      ...evaluateAlarms(rec.template, rec.datums, rec.events, rec.origin, rec.now).alarms,
      ...evaluateScenario(rec.template, pageScenario(rec.scenarioIds, rec.taskTimeoutMs)),
    ].filter((a) => a.state === "ALARM" && checked(a.name));
    const mutations = thresholdMutations(firing);
    // The drill's two, and the page scenario's metric alarms (the burn windows among them).
    expect(mutations.length).toBeGreaterThanOrEqual(12);
    console.log(mutations.map((m) => m.what).join("\n"));
    const survivors = mutations.filter((m) => mutationProblems(report, m).length === 0);
    expect(survivors.map((m) => m.what)).toEqual([]);
  });
});
