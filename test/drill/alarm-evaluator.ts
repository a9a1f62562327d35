/**
 * A small CloudWatch for the drill: evaluates the alarms of a synthesized template on captured
 * metric datums and log events. It covers what the template uses and nothing more:
 *
 * - metric filters (`"term"`, `-"term"`, `?"term"` patterns and `{ $.a = "x" || … }` JSON
 *   patterns) → derived datums;
 * - Contributor Insights rules (JSON log rules, `In` and `NotIn` filters, `UniqueContributors`);
 * - alarms on one metric (`Sum`, `Maximum`, `Minimum`, `Average`, `SampleCount`) or on metric
 *   math (`+ - * /`, comparisons, `AND`/`OR`, `IF`, `FILL`, `MAX([…])`, `INSIGHT_RULE_METRIC`);
 * - `EvaluationPeriods`, `DatapointsToAlarm`, `TreatMissingData`, `Unit` (an alarm naming a
 *   unit reads only datums published with it);
 * - metric math over other expressions (`ReturnData: false` ids);
 * - composite alarms (`ALARM("…") OR …`), their actions and `ActionsSuppressor`.
 *
 * References (`Ref`, `Fn::GetAtt`) resolve to logical ids: datums and events name their
 * function, state machine and log group by logical id. Periods are aligned to `origin` (the
 * drill's start), so a short drill never straddles a period boundary; on AWS periods are
 * aligned to the clock.
 */
import { readField } from "../../operations/audit-fields.ts";
import type { LogEvent } from "../helpers/logs-insights.ts";

export interface Datum {
  namespace: string;
  name: string;
  dimensions: Record<string, string>;
  value: number;
  timestamp: number;
  /** As published (EMF `Unit`); an alarm that names a unit reads only datums of that unit. */
  unit?: string;
}

type Cfn = Record<string, unknown>;
type Resources = Record<string, { Type: string; Properties: Cfn }>;

/** Resolves intrinsics to strings: `Ref`/`GetAtt` become the logical id. */
export function resolve(value: unknown): string {
  if (typeof value === "string") return value;
  if (typeof value === "number") return String(value);
  const v = value as Cfn;
  if ("Ref" in v) return String(v.Ref);
  if ("Fn::GetAtt" in v) return String((v["Fn::GetAtt"] as string[])[0]);
  if ("Fn::Join" in v) {
    const [sep, parts] = v["Fn::Join"] as [string, unknown[]];
    return parts.map(resolve).join(sep);
  }
  throw new Error(`evaluator: unsupported intrinsic ${JSON.stringify(value)}`);
}

// --- metric filters ---------------------------------------------------------------------------

/**
 * A metric filter pattern on one log event. `{ … }` is a JSON pattern (selectors `$.a.b`
 * compared with `=`/`!=` to a quoted string or a number, combined with `&&`, `||` and
 * parentheses): it only matches an event that is a JSON object. Otherwise the pattern is
 * unstructured: all plain terms, none of the `-` terms, any `?` term.
 */
export function filterMatches(pattern: string, message: string): boolean {
  const trimmed = pattern.trim();
  if (trimmed.startsWith("{")) return jsonFilterMatches(trimmed, message);
  return termsMatch(pattern, message);
}

function jsonFilterMatches(pattern: string, message: string): boolean {
  if (!pattern.endsWith("}")) throw new Error(`evaluator: JSON pattern ${pattern}`);
  let event: unknown;
  try {
    event = JSON.parse(message);
  } catch {
    return false;
  }
  if (event === null || typeof event !== "object" || Array.isArray(event)) return false;
  const tokens = [
    ...pattern
      .slice(1, -1)
      .matchAll(
        /\s*(\$(?:\.[A-Za-z0-9_]+)+|"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?|&&|\|\||!=|=|\(|\))/gy,
      ),
  ].map((m) => m[1] as string);
  if (tokens.join("").replace(/\s/g, "") !== pattern.slice(1, -1).replace(/\s/g, "")) {
    throw new Error(`evaluator: unsupported JSON pattern ${pattern}`);
  }
  let i = 0;
  const next = () => tokens[i++];
  const or = (): boolean => {
    let v = and();
    while (tokens[i] === "||") {
      i++;
      const r = and();
      v = v || r;
    }
    return v;
  };
  const and = (): boolean => {
    let v = primary();
    while (tokens[i] === "&&") {
      i++;
      const r = primary();
      v = v && r;
    }
    return v;
  };
  const primary = (): boolean => {
    const t = next();
    if (t === "(") {
      const v = or();
      if (next() !== ")") throw new Error(`evaluator: unbalanced JSON pattern ${pattern}`);
      return v;
    }
    if (!t?.startsWith("$.")) throw new Error(`evaluator: JSON pattern selector ${t}`);
    const op = next();
    const raw = next() ?? "";
    const actual = readField(event, t.slice(2));
    const expected: unknown = raw.startsWith('"') ? JSON.parse(raw) : Number(raw);
    const equal =
      typeof expected === "number"
        ? actual === expected
        : String(actual) === expected && actual !== undefined;
    if (op === "=") return equal;
    if (op === "!=") return !equal;
    throw new Error(`evaluator: JSON pattern operator ${op}`);
  };
  const result = or();
  if (i !== tokens.length) throw new Error(`evaluator: trailing tokens in ${pattern}`);
  return result;
}

function termsMatch(pattern: string, message: string): boolean {
  const terms = [...pattern.matchAll(/([?-]?)"([^"]*)"|([?-]?)(\S+)/g)].map((m) => ({
    op: m[1] ?? m[3] ?? "",
    text: m[2] ?? m[4] ?? "",
  }));
  const any = terms.filter((t) => t.op === "?");
  if (any.length > 0 && !any.some((t) => message.includes(t.text))) return false;
  return terms.every((t) =>
    t.op === "-" ? !message.includes(t.text) : t.op === "?" || message.includes(t.text),
  );
}

function metricFilterDatums(resources: Resources, events: readonly LogEvent[]): Datum[] {
  const out: Datum[] = [];
  for (const r of Object.values(resources)) {
    if (r.Type !== "AWS::Logs::MetricFilter") continue;
    const group = resolve(r.Properties.LogGroupName);
    const pattern = r.Properties.FilterPattern as string;
    const [t] = r.Properties.MetricTransformations as {
      MetricNamespace: string;
      MetricName: string;
      MetricValue: string;
    }[];
    if (!t) continue;
    for (const e of events) {
      if (e.logGroup === group && filterMatches(pattern, e.message)) {
        out.push({
          namespace: t.MetricNamespace,
          name: t.MetricName,
          dimensions: {},
          value: Number(t.MetricValue),
          timestamp: e.timestamp,
        });
      }
    }
  }
  return out;
}

// --- insight rules ----------------------------------------------------------------------------

interface InsightRule {
  logGroups: string[];
  keys: string[];
  filters: InsightFilter[];
}

type InsightFilter = { Match: string; In?: string[]; NotIn?: string[] };

function insightRules(resources: Resources): Map<string, InsightRule> {
  const rules = new Map<string, InsightRule>();
  for (const r of Object.values(resources)) {
    if (r.Type !== "AWS::CloudWatch::InsightRule") continue;
    const body = JSON.parse(resolve(r.Properties.RuleBody)) as {
      LogGroupNames: string[];
      LogFormat: string;
      Contribution: { Keys: string[]; Filters: InsightFilter[] };
    };
    if (body.LogFormat !== "JSON") throw new Error("evaluator: only JSON insight rules");
    rules.set(String(r.Properties.RuleName), {
      logGroups: body.LogGroupNames,
      keys: body.Contribution.Keys,
      filters: body.Contribution.Filters,
    });
  }
  return rules;
}

const jsonPath = (line: unknown, path: string) => readField(line, path.replace(/^\$\./, ""));

function uniqueContributors(rule: InsightRule, events: readonly LogEvent[]): number {
  const keys = new Set<string>();
  for (const e of events) {
    if (!rule.logGroups.includes(e.logGroup)) continue;
    let line: unknown;
    try {
      line = JSON.parse(e.message);
    } catch {
      continue;
    }
    const ok = rule.filters.every((f) => {
      const v = jsonPath(line, f.Match);
      if (v === undefined || v === null) return false;
      if (f.In) return f.In.includes(String(v));
      if (f.NotIn) return !f.NotIn.includes(String(v));
      throw new Error(`evaluator: insight filter ${JSON.stringify(f)}`);
    });
    if (ok) keys.add(JSON.stringify(rule.keys.map((k) => jsonPath(line, k))));
  }
  return keys.size;
}

/** UniqueContributors of a template's insight rule over `events` (tests of the rule alone). */
export function insightRuleValue(
  template: { Resources: Resources },
  ruleName: string,
  events: readonly LogEvent[],
): number {
  const rule = insightRules(template.Resources).get(ruleName);
  if (!rule) throw new Error(`evaluator: no insight rule ${ruleName}`);
  return uniqueContributors(rule, events);
}

// --- metric math ------------------------------------------------------------------------------

type Value = number | undefined;
type Node =
  | { t: "num"; v: number }
  | { t: "str"; v: string }
  | { t: "id"; v: string }
  | { t: "call"; f: string; args: Node[] }
  | { t: "arr"; items: Node[] }
  | { t: "bin"; op: string; l: Node; r: Node }
  | { t: "neg"; e: Node };

/** Parses a metric math expression (the subset above). */
export function parseExpression(src: string): Node {
  const tokens = [
    ...src.matchAll(
      /\s*(\d+(?:\.\d+)?|'[^']*'|[A-Za-z_][A-Za-z0-9_]*|>=|<=|==|!=|[-+*/()<>,[\]])/gy,
    ),
  ].map((m) => m[1] as string);
  if (tokens.join("").length !== src.replace(/\s+/g, "").length) {
    throw new Error(`evaluator: cannot tokenize ${src}`);
  }
  let i = 0;
  const peek = () => tokens[i];
  const eat = (tok?: string) => {
    const got = tokens[i++];
    if (tok !== undefined && got !== tok)
      throw new Error(`evaluator: expected ${tok}, got ${got} in ${src}`);
    return got as string;
  };
  const binary = (next: () => Node, ops: string[]) => (): Node => {
    let l = next();
    while (ops.includes(peek() ?? "")) {
      const op = eat();
      l = { t: "bin", op, l, r: next() };
    }
    return l;
  };
  const primary = (): Node => {
    const tok = eat();
    if (tok === "(") {
      const e = or();
      eat(")");
      return e;
    }
    if (tok === "-") return { t: "neg", e: primary() };
    if (tok === "[") {
      const items: Node[] = [];
      while (peek() !== "]") {
        items.push(or());
        if (peek() === ",") eat(",");
      }
      eat("]");
      return { t: "arr", items };
    }
    if (/^\d/.test(tok)) return { t: "num", v: Number(tok) };
    if (tok.startsWith("'")) return { t: "str", v: tok.slice(1, -1) };
    if (peek() === "(") {
      eat("(");
      const args: Node[] = [];
      while (peek() !== ")") {
        args.push(or());
        if (peek() === ",") eat(",");
      }
      eat(")");
      return { t: "call", f: tok, args };
    }
    return { t: "id", v: tok };
  };
  const mul = binary(primary, ["*", "/"]);
  const add = binary(mul, ["+", "-"]);
  const cmp = binary(add, ["<", ">", "<=", ">=", "==", "!="]);
  const and = binary(cmp, ["AND"]);
  const or = binary(and, ["OR"]);
  const root = or();
  if (i !== tokens.length) throw new Error(`evaluator: trailing tokens in ${src}`);
  return root;
}

function evalNode(
  n: Node,
  env: (id: string) => Value,
  insight: (rule: string, stat: string) => Value,
): Value | Value[] {
  const num = (x: Node): Value => {
    const v = evalNode(x, env, insight);
    if (Array.isArray(v)) throw new Error("evaluator: array where a number is expected");
    return v;
  };
  switch (n.t) {
    case "num":
      return n.v;
    case "str":
      throw new Error("evaluator: string outside a function");
    case "id":
      return env(n.v);
    case "neg": {
      const v = num(n.e);
      return v === undefined ? undefined : -v;
    }
    case "arr":
      return n.items.map(num);
    case "bin": {
      const l = num(n.l);
      const r = num(n.r);
      if (l === undefined || r === undefined) return undefined;
      const b = (x: boolean) => (x ? 1 : 0);
      switch (n.op) {
        case "+":
          return l + r;
        case "-":
          return l - r;
        case "*":
          return l * r;
        case "/":
          return r === 0 ? undefined : l / r;
        case "<":
          return b(l < r);
        case ">":
          return b(l > r);
        case "<=":
          return b(l <= r);
        case ">=":
          return b(l >= r);
        case "==":
          return b(l === r);
        case "!=":
          return b(l !== r);
        case "AND":
          return b(l !== 0 && r !== 0);
        case "OR":
          return b(l !== 0 || r !== 0);
      }
      throw new Error(`evaluator: operator ${n.op}`);
    }
    case "call": {
      switch (n.f) {
        case "FILL": {
          const v = num(n.args[0] as Node);
          return v ?? num(n.args[1] as Node);
        }
        case "IF": {
          const c = num(n.args[0] as Node);
          if (c === undefined) return undefined;
          return c !== 0 ? num(n.args[1] as Node) : num(n.args[2] as Node);
        }
        case "MAX": {
          const arr = evalNode(n.args[0] as Node, env, insight);
          const vals = (Array.isArray(arr) ? arr : [arr]).filter(
            (v): v is number => v !== undefined,
          );
          return vals.length ? Math.max(...vals) : undefined;
        }
        case "INSIGHT_RULE_METRIC": {
          const [rule, stat] = n.args as [{ t: "str"; v: string }, { t: "str"; v: string }];
          return insight(rule.v, stat.v);
        }
      }
      throw new Error(`evaluator: function ${n.f}`);
    }
  }
}

// --- alarms -----------------------------------------------------------------------------------

interface MetricRef {
  namespace: string;
  name: string;
  dimensions: Record<string, string>;
  stat: string;
  period: number;
  /** The alarm's `Unit`: only datums published with it count (CloudWatch: else no data). */
  unit?: string;
}

function statistic(stat: string, values: number[]): Value {
  if (values.length === 0) return undefined;
  switch (stat) {
    case "Sum":
      return values.reduce((a, b) => a + b, 0);
    case "Maximum":
      return Math.max(...values);
    case "Minimum":
      return Math.min(...values);
    case "Average":
      return values.reduce((a, b) => a + b, 0) / values.length;
    case "SampleCount":
      return values.length;
  }
  throw new Error(`evaluator: statistic ${stat}`);
}

const dims = (list: unknown): Record<string, string> =>
  Object.fromEntries(
    ((list as { Name: string; Value: unknown }[]) ?? []).map((d) => [d.Name, resolve(d.Value)]),
  );

const sameDims = (a: Record<string, string>, b: Record<string, string>) =>
  Object.keys(a).length === Object.keys(b).length &&
  Object.entries(a).every(([k, v]) => b[k] === v);

const actionsOf = (p: Cfn) => ({
  alarmActions: ((p.AlarmActions as unknown[]) ?? []).map(resolve),
  okActions: ((p.OKActions as unknown[]) ?? []).map(resolve),
});

/** One evaluated alarm. */
export interface AlarmResult {
  logicalId: string;
  name: string;
  composite: boolean;
  state: "ALARM" | "OK";
  /** Per evaluated period, oldest first (undefined = missing data). */
  values: Value[];
  threshold?: number;
  comparison?: string;
  /** The period of the breach, for the enrichment's notification. */
  period?: number;
  evaluationPeriods?: number;
  /** Resolved ALARM and OK actions (topic logical ids). */
  alarmActions: string[];
  okActions: string[];
  /** Composite only: the suppressor's logical id and its extension period (seconds). */
  suppressor?: { logicalId: string; extensionS: number; waitS: number };
}

export interface Evaluation {
  alarms: AlarmResult[];
  fired: string[];
  /** Datums the metric filters derived from the logs. */
  derived: Datum[];
}

/** Evaluates every alarm of the template at `now` (the end of the drill). */
export function evaluateAlarms(
  template: { Resources: Resources },
  datums: readonly Datum[],
  events: readonly LogEvent[],
  origin: number,
  now: number,
): Evaluation {
  const resources = template.Resources;
  const derived = metricFilterDatums(resources, events);
  const all = [...datums, ...derived];
  const rules = insightRules(resources);
  const results: AlarmResult[] = [];

  for (const [id, r] of Object.entries(resources)) {
    if (r.Type !== "AWS::CloudWatch::Alarm") continue;
    const p = r.Properties;
    const n = Number(p.EvaluationPeriods ?? 1);
    const m = Number(p.DatapointsToAlarm ?? n);
    let period = Number(p.Period ?? 0);
    let valueAt: (start: number, end: number) => Value;
    const metricValue = (ref: MetricRef, start: number, end: number) =>
      statistic(
        ref.stat,
        all
          .filter(
            (d) =>
              d.namespace === ref.namespace &&
              d.name === ref.name &&
              sameDims(ref.dimensions, d.dimensions) &&
              (ref.unit === undefined || d.unit === ref.unit) &&
              d.timestamp >= start &&
              d.timestamp < end,
          )
          .map((d) => d.value),
      );
    if (p.MetricName) {
      const ref: MetricRef = {
        namespace: String(p.Namespace),
        name: String(p.MetricName),
        dimensions: dims(p.Dimensions),
        stat: String(p.Statistic),
        period,
        ...(p.Unit ? { unit: String(p.Unit) } : {}),
      };
      valueAt = (s, e) => metricValue(ref, s, e);
    } else {
      const queries = p.Metrics as {
        Id: string;
        Expression?: string;
        ReturnData?: boolean;
        Period?: number;
        MetricStat?: {
          Metric: { Namespace: string; MetricName: string; Dimensions?: unknown };
          Period: number;
          Stat: string;
          Unit?: string;
        };
      }[];
      const refs = new Map<string, MetricRef>();
      const subExpressions = new Map<string, Node>();
      let expression: Node | undefined;
      for (const q of queries) {
        if (q.MetricStat) {
          refs.set(q.Id, {
            namespace: q.MetricStat.Metric.Namespace,
            name: q.MetricStat.Metric.MetricName,
            dimensions: dims(q.MetricStat.Metric.Dimensions),
            stat: q.MetricStat.Stat,
            period: q.MetricStat.Period,
            ...(q.MetricStat.Unit ? { unit: q.MetricStat.Unit } : {}),
          });
          period ||= q.MetricStat.Period;
        } else if (q.Expression && q.ReturnData !== false) {
          expression = parseExpression(q.Expression);
          period ||= Number(q.Period ?? 0);
        } else if (q.Expression) {
          subExpressions.set(q.Id, parseExpression(q.Expression));
          // An expression over other expressions takes their period (CDK writes it on them).
          period ||= Number(q.Period ?? 0);
        }
      }
      if (!expression) throw new Error(`evaluator: ${id} has no expression`);
      const expr = expression;
      valueAt = (s, e) => {
        const insight = (rule: string, stat: string) => {
          const found = rules.get(rule);
          if (!found) throw new Error(`evaluator: ${id}: unknown insight rule ${rule}`);
          if (stat !== "UniqueContributors") throw new Error(`evaluator: insight stat ${stat}`);
          return uniqueContributors(
            found,
            events.filter((ev) => ev.timestamp >= s && ev.timestamp < e),
          );
        };
        const lookup = (name: string): Value => {
          const sub = subExpressions.get(name);
          if (sub) {
            const v = evalNode(sub, lookup, insight);
            if (Array.isArray(v)) throw new Error(`evaluator: ${id}: ${name} is an array`);
            return v;
          }
          const ref = refs.get(name);
          if (!ref) throw new Error(`evaluator: ${id}: unknown id ${name}`);
          return metricValue(ref, s, e);
        };
        const v = evalNode(expr, lookup, insight);
        if (Array.isArray(v)) throw new Error(`evaluator: ${id}: expression is an array`);
        return v;
      };
    }
    if (!period) throw new Error(`evaluator: ${id} has no period`);
    const periodMs = period * 1000;
    // The last n periods, aligned to the drill's start, ending with the one holding `now`.
    const last = origin + Math.floor((now - origin) / periodMs) * periodMs;
    const values: Value[] = [];
    for (let k = n - 1; k >= 0; k--) {
      const start = last - k * periodMs;
      values.push(valueAt(start, start + periodMs));
    }
    const threshold = Number(p.Threshold);
    const op = String(p.ComparisonOperator);
    const breaches = (v: number) =>
      op === "GreaterThanOrEqualToThreshold"
        ? v >= threshold
        : op === "GreaterThanThreshold"
          ? v > threshold
          : op === "LessThanThreshold"
            ? v < threshold
            : op === "LessThanOrEqualToThreshold"
              ? v <= threshold
              : (() => {
                  throw new Error(`evaluator: comparison ${op}`);
                })();
    const missing = String(p.TreatMissingData ?? "missing");
    const breaching = values.filter((v) =>
      v === undefined ? missing === "breaching" : breaches(v),
    ).length;
    results.push({
      logicalId: id,
      name: String(p.AlarmName),
      composite: false,
      state: breaching >= m ? "ALARM" : "OK",
      values,
      threshold,
      comparison: op,
      period,
      evaluationPeriods: n,
      ...actionsOf(p),
    });
  }

  for (const [id, r] of Object.entries(resources)) {
    if (r.Type !== "AWS::CloudWatch::CompositeAlarm") continue;
    const rule = resolve(r.Properties.AlarmRule);
    const state = (childId: string) => {
      const child = results.find((a) => a.logicalId === childId);
      if (!child) throw new Error(`evaluator: composite ${id}: unknown child ${childId}`);
      return child.state === "ALARM";
    };
    const expr = rule
      .replace(/ALARM\("([^"]+)"\)/g, (_m, child: string) => (state(child) ? "1" : "0"))
      .replace(/\bOR\b/g, "||")
      .replace(/\bAND\b/g, "&&")
      .replace(/\bNOT\b/g, "!");
    if (!/^[01|&!()\s]+$/.test(expr)) throw new Error(`evaluator: composite rule ${rule}`);
    const fired = Boolean(new Function(`return ${expr};`)());
    results.push({
      logicalId: id,
      name: String(r.Properties.AlarmName),
      composite: true,
      state: fired ? "ALARM" : "OK",
      values: [],
      ...actionsOf(r.Properties),
      ...(r.Properties.ActionsSuppressor
        ? {
            suppressor: {
              logicalId: resolve(r.Properties.ActionsSuppressor),
              extensionS: Number(r.Properties.ActionsSuppressorExtensionPeriod ?? 0),
              waitS: Number(r.Properties.ActionsSuppressorWaitPeriod ?? 0),
            },
          }
        : {}),
    });
  }
  return {
    alarms: results,
    fired: results.filter((a) => a.state === "ALARM").map((a) => a.name),
    derived,
  };
}
