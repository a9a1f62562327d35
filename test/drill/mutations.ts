/**
 * Mutations of the synthesized template and of the catalog's queries that the drill must
 * catch (issue 22): each is applied to a copy of one recorded drill run's template and checked
 * with `recordedProblems` (the drill's checks on the recorded datums and lines, the query
 * checks and the page scenario): no new sessions per mutation.
 *
 * Two sets: {@link MUTATIONS}, chosen by hand (a key, a threshold, a dimension, a statistic, a
 * unit, evaluation periods, a route, a filter, a saved query, a catalog query), and
 * {@link thresholdMutations}, derived: every metric alarm that fires in the drill or the page
 * scenario gets a threshold just past the value it fired on, so a new alarm joins the set.
 */
import { alarmName, QUERIES } from "../../operations/alarm-catalog.ts";
import { AUDIT_FIELDS } from "../../operations/audit-fields.ts";
import { type AlarmResult, resolve } from "./alarm-evaluator.ts";
import type { DrillReport, Template } from "./drill.ts";
import { type Queries, recordedProblems } from "./drill-checks.ts";

export interface Mutation {
  id: string;
  /** What is changed, in words (the mutation table). */
  what: string;
  /** Changes the template copy in place. */
  template?: (t: Template, topics: Record<string, string>) => void;
  /** Returns the changed catalog queries. */
  queries?: (q: Queries) => Queries;
}

type Props = Record<string, unknown>;
type MetricQuery = {
  Id: string;
  Expression?: string;
  MetricStat?: {
    Metric: Props & { Dimensions?: { Name: string; Value: unknown }[] };
    Stat: string;
  };
};

const STAGE = "drill";
const name = (kind: Parameters<typeof alarmName>[1], subject?: string) =>
  alarmName(STAGE, kind, subject);

function alarm(t: Template, alarmName: string): Props {
  const r = Object.values(t.Resources).find((x) => x.Properties?.AlarmName === alarmName);
  if (!r) throw new Error(`mutation: no alarm ${alarmName} in the template`);
  return r.Properties;
}

function metricQuery(t: Template, alarmName: string, id: string): MetricQuery {
  const q = (alarm(t, alarmName).Metrics as MetricQuery[]).find((m) => m.Id === id);
  if (!q) throw new Error(`mutation: ${alarmName} has no metric ${id}`);
  return q;
}

function expression(t: Template, alarmName: string): MetricQuery & { Expression: string } {
  const q = (alarm(t, alarmName).Metrics as MetricQuery[]).find((m) =>
    m.Expression?.includes("FILL"),
  );
  if (!q?.Expression) throw new Error(`mutation: ${alarmName} has no expression`);
  return q as MetricQuery & { Expression: string };
}

function replaceIn(q: { Expression: string }, from: string, to: string): void {
  if (!q.Expression.includes(from)) throw new Error(`mutation: "${from}" not in ${q.Expression}`);
  q.Expression = q.Expression.replace(from, to);
}

/** The rule body of a Contributor Insights rule, as an object to change; written back. */
function ruleBody(t: Template, ruleName: string, change: (body: Props) => void): void {
  const r = Object.values(t.Resources).find(
    (x) => x.Type === "AWS::CloudWatch::InsightRule" && x.Properties.RuleName === ruleName,
  );
  if (!r) throw new Error(`mutation: no insight rule ${ruleName}`);
  const body = JSON.parse(resolve(r.Properties.RuleBody)) as Props;
  change(body);
  r.Properties.RuleBody = JSON.stringify(body);
}

function savedQuery(t: Template, id: string, change: (text: string) => string): void {
  const r = Object.values(t.Resources).find(
    (x) =>
      x.Type === "AWS::Logs::QueryDefinition" && x.Properties.Name === `bounded-ssh-${STAGE}/${id}`,
  );
  if (!r) throw new Error(`mutation: no saved query ${id}`);
  const before = String(r.Properties.QueryString);
  const after = change(before);
  if (after === before) throw new Error(`mutation: saved query ${id} unchanged`);
  r.Properties.QueryString = after;
}

const dimension = (q: MetricQuery | Props, dimName: string, value: string) => {
  const dims = ((q as MetricQuery).MetricStat?.Metric.Dimensions ?? (q as Props).Dimensions) as {
    Name: string;
    Value: unknown;
  }[];
  const d = dims?.find((x) => x.Name === dimName);
  if (!d) throw new Error(`mutation: no dimension ${dimName}`);
  d.Value = value;
};

const contribution = (body: Props) => body.Contribution as { Keys: string[]; Filters: Props[] };

/** The hand-picked mutations, each with the kind of change it makes. */
export const MUTATIONS: readonly Mutation[] = [
  {
    id: "hang-rule-port-only",
    what: "key: the hang-hosts insight rule keyed on error.port alone (every host is on port 22)",
    template: (t) =>
      ruleBody(t, `${STAGE}-BoundedSsh-HangHosts`, (b) => {
        contribution(b).Keys = ["$.error.port"];
      }),
  },
  {
    id: "contacted-rule-port-only",
    what: "key: the contacted-hosts insight rule (the ratio's denominator) keyed on target.port alone",
    template: (t) =>
      ruleBody(t, `${STAGE}-BoundedSsh-ContactedHosts`, (b) => {
        contribution(b).Keys = ["$.target.port"];
      }),
  },
  {
    id: "hang-rule-counts-exec",
    what: "filter: the hang-hosts rule without its phase NotIn [exec] filter (a reboot run counts)",
    template: (t) =>
      ruleBody(t, `${STAGE}-BoundedSsh-HangHosts`, (b) => {
        const c = contribution(b);
        c.Filters = c.Filters.filter((f) => !("NotIn" in f));
      }),
  },
  {
    id: "hang-min-hosts",
    what: "threshold: HandshakeHangs minimum hosts 5 → 7",
    template: (t) => replaceIn(expression(t, name("HandshakeHangs")), ">= 5", ">= 7"),
  },
  {
    id: "auth-threshold",
    what: "threshold: AuthTimeouts 3 → 4 sessions",
    template: (t) => {
      alarm(t, name("AuthTimeouts")).Threshold = 4;
    },
  },
  {
    id: "auth-dimension",
    what: "dimension: AuthTimeouts reads Timeouts{Phase=banner}",
    template: (t) => dimension(alarm(t, name("AuthTimeouts")), "Phase", "banner"),
  },
  {
    id: "auth-statistic",
    what: "statistic: AuthTimeouts Sum → Average",
    template: (t) => {
      alarm(t, name("AuthTimeouts")).Statistic = "Average";
    },
  },
  {
    id: "auth-unit",
    what: "unit: AuthTimeouts Count → Seconds",
    template: (t) => {
      alarm(t, name("AuthTimeouts")).Unit = "Seconds";
    },
  },
  {
    id: "overrun-seconds",
    what: "unit: DeadlineOverrun's task Duration bound written in seconds (14990 → 14.99)",
    template: (t) =>
      replaceIn(
        expression(t, name("DeadlineOverrun")),
        "FILL(durTask, 0) >= 14990",
        "FILL(durTask, 0) >= 14.99",
      ),
  },
  {
    id: "overrun-statistic",
    what: "statistic: DeadlineOverrun's task Duration Maximum → Average",
    template: (t) => {
      const q = metricQuery(t, name("DeadlineOverrun"), "durTask");
      if (q.MetricStat) q.MetricStat.Stat = "Average";
    },
  },
  {
    id: "leak-statistic",
    what: "statistic: LeakedSockets Maximum → Minimum",
    template: (t) => {
      alarm(t, name("LeakedSockets")).Statistic = "Minimum";
    },
  },
  {
    id: "leak-threshold",
    what: "threshold: LeakedSockets > 0 → > 2",
    template: (t) => {
      alarm(t, name("LeakedSockets")).Threshold = 2;
    },
  },
  {
    id: "api-errors-function",
    what: "dimension: LambdaErrors-Api watches another function (the task's)",
    template: (t) => {
      const p = alarm(t, name("LambdaErrors", "Api"));
      const task = (alarm(t, name("LambdaThrottles", "Task")).Dimensions as { Value: unknown }[])[0]
        ?.Value;
      (p.Dimensions as { Value: unknown }[])[0] = { Name: "FunctionName", Value: task } as never;
    },
  },
  {
    id: "hostkey-error-name",
    what: "key: HostKeyMismatch reads Errors{ErrorName=HostKeyMismatched}",
    template: (t) => dimension(alarm(t, name("HostKeyMismatch")), "ErrorName", "HostKeyMismatched"),
  },
  {
    id: "internal-metric-name",
    what: "key: InternalErrors reads the metric Error (not Errors)",
    template: (t) => {
      alarm(t, name("InternalErrors")).MetricName = "Error";
    },
  },
  {
    id: "heartbeat-periods",
    what: "evaluation periods: Heartbeat 3 → 4",
    template: (t) => {
      alarm(t, name("Heartbeat")).EvaluationPeriods = 4;
    },
  },
  {
    id: "edge-api-name",
    what: "dimension: ApiEdge-Errors reads another API's 5XXError (ApiName)",
    template: (t) =>
      dimension(metricQuery(t, name("ApiEdge", "Errors"), "e5xx"), "ApiName", "Api-old"),
  },
  {
    id: "slo-target",
    what: "threshold: AvailabilityBurn-Fast's SLO target 99.9 % → 90 % (error budget 0.001 → 0.1)",
    template: (t) => {
      for (const w of ["Fast-1h", "Fast-5m"]) {
        replaceIn(expression(t, `${name("AvailabilityBurn")}-${w}`), "/ 0.001", "/ 0.1");
      }
    },
  },
  {
    id: "hang-route-page",
    what: "route: HandshakeHangs-Notify pages this service instead of the fleet owners",
    template: (t, topics) => {
      alarm(t, `${name("HandshakeHangs")}-Notify`).AlarmActions = [{ Ref: topics.page }];
    },
  },
  {
    id: "leak-notifies-nobody",
    what: "route: LeakedSockets-Notify loses its page action",
    template: (t) => {
      alarm(t, `${name("LeakedSockets")}-Notify`).AlarmActions = [];
    },
  },
  {
    id: "saved-query-typo",
    what: 'query: saved hang-hosts query sorts by "session" (no such field after stats)',
    template: (t) => savedQuery(t, "hang-hosts", (q) => q.replace("sort sessions", "sort session")),
  },
  {
    id: "saved-query-semantics",
    what: "query: saved hang-hosts query without its phase condition (valid, but not what runs)",
    template: (t) =>
      savedQuery(t, "hang-hosts", (q) =>
        q.replace(' and ispresent(phase) and phase not in ["exec"]', ""),
      ),
  },
  {
    id: "catalog-query-phase",
    what: "query: the catalog's hang-hosts spec without its phase condition (lists the frozen host)",
    queries: (q) => ({
      ...q,
      HangHosts: { ...QUERIES.HangHosts, where: QUERIES.HangHosts.where.slice(0, 1) },
    }),
  },
  {
    id: "catalog-query-error",
    what: "query: the catalog's auth-timeout-hosts spec lists HandshakeTimeout",
    queries: (q) => ({
      ...q,
      AuthTimeoutHosts: {
        ...QUERIES.AuthTimeoutHosts,
        where: [{ field: AUDIT_FIELDS.errorName, in: ["HandshakeTimeout"] }],
      },
    }),
  },
];

/**
 * One mutation per metric alarm in ALARM in the drill or the page scenario: its threshold
 * just past the value it fired on (the largest for "greater", the smallest for "less").
 */
export function thresholdMutations(firing: readonly AlarmResult[]): Mutation[] {
  const seen = new Set<string>();
  return firing
    .filter((a) => !a.composite && a.state === "ALARM" && !seen.has(a.name) && seen.add(a.name))
    .map((a) => {
      const values = a.values.filter((v): v is number => v !== undefined);
      const greater = a.comparison?.startsWith("Greater") ?? true;
      const past = greater ? Math.max(...values) + 1 : Math.min(...values) - 1;
      return {
        id: `threshold:${a.name}`,
        what: `threshold: ${a.name} ${a.threshold} → ${past} (past the value it fired on)`,
        template: (t: Template) => {
          alarm(t, a.name).Threshold = past;
        },
      };
    });
}

/** The problems the recorded checks find on a mutated copy of the run's template/catalog. */
export function mutationProblems(report: DrillReport, m: Mutation): string[] {
  const template = structuredClone(report.recorded.template);
  m.template?.(template, report.recorded.topics);
  const queries = m.queries ? m.queries(QUERIES) : QUERIES;
  return recordedProblems(report, template, queries);
}

/** The check a problem names (`[fired] …` → `fired`). */
export const checkOf = (problem: string) => /^\[([a-z-]+)\]/.exec(problem)?.[1] ?? "?";
