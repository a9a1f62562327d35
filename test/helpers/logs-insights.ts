/**
 * A small Logs Insights for the catalog's queries: evaluates a {@link QuerySpec} (the structured
 * form every saved query is rendered from) over captured log lines, returning rows the way
 * `GetQueryResults` does (`[{ field, value }]`). It implements exactly what the rendered text
 * says (JSON field discovery, `=`/`in`/`ispresent`/`<`/`>`, the `not ispresent(type) and
 * @message like /re/` branch, `stats count(*), min/max(@timestamp) by …`, sort, limit); it
 * does not parse query text: the fake Logs endpoint runs the text itself
 * (`logs-insights-run.ts`), and a test holds the two readings to the same rows.
 */
import { AUDIT_TYPE, AUDIT_FIELDS as F, readField } from "../../operations/audit-fields.ts";
import {
  type Condition,
  HOST_COLUMNS,
  HOST_ROWS_LIMIT,
  INVOCATION_ROWS_LIMIT,
  type QuerySpec,
  TARGETS_COLUMN,
} from "../../operations/queries.ts";

/** One captured log event. */
export interface LogEvent {
  logGroup: string;
  logStream?: string;
  timestamp: number;
  message: string;
}

export type ResultRow = { field: string; value: string }[];

/** Logs Insights prints timestamps as `2026-11-30 00:12:01.123`. */
export const insightsTime = (ms: number) =>
  new Date(ms).toISOString().replace("T", " ").slice(0, 23);

function parse(message: string): Record<string, unknown> | undefined {
  try {
    const value = JSON.parse(message) as unknown;
    return value && typeof value === "object" ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

const present = (v: unknown) => v !== undefined && v !== null;

function holds(line: Record<string, unknown>, c: Condition): boolean {
  const v = readField(line, c.field);
  if ("in" in c) return present(v) && c.in.includes(String(v));
  if ("notIn" in c) return present(v) && !c.notIn.includes(String(v));
  if ("present" in c) return present(v);
  if ("lt" in c) return typeof v === "number" && v < c.lt;
  return typeof v === "number" && v > c.gt;
}

/** Whether an event passes the spec's filter (audit branch or the other-lines branch). */
export function matches(spec: QuerySpec, event: LogEvent): boolean {
  const line = parse(event.message);
  const type = line ? readField(line, F.type) : undefined;
  if (line && type === AUDIT_TYPE && spec.where.every((c) => holds(line, c))) return true;
  if (spec.otherLines && !present(type)) return new RegExp(spec.otherLines).test(event.message);
  return false;
}

const text = (v: unknown) => (present(v) ? String(v) : "");

/** Evaluates a spec over events (already restricted to the query's log groups and window). */
export function evaluate(
  spec: QuerySpec,
  events: readonly LogEvent[],
  limit?: number,
): ResultRow[] {
  const hits = events.filter((e) => matches(spec, e));
  if (spec.shape === "hosts") {
    const groups = new Map<
      string,
      { cols: string[]; n: number; targets: Set<string>; first: number; last: number }
    >();
    for (const e of hits) {
      const line = parse(e.message) ?? {};
      const cols = HOST_COLUMNS.map((f) => text(readField(line, f)));
      const key = JSON.stringify(cols);
      const g = groups.get(key) ?? {
        cols,
        n: 0,
        targets: new Set<string>(),
        first: e.timestamp,
        last: e.timestamp,
      };
      g.n++;
      const target = readField(line, F.host);
      if (present(target)) g.targets.add(String(target));
      g.first = Math.min(g.first, e.timestamp);
      g.last = Math.max(g.last, e.timestamp);
      groups.set(key, g);
    }
    return [...groups.values()]
      .sort((a, b) => b.n - a.n)
      .slice(0, Math.min(limit ?? HOST_ROWS_LIMIT, HOST_ROWS_LIMIT))
      .map((g) => [
        ...HOST_COLUMNS.map((field, i) => ({ field, value: g.cols[i] as string })),
        { field: "sessions", value: String(g.n) },
        { field: TARGETS_COLUMN, value: String(g.targets.size) },
        { field: "firstSeen", value: insightsTime(g.first) },
        { field: "lastSeen", value: insightsTime(g.last) },
      ]);
  }
  if (spec.shape === "invocations") {
    return [...hits]
      .sort((a, b) => b.timestamp - a.timestamp)
      .slice(0, Math.min(limit ?? INVOCATION_ROWS_LIMIT, INVOCATION_ROWS_LIMIT))
      .map((e) => {
        const line = parse(e.message) ?? {};
        const row: ResultRow = [{ field: "@timestamp", value: insightsTime(e.timestamp) }];
        if (e.logStream) row.push({ field: "@logStream", value: e.logStream });
        for (const f of [
          F.requestId,
          F.source,
          F.host,
          F.port,
          F.errorName,
          F.errorHop,
          F.errorHost,
          F.phase,
          F.slackMs,
          F.leakedSockets,
        ]) {
          const v = readField(line, f);
          if (present(v)) row.push({ field: f, value: String(v) });
        }
        row.push({ field: "@message", value: e.message });
        return row;
      });
  }
  throw new Error(`logs-insights: shape ${spec.shape} is not evaluated locally`);
}
