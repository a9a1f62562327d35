/**
 * Every Logs Insights query the project ships, wherever it lives, for the grammar checker
 * (`logs-insights-grammar.ts`):
 *
 * - saved queries of the synthesized template (`AWS::Logs::QueryDefinition`);
 * - log widgets of its dashboards (`"type": "log"`, `SOURCE '…' | query`);
 * - the queries the alarm enrichment runs (the catalog's specs, rendered);
 * - documentation code blocks marked as Logs Insights (a fence of `logs-insights`), in README,
 *   docs/ and docs/runbooks/.
 */
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { QUERIES } from "../../operations/alarm-catalog.ts";
import { renderQuery } from "../../operations/queries.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** Fence languages that mark a documentation block as a Logs Insights query. */
export const LOGS_INSIGHTS_FENCES = ["logs-insights", "logsinsights", "cwl"] as const;

export interface ShippedQuery {
  /** Where it ships (resource, widget, spec or file:line). */
  where: string;
  text: string;
}

type Resources = Record<string, { Type: string; Properties: Record<string, unknown> }>;

/** A CloudFormation value with intrinsics: literal strings kept, references as placeholders. */
function flatten(value: unknown): string {
  if (typeof value === "string") return value;
  if (typeof value === "number") return String(value);
  const v = value as Record<string, unknown>;
  if ("Fn::Join" in v) {
    const [sep, parts] = v["Fn::Join"] as [string, unknown[]];
    return parts.map(flatten).join(sep);
  }
  if ("Ref" in v) return String(v.Ref);
  if ("Fn::GetAtt" in v) return (v["Fn::GetAtt"] as string[]).join(".");
  if ("Fn::Sub" in v) return String(v["Fn::Sub"]);
  return JSON.stringify(value);
}

/** Saved queries of a template, by resource logical id. */
export function templateQueries(template: { Resources: Resources }): ShippedQuery[] {
  return Object.entries(template.Resources)
    .filter(([, r]) => r.Type === "AWS::Logs::QueryDefinition")
    .map(([id, r]) => ({
      where: `${id} (${flatten(r.Properties.Name)})`,
      text: flatten(r.Properties.QueryString),
    }));
}

/** Log widgets of a template's dashboards; the `SOURCE '…' |` prefix is not Logs Insights QL. */
export function dashboardQueries(template: { Resources: Resources }): ShippedQuery[] {
  const out: ShippedQuery[] = [];
  for (const [id, r] of Object.entries(template.Resources)) {
    if (r.Type !== "AWS::CloudWatch::Dashboard") continue;
    const body = JSON.parse(flatten(r.Properties.DashboardBody)) as {
      widgets: { type: string; properties?: { title?: string; query?: string } }[];
    };
    for (const w of body.widgets) {
      if (w.type !== "log" || !w.properties?.query) continue;
      const text = w.properties.query.replace(/^\s*(SOURCE\s+'[^']*'\s*\|\s*)+/, "");
      out.push({ where: `${id} widget "${w.properties.title ?? ""}"`, text });
    }
  }
  return out;
}

/** The queries the enrichment function runs (and the console links it writes). */
export function enrichmentQueries(): ShippedQuery[] {
  return Object.entries(QUERIES).map(([key, spec]) => ({
    where: `QUERIES.${key}`,
    text: renderQuery(spec),
  }));
}

/** Markdown files the project ships. */
export function docFiles(): string[] {
  const docs = path.join(ROOT, "docs");
  return [
    path.join(ROOT, "README.md"),
    ...readdirSync(docs)
      .filter((f) => f.endsWith(".md"))
      .map((f) => path.join(docs, f)),
    ...readdirSync(path.join(docs, "runbooks"))
      .filter((f) => f.endsWith(".md"))
      .map((f) => path.join(docs, "runbooks", f)),
  ];
}

/** Fenced code blocks of a markdown text marked as Logs Insights. */
export function markdownQueries(markdown: string, file: string): ShippedQuery[] {
  const out: ShippedQuery[] = [];
  const lines = markdown.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,}|~{3,})\s*([\w-]+)?\s*$/.exec(lines[i] as string);
    if (!open) continue;
    const fence = open[2] as string;
    const lang = (open[3] ?? "").toLowerCase();
    let j = i + 1;
    while (j < lines.length && !(lines[j] as string).trim().startsWith(fence)) j++;
    if ((LOGS_INSIGHTS_FENCES as readonly string[]).includes(lang)) {
      out.push({
        where: `${path.relative(ROOT, file)}:${i + 1}`,
        text: lines.slice(i + 1, j).join("\n"),
      });
    }
    i = j;
  }
  return out;
}

/** Every documentation block marked as Logs Insights. */
export function docQueries(): ShippedQuery[] {
  return docFiles().flatMap((f) => markdownQueries(readFileSync(f, "utf8"), f));
}
