/**
 * Runs a Logs Insights query TEXT over captured log events: parsed by the grammar checker
 * (`logs-insights-grammar.ts`), then interpreted command by command, so the drill's fake Logs
 * endpoint answers what the text says rather than looking the text up. Independent of
 * `logs-insights.ts` (which evaluates the catalog's structured specs): a test holds the two to
 * the same rows for every catalog query.
 *
 * Semantics, as the service documents them: JSON messages have their fields discovered
 * (`error.name` reads nested keys), `@timestamp`, `@message`, `@logStream`, `@log` always
 * exist; a comparison or `like` on a missing field is false, `not` negates it; `in` compares
 * the value's text; `stats` groups by its `by` values (missing = empty), `count(*)` counts
 * rows, `count(f)` rows where f exists, `count_distinct`, `min`, `max`, `sum`, `avg`;
 * `bin(d)` floors `@timestamp`; timestamps print as `2026-11-30 00:12:01.123`; a row lists
 * only the fields that have a value. `parse`, `dedup`, `unmask`, `pattern` and the string
 * functions are not interpreted (the project's queries use none): such a query is refused.
 */
import { readField } from "../../operations/audit-fields.ts";
import { insightsTime, type LogEvent, type ResultRow } from "./logs-insights.ts";
import { type Bool, type Command, type Expr, parseQuery } from "./logs-insights-grammar.ts";

type Value = string | number | boolean | null | undefined;
type Row = Map<string, Value>;
/** A row before `stats`: the event it came from and the fields computed so far. */
interface Source {
  event: LogEvent;
  json: unknown;
  computed: Row;
}

const DURATION_MS: Record<string, number> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

function parseJson(message: string): unknown {
  try {
    return JSON.parse(message) as unknown;
  } catch {
    return undefined;
  }
}

function fieldOf(s: Source, name: string): Value {
  if (s.computed.has(name)) return s.computed.get(name);
  switch (name) {
    case "@timestamp":
      return s.event.timestamp;
    case "@message":
      return s.event.message;
    case "@logStream":
      return s.event.logStream;
    case "@log":
      return s.event.logGroup;
  }
  const v = readField(s.json, name);
  if (v === null || v === undefined) return undefined;
  return typeof v === "object" ? JSON.stringify(v) : (v as Value);
}

const present = (v: Value) => v !== undefined && v !== null;

function unsupported(what: string): never {
  throw new Error(`logs-insights-run: ${what} is not interpreted here`);
}

function value(e: Expr, get: (name: string) => Value): Value {
  switch (e.t) {
    case "num":
      return e.v;
    case "str":
      return e.v;
    case "field":
      return get(e.name);
    case "neg": {
      const v = value(e.e, get);
      return typeof v === "number" ? -v : undefined;
    }
    case "bin": {
      const l = value(e.l, get);
      const r = value(e.r, get);
      if (typeof l !== "number" || typeof r !== "number") return undefined;
      switch (e.op) {
        case "+":
          return l + r;
        case "-":
          return l - r;
        case "*":
          return l * r;
        case "/":
          return r === 0 ? undefined : l / r;
        case "%":
          return r === 0 ? undefined : l % r;
        case "^":
          return l ** r;
      }
      return undefined;
    }
    case "call":
      if (e.f === "ispresent") return present(value(e.args[0] as Expr, get));
      if (e.f === "bin") {
        const d = e.args[0];
        const m = d?.t === "duration" ? /^(\d+)(ms|s|m|h|d|w)$/.exec(d.v) : null;
        if (!m) return unsupported(`bin(${d?.t === "duration" ? d.v : "?"})`);
        const step = Number(m[1]) * (DURATION_MS[m[2] as string] as number);
        const t = get("@timestamp");
        return typeof t === "number" ? Math.floor(t / step) * step : undefined;
      }
      return unsupported(`function ${e.f}()`);
    case "duration":
      return unsupported("a bare duration");
  }
}

function compare(op: string, l: Value, r: Value): boolean {
  if (!present(l) || !present(r)) return false;
  const ln = typeof l === "number" ? l : Number(l);
  const rn = typeof r === "number" ? r : Number(r);
  const numeric =
    (typeof l === "number" || typeof r === "number") && !Number.isNaN(ln) && !Number.isNaN(rn);
  const a: string | number = numeric ? ln : String(l);
  const b: string | number = numeric ? rn : String(r);
  switch (op) {
    case "=":
      return a === b;
    case "!=":
      return a !== b;
    case "<":
      return a < b;
    case "<=":
      return a <= b;
    case ">":
      return a > b;
    case ">=":
      return a >= b;
  }
  return false;
}

function holds(b: Bool, get: (name: string) => Value): boolean {
  switch (b.t) {
    case "and":
      return holds(b.l, get) && holds(b.r, get);
    case "or":
      return holds(b.l, get) || holds(b.r, get);
    case "not":
      return !holds(b.e, get);
    case "cmp":
      return compare(b.op, value(b.l, get), value(b.r, get));
    case "like": {
      const v = value(b.e, get);
      if (!present(v)) return false;
      if ("text" in b.pattern) return String(v).includes(b.pattern.text);
      const body = b.pattern.regex.replace(/^\(\?i\)/, "");
      const flags = body === b.pattern.regex ? "" : "i";
      return new RegExp(body, flags).test(String(v));
    }
    case "in": {
      const v = value(b.e, get);
      const found = present(v) && b.list.some((x) => String(x) === String(v));
      return b.negated ? !found : found;
    }
    case "call":
      return value(b.call, get) === true;
  }
}

const nameOf = (item: { e: Expr; as?: string }) =>
  item.as ?? (item.e.t === "field" ? item.e.name : exprName(item.e));

function exprName(e: Expr): string {
  if (e.t === "call") {
    const args = e.star
      ? "*"
      : e.args.map((a) => (a.t === "duration" ? a.v : exprName(a))).join(",");
    return `${e.f}(${args})`;
  }
  if (e.t === "field") return e.name;
  return unsupported("an unnamed computed field");
}

function aggregate(e: Expr, rows: Source[], get: (s: Source, n: string) => Value): Value {
  if (e.t !== "call") return unsupported("arithmetic over aggregates");
  const arg = e.args[0];
  const values = () =>
    rows.map((s) => (arg ? value(arg, (n) => get(s, n)) : undefined)).filter(present);
  switch (e.f) {
    case "count":
      return e.star || !arg ? rows.length : values().length;
    case "count_distinct":
      return new Set(values().map(String)).size;
    case "min":
    case "max": {
      const vs = values();
      if (vs.length === 0) return undefined;
      const numbers = vs.every((v) => typeof v === "number");
      const sorted = [...vs].sort((a, b) =>
        numbers ? (a as number) - (b as number) : String(a).localeCompare(String(b)),
      );
      return e.f === "min" ? sorted[0] : sorted.at(-1);
    }
    case "sum":
    case "avg": {
      const vs = values().map(Number);
      if (vs.length === 0) return undefined;
      const sum = vs.reduce((x, y) => x + y, 0);
      return e.f === "sum" ? sum : sum / vs.length;
    }
  }
  return unsupported(`aggregate ${e.f}()`);
}

/** Runs query text over events (already restricted to its log groups and window). */
export function runQuery(text: string, events: readonly LogEvent[], limit?: number): ResultRow[] {
  const commands: Command[] = parseQuery(text);
  let sources: Source[] = events.map((event) => ({
    event,
    json: parseJson(event.message),
    computed: new Map(),
  }));
  /** After stats: plain rows. */
  let table: Row[] | undefined;
  /** Output fields in order (`fields`/`display`/`stats`); undefined = every field. */
  let columns: string[] | undefined;
  /** Fields holding a time (printed as Logs Insights prints @timestamp). */
  const times = new Set(["@timestamp"]);
  let max = limit ?? 10_000;
  const getSource = (s: Source, n: string) => fieldOf(s, n);
  for (const c of commands) {
    switch (c.cmd) {
      case "fields":
        for (const item of c.items) {
          const name = nameOf(item);
          if (table) {
            for (const r of table)
              r.set(
                name,
                value(item.e, (n) => r.get(n)),
              );
          } else if (item.e.t !== "field") {
            for (const s of sources)
              s.computed.set(
                name,
                value(item.e, (n) => getSource(s, n)),
              );
          }
        }
        columns = c.items.map(nameOf);
        break;
      case "display":
        columns = c.fields;
        break;
      case "filter":
        if (table) {
          const t = table;
          table = t.filter((r) => holds(c.where, (n) => r.get(n)));
        } else sources = sources.filter((s) => holds(c.where, (n) => getSource(s, n)));
        break;
      case "stats": {
        if (table) return unsupported("stats after stats");
        const groups = new Map<string, { keys: Value[]; rows: Source[] }>();
        for (const s of sources) {
          const keys = c.by.map((b) => value(b.e, (n) => getSource(s, n)));
          const k = JSON.stringify(keys.map((v) => (present(v) ? v : null)));
          const g = groups.get(k) ?? { keys, rows: [] };
          g.rows.push(s);
          groups.set(k, g);
        }
        if (c.by.length === 0 && groups.size === 0) groups.set("[]", { keys: [], rows: [] });
        table = [...groups.values()].map((g) => {
          const row: Row = new Map();
          c.by.forEach((b, i) => {
            row.set(nameOf(b), g.keys[i]);
          });
          for (const a of c.aggs) row.set(nameOf(a), aggregate(a.e, g.rows, getSource));
          return row;
        });
        columns = [...c.by.map(nameOf), ...c.aggs.map(nameOf)];
        for (const item of [...c.by, ...c.aggs]) {
          const e = item.e;
          const ofTime =
            e.t === "call" &&
            (e.f === "bin" ||
              (["min", "max", "earliest", "latest"].includes(e.f) &&
                e.args[0]?.t === "field" &&
                e.args[0].name === "@timestamp"));
          if (ofTime) times.add(nameOf(item));
        }
        break;
      }
      case "sort": {
        const get = (x: Source | Row, n: string) =>
          x instanceof Map ? x.get(n) : getSource(x as Source, n);
        const cmp = (a: Source | Row, b: Source | Row) => {
          for (const k of c.keys) {
            const va = get(a, k.field);
            const vb = get(b, k.field);
            if (va === vb) continue;
            if (!present(va)) return 1;
            if (!present(vb)) return -1;
            const d =
              typeof va === "number" && typeof vb === "number"
                ? va - vb
                : String(va).localeCompare(String(vb));
            if (d !== 0) return k.desc ? -d : d;
          }
          return 0;
        };
        if (table) table = [...table].sort(cmp);
        else sources = [...sources].sort(cmp);
        break;
      }
      case "limit":
        max = Math.min(max, c.n);
        break;
      default:
        return unsupported(`the ${c.cmd} command`);
    }
  }
  const rows: Row[] =
    table ??
    sources.map((s) => {
      const row: Row = new Map();
      for (const name of columns ?? ["@timestamp", "@message"]) row.set(name, fieldOf(s, name));
      return row;
    });
  return rows.slice(0, max).map((r) =>
    (columns ?? [...r.keys()])
      .filter((name) => present(r.get(name)))
      .map((name) => {
        const v = r.get(name);
        return {
          field: name,
          value: times.has(name) && typeof v === "number" ? insightsTime(v) : String(v),
        };
      }),
  );
}
