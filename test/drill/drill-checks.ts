import { QUERIES } from "../../operations/alarm-catalog.ts";
import { type QuerySpec, queryName, renderQuery } from "../../operations/queries.ts";
import { evaluate } from "../helpers/logs-insights.ts";
import { checkQuery } from "../helpers/logs-insights-grammar.ts";
import { runQuery } from "../helpers/logs-insights-run.ts";
import { templateQueries } from "../helpers/shipped-queries.ts";
import { evaluateAlarms } from "./alarm-evaluator.ts";
import {
  type DrillHost,
  type DrillReport,
  outcomeMatches,
  routeTopicArn,
  type Template,
} from "./drill.ts";
import { evaluateScenario, pageProblems, pageScenario } from "./page-scenario.ts";

/** The alarms the drill's incident must fire, and only these. */
export const INTENDED = [
  // 6 distinct hosts hung mid-protocol (5 banner tarpits, 1 auth; the frozen host's
  // ConnectionLost came after its command started, so it is not one) of 22 distinct hosts
  // contacted (each its own name and address, all on port 22): ≥ 5 hosts and ≥ 1 %. Host
  // trouble: the fleet owners' route.
  "drill-BoundedSsh-HandshakeHangs",
  "drill-BoundedSsh-HandshakeHangs-Notify",
  // The auth host's three attempts (retried) reach the threshold of 3: fleet route too.
  "drill-BoundedSsh-AuthTimeouts",
  "drill-BoundedSsh-AuthTimeouts-Notify",
] as const;

/**
 * What makes the drill pass; empty when it does. Each problem starts with the check that
 * found it (`[fired]`, `[hang-ratio]`, …): the mutation table names them.
 */
export function drillProblems(r: DrillReport): string[] {
  const problems: string[] = [];
  const fired = [...r.fired].sort();
  if (JSON.stringify(fired) !== JSON.stringify([...INTENDED].sort())) {
    problems.push(
      `[fired] fired ${JSON.stringify(fired)}, intended ${JSON.stringify([...INTENDED].sort())}`,
    );
  }
  // Every host's own outcome, baselines included: a baseline that ends otherwise (the
  // full-budget run ending CommandTimeout) means the drill measured something else.
  for (const [i, h] of r.hosts.entries()) {
    const res = r.results[i];
    if (!outcomeMatches(h, res)) {
      problems.push(
        `[outcome] ${h.role} host ${h.name} ended ${JSON.stringify(res ?? null)}, expected ${JSON.stringify(h.expect)}`,
      );
    }
  }
  if (r.results.length !== r.hosts.length) {
    problems.push(`[outcome] ${r.results.length} results for ${r.hosts.length} hosts`);
  }
  // Distinct hosts the way production has them: one name and one address each, one port.
  const distinct = (f: (h: DrillHost) => string) => new Set(r.hosts.map(f)).size;
  if (distinct((h) => h.name) !== r.hosts.length || distinct((h) => h.address) !== r.hosts.length) {
    problems.push("[hosts] drill hosts share a name or an address");
  }
  if (distinct((h) => String(h.port)) !== 1) problems.push("[hosts] drill hosts differ by port");
  // The hang alarm counts the 6 hung hosts of the 22 contacted: any other value means a rule
  // counts something else (sessions, ports, addresses).
  const hang = r.alarms.find((a) => a.name === "drill-BoundedSsh-HandshakeHangs");
  const hung = r.hosts.filter((h) => h.role === "tarpit" || h.role === "auth").length;
  const want = (100 * hung) / r.hosts.length;
  const got = hang?.values.at(-1);
  if (got === undefined || Math.abs(got - want) > 1e-6) {
    problems.push(
      `[hang-ratio] HandshakeHangs reads ${got} %, expected ${want} % (${hung} of ${r.hosts.length} hosts)`,
    );
  }
  // AuthTimeouts counts sessions: the auth host's 3 attempts, nothing else.
  const auth = r.alarms.find((a) => a.name === "drill-BoundedSsh-AuthTimeouts");
  const authWant = 3 * r.hosts.filter((h) => h.role === "auth").length;
  if (auth?.values.at(-1) !== authWant) {
    problems.push(`[auth-count] AuthTimeouts reads ${auth?.values.at(-1)}, expected ${authWant}`);
  }
  if (r.queries.refused.length > 0) {
    problems.push(
      `[logs-endpoint] the Logs endpoint refused queries: ${r.queries.refused.join(" ;; ")}`,
    );
  }
  const fb = r.fullBudget;
  if (!fb.released)
    problems.push("[full-budget] the full-budget command was never released (it had not started)");
  if (!(fb.durationMs > 0.9 * fb.timeoutMs)) {
    problems.push(
      `[full-budget] the full-budget run used ${fb.durationMs} ms of ${fb.timeoutMs}: not past 90 %, so it does not prove the old rule wrong`,
    );
  }
  if (!(fb.slackMs >= 0))
    problems.push(`[full-budget] the full-budget run overran (slack ${fb.slackMs} ms)`);
  // Every alarm that fires notifies the fleet owners' topic and nothing else (what the
  // notifications below show for this run; checked on the alarms too, so a re-evaluated
  // variant of the template is held to it).
  const fleetTopic = r.recorded.topics.fleet;
  for (const a of r.alarms) {
    if (a.state === "ALARM" && a.alarmActions.some((t) => t !== fleetTopic)) {
      problems.push(
        `[route] ${a.name} notifies ${a.alarmActions.join(", ")}, not only the fleet topic`,
      );
    }
  }
  // Nothing reaches this service's pager: the hosts are the fleet owners' problem.
  const paged = r.notifications.filter((n) => n.topicArn === routeTopicArn("page"));
  if (paged.length) problems.push(`[paged] paged: ${paged.map((n) => n.subject).join("; ")}`);
  // The plain alarm goes out first on the fleet topic; the hosts follow in a second one.
  const subject = "ALARM: drill-BoundedSsh-HandshakeHangs-Notify (fleet)";
  const fleet = r.notifications.filter((n) => n.topicArn === routeTopicArn("fleet"));
  const plain = fleet.find((n) => n.subject === subject);
  if (!plain) problems.push("[notification] no plain fleet notification for HandshakeHangs");
  const page = fleet.find((n) => n.subject === `${subject} - hosts`);
  if (!page) problems.push("[notification] no enriched fleet notification for HandshakeHangs");
  else if (plain && r.notifications.indexOf(plain) > r.notifications.indexOf(page)) {
    problems.push("[notification] the enrichment went out before the plain notification");
  }
  for (const n of [plain, page]) {
    if (
      n &&
      (n.attributes.severity !== "fleet" ||
        n.attributes.alarm !== "drill-BoundedSsh-HandshakeHangs")
    ) {
      problems.push(`[notification] attributes of "${n.subject}": ${JSON.stringify(n.attributes)}`);
    }
  }
  const expected: Record<string, [string, string]> = {
    tarpit: ["BannerTimeout", "banner"],
    auth: ["AuthTimeout", "auth"],
  };
  for (const h of r.hosts) {
    const want = expected[h.role];
    const entry = want
      ? `${h.name}:${h.port} (${h.address}) ${want[0]} in ${want[1]}`
      : `${h.name}:${h.port} `;
    if (want && !page?.message.includes(entry))
      problems.push(
        `[notification] the fleet notification does not name ${h.role} host: "${entry}"`,
      );
    if (h.role === "freeze" && page?.message.includes(entry)) {
      problems.push(
        "[notification] the fleet notification lists the host lost during its command as a hang",
      );
    }
  }
  return problems;
}

/** The catalog's queries, by key (a mutation may replace one). */
export type Queries = Readonly<Record<string, QuerySpec>>;

/**
 * The saved queries and the queries the enrichment runs, on the recorded lines:
 *
 * - `[query-grammar]` every saved query of the template parses (logs-insights-grammar.ts);
 * - `[query-drift]` every saved query is the rendering of a catalog spec, the one the drill
 *   evaluates (the fake Logs endpoint evaluates specs, so a saved text that differs is one the
 *   drill never ran), and every spec is saved;
 * - `[saved-query]` the saved hang-hosts and auth-timeout-hosts TEXTS, run by the Logs
 *   Insights interpreter over the recorded lines, list exactly the hung hosts / the auth host;
 * - `[hang-query]` the catalog's hang-hosts spec (what the enrichment runs) lists exactly the
 *   hung hosts (not the frozen one), the auth-timeout spec exactly the auth host.
 */
export function queryProblems(
  template: Template,
  stage: string,
  r: Pick<DrillReport, "hosts" | "events">,
  queries: Queries = QUERIES,
): string[] {
  const problems: string[] = [];
  const saved = templateQueries(template);
  for (const q of saved) {
    for (const p of checkQuery(q.text)) problems.push(`[query-grammar] ${q.where}: ${p}`);
  }
  for (const spec of Object.values(queries)) {
    const name = queryName(stage, spec);
    const q = saved.find((s) => s.where.includes(`(${name})`));
    if (!q) problems.push(`[query-drift] no saved query ${name}`);
    else if (q.text !== renderQuery(spec)) {
      problems.push(`[query-drift] saved query ${name} is not what the drill evaluated`);
    }
  }
  const listed = (spec: QuerySpec | undefined) =>
    spec
      ? evaluate(spec, r.events)
          .map((row) => row.find((f) => f.field === "error.host")?.value ?? "")
          .sort()
      : [];
  const names = (roles: string[]) =>
    r.hosts
      .filter((h) => roles.includes(h.role))
      .map((h) => h.name)
      .sort();
  // The saved TEXT, run as Logs Insights would run it (logs-insights-run.ts), must list the
  // same hosts: what the on-call engineer opens is what the drill vouches for.
  const listedByText = (id: string) => {
    const q = saved.find((x) => x.where.includes(`(bounded-ssh-${stage}/${id})`));
    if (!q) return [];
    try {
      return runQuery(q.text, r.events)
        .map((row) => row.find((f) => f.field === "error.host")?.value ?? "")
        .sort();
    } catch (err) {
      return [`(refused: ${(err as Error).message})`];
    }
  };
  for (const [id, roles] of [
    ["hang-hosts", ["tarpit", "auth"]],
    ["auth-timeout-hosts", ["auth"]],
  ] as const) {
    const got = listedByText(id);
    if (JSON.stringify(got) !== JSON.stringify(names([...roles]))) {
      problems.push(`[saved-query] the saved ${id} query, run, lists ${JSON.stringify(got)}`);
    }
  }
  const hang = listed(queries.HangHosts);
  if (JSON.stringify(hang) !== JSON.stringify(names(["tarpit", "auth"]))) {
    problems.push(`[hang-query] the hang-hosts query lists ${JSON.stringify(hang)}`);
  }
  const auth = listed(queries.AuthTimeoutHosts);
  if (JSON.stringify(auth) !== JSON.stringify(names(["auth"]))) {
    problems.push(`[hang-query] the auth-timeout-hosts query lists ${JSON.stringify(auth)}`);
  }
  return problems;
}

/**
 * Every check of one drill run on a variant of its template (and catalog queries), without
 * new sessions: the recorded datums and lines are evaluated again (alarms, drill checks,
 * query checks) and the page scenario runs on the variant. Empty for the template as
 * synthesized; the mutation test expects problems for each mutation.
 */
export function recordedProblems(
  report: DrillReport,
  template: Template = report.recorded.template,
  queries: Queries = QUERIES,
): string[] {
  const rec = report.recorded;
  let evaluation: ReturnType<typeof evaluateAlarms>;
  let page: ReturnType<typeof evaluateScenario>;
  try {
    evaluation = evaluateAlarms(template, rec.datums, rec.events, rec.origin, rec.now);
    page = evaluateScenario(template, pageScenario(rec.scenarioIds, rec.taskTimeoutMs));
  } catch (err) {
    return [`[evaluation] ${(err as Error).message}`];
  }
  return [
    ...drillProblems({ ...report, alarms: evaluation.alarms, fired: evaluation.fired }),
    ...queryProblems(template, rec.stage, report, queries),
    ...pageProblems(page, rec.stage, rec.scenarioIds.pageTopic).map((p) => `[page-scenario] ${p}`),
  ];
}
