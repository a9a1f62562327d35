/**
 * Alarm enrichment: on an ALARM notification, run that alarm's saved query (from the alarm
 * catalog) over the alarm's window and publish the alarm plus the hosts involved to the
 * enriched topic. Bounded by the engine's {@link Deadline}: when the query fails or runs out of
 * time, the plain alarm still goes out, with the reason. Nothing is lost.
 */

import { type CloudWatchClient, DescribeAlarmsCommand } from "@aws-sdk/client-cloudwatch";
import {
  type CloudWatchLogsClient,
  GetQueryResultsCommand,
  type ResultField,
  StartQueryCommand,
  StopQueryCommand,
} from "@aws-sdk/client-cloudwatch-logs";
import { PublishCommand, type SNSClient } from "@aws-sdk/client-sns";
import type { Deadline } from "../../lib/deadline.ts";
import {
  ALARM_CATALOG,
  type AlarmKind,
  alarmNamesOf,
  type CatalogEntry,
  kindOfAlarmName,
  QUERIES,
  runbookFile,
  severityOf,
} from "../../operations/alarm-catalog.ts";
import {
  HOST_COLUMNS,
  type QuerySpec,
  queryName,
  renderQuery,
  TARGETS_COLUMN,
} from "../../operations/queries.ts";
import type { EnrichmentConfig } from "../config/config.ts";

export type { EnrichmentConfig } from "../config/config.ts";

/** The CloudWatch alarm notification (the SNS message body) as far as it is read here. */
export interface AlarmNotification {
  AlarmName: string;
  AlarmDescription?: string | null;
  NewStateValue: string;
  NewStateReason?: string;
  StateChangeTime: string;
  Trigger?: { Period?: number; EvaluationPeriods?: number };
}

/**
 * One host row of a `hosts` query. `host`, `port`, `address` are the remote the error is
 * attributed to: the jump host when `hop` is `via`, else the target.
 */
export interface HostRow {
  host: string;
  port: string;
  address: string;
  error: string;
  phase: string;
  source: string;
  /** `via` or `target` with a jump host, empty without one. */
  hop: string;
  /** Distinct targets behind the row: 1 unless `hop` is `via` (every target behind the jump host). */
  targets: number;
  sessions: number;
  firstSeen: string;
  lastSeen: string;
}

/** What was published, for tests and the drill. */
export interface Enriched {
  subject: string;
  message: string;
  hosts: HostRow[] | undefined;
  /** Why there are no hosts (query failed, timed out, not an ALARM, unknown alarm). */
  reason?: string;
}

export interface EnrichmentDeps {
  readonly logs: CloudWatchLogsClient;
  readonly sns: SNSClient;
  /** Reads which children of the composite page are in ALARM. @default not read */
  readonly cloudwatch?: CloudWatchClient;
  readonly config: EnrichmentConfig;
}

/** A page-level child alarm in ALARM, as DescribeAlarms reports it. */
export interface ChildAlarm {
  name: string;
  kind: AlarmKind;
  reason: string;
}

/** The page-level alarms of a stage: the composite's children (catalog, not the rule text). */
export function pageChildren(stage: string): string[] {
  return (Object.keys(ALARM_CATALOG) as AlarmKind[])
    .filter((k) => k !== "Page")
    .flatMap((k) => alarmNamesOf(stage, k))
    .filter((name) => {
      const found = kindOfAlarmName(stage, name);
      return found && severityOf(found.kind, found.subject) === "page";
    });
}

async function childrenInAlarm(deps: EnrichmentDeps, deadline: Deadline): Promise<ChildAlarm[]> {
  if (!deps.cloudwatch) return [];
  const controller = new AbortController();
  const expired = () => {
    controller.abort();
    return new QueryTimeout("DescribeAlarms did not answer in time");
  };
  const work = deps.cloudwatch.send(
    new DescribeAlarmsCommand({ AlarmNames: pageChildren(deps.config.stage) }),
    { abortSignal: controller.signal },
  );
  work.catch(() => {});
  const res = await deadline.bound(deadline.remaining(), work, expired, expired);
  return (res.MetricAlarms ?? [])
    .filter((a) => a.StateValue === "ALARM" && a.AlarmName)
    .flatMap((a) => {
      const found = kindOfAlarmName(deps.config.stage, a.AlarmName as string);
      return found
        ? [{ name: a.AlarmName as string, kind: found.kind, reason: a.StateReason ?? "" }]
        : [];
    });
}

class QueryTimeout extends Error {
  override name = "QueryTimeout";
}

/** Window the alarm evaluated: its periods before the state change, plus a minute of lag. */
export function alarmWindow(n: AlarmNotification): { startMs: number; endMs: number } {
  const end = Date.parse(n.StateChangeTime);
  const periodS = n.Trigger?.Period ?? 300;
  const periods = n.Trigger?.EvaluationPeriods ?? 3;
  return { startMs: end - periodS * periods * 1000 - 60_000, endMs: end + 60_000 };
}

function rowsToHosts(rows: ResultField[][]): HostRow[] {
  return rows.map((row) => {
    const get = (f: string) => row.find((c) => c.field === f)?.value ?? "";
    const [host, port, address, error, phase, source, hop] = HOST_COLUMNS.map(get) as [
      string,
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    return {
      host,
      port,
      address,
      error,
      phase,
      source,
      hop,
      targets: Number(get(TARGETS_COLUMN)),
      sessions: Number(get("sessions")),
      firstSeen: get("firstSeen"),
      lastSeen: get("lastSeen"),
    };
  });
}

/** Runs a query inside the deadline; rejects with QueryTimeout when the deadline ends first. */
async function runQuery(
  deps: EnrichmentDeps,
  deadline: Deadline,
  spec: QuerySpec,
  window: { startMs: number; endMs: number },
): Promise<ResultField[][]> {
  const controller = new AbortController();
  const expired = () => {
    controller.abort();
    return new QueryTimeout(`query did not complete within ${deadline.budgetMs} ms`);
  };
  const call = <T>(work: Promise<T>) => {
    // When the deadline has already passed, bound() rejects without reading `work`, whose
    // rejection (the abort) must still be handled.
    work.catch(() => {});
    return deadline.bound(deadline.remaining(), work, expired, expired);
  };
  const started = await call(
    deps.logs.send(
      new StartQueryCommand({
        logGroupNames: [
          ...(spec.logGroups === "workflows"
            ? deps.config.workflowLogGroups
            : deps.config.functionLogGroups),
        ],
        queryString: renderQuery(spec),
        startTime: Math.floor(window.startMs / 1000),
        endTime: Math.ceil(window.endMs / 1000),
        limit: deps.config.maxHosts ?? 20,
      }),
      { abortSignal: controller.signal },
    ),
  );
  const queryId = started.queryId;
  if (!queryId) throw new Error("StartQuery returned no queryId");
  try {
    for (;;) {
      const res = await call(
        deps.logs.send(new GetQueryResultsCommand({ queryId }), {
          abortSignal: controller.signal,
        }),
      );
      if (res.status === "Complete") return res.results ?? [];
      if (res.status !== "Running" && res.status !== "Scheduled") {
        throw new Error(`query ended ${res.status}`);
      }
      const waitMs = Math.min(deps.config.pollIntervalMs ?? 1000, deadline.remaining());
      if (waitMs <= 0) throw expired();
      // A wait that only the deadline ends: no timer outlives it.
      await deadline.wait(waitMs, new Promise(() => {}));
    }
  } catch (err) {
    // Best effort, not awaited past the invocation: a query nobody reads costs scanning.
    deps.logs.send(new StopQueryCommand({ queryId })).catch(() => {});
    throw err;
  }
}

function hostTable(hosts: HostRow[]): string[] {
  if (hosts.length === 0) return ["  (no matching audit lines in the window)"];
  return hosts.map((h) => {
    // A jump host's failure names the jump host and says so; the target is only context.
    const hop =
      h.hop === "via"
        ? ` jump host (hop via, ${h.targets} target(s) behind it)`
        : h.hop === "target"
          ? " target (hop target, behind a jump host)"
          : "";
    return `  ${h.host}:${h.port} (${h.address || "unresolved"})${hop} ${h.error} in ${h.phase}, ${h.sessions} session(s), first seen ${h.firstSeen}, last seen ${h.lastSeen} [${h.source}]`;
  });
}

/** Builds the enriched message of one notification (exported for the drill and tests). */
export async function enrich(
  deps: EnrichmentDeps,
  n: AlarmNotification,
  deadline: Deadline,
): Promise<Enriched> {
  const c = deps.config;
  const found = kindOfAlarmName(c.stage, n.AlarmName);
  const kind: AlarmKind | undefined = found?.kind;
  const entry: CatalogEntry | undefined = kind ? ALARM_CATALOG[kind] : undefined;
  const severity = kind ? severityOf(kind, found?.subject) : "unknown";
  const subject = `${n.NewStateValue}: ${n.AlarmName} (${severity})`.slice(0, 100);
  const head = [
    `${n.NewStateValue}: ${n.AlarmName} - severity ${severity}`,
    entry ? `What: ${entry.meaning}` : (n.AlarmDescription ?? ""),
    `Since: ${n.StateChangeTime}${n.NewStateReason ? ` - ${n.NewStateReason}` : ""}`,
  ];
  const links = [
    kind ? `Runbook: ${c.runbookBaseUrl}/${runbookFile(kind)}` : "",
    `Dashboard: ${c.dashboardUrl}`,
  ].filter(Boolean);
  let hosts: HostRow[] | undefined;
  let reason: string | undefined;
  let body: string[] = [];
  if (!entry) reason = "not an alarm of this stage's catalog";
  else if (n.NewStateValue !== "ALARM") reason = `state ${n.NewStateValue}: no query run`;
  else {
    let queryKey = entry.query;
    if (kind === "Page") {
      // Name the children in ALARM and, when they agree on a query, run theirs (e.g. the
      // hang hosts) instead of every error.
      try {
        const children = await childrenInAlarm(deps, deadline);
        if (children.length > 0) {
          head.push(
            "Page-level alarms in ALARM:",
            ...children.map((ch) => `  ${ch.name}: ${ch.reason}`),
          );
          for (const k of new Set(children.map((ch) => ch.kind))) {
            links.push(`Runbook (${k}): ${c.runbookBaseUrl}/${runbookFile(k)}`);
          }
          const queries = new Set(children.map((ch) => ALARM_CATALOG[ch.kind].query));
          if (queries.size === 1) queryKey = [...queries][0] as typeof queryKey;
        }
      } catch (err) {
        head.push(
          `Page-level alarms: not available (${(err as Error).name}: ${(err as Error).message})`,
        );
      }
    }
    const spec: QuerySpec = QUERIES[queryKey];
    const window = alarmWindow(n);
    const title = `query ${queryName(c.stage, spec)}, ${new Date(window.startMs).toISOString()} to ${new Date(window.endMs).toISOString()}`;
    try {
      const rows = await runQuery(deps, deadline, spec, window);
      if (spec.shape === "hosts") {
        hosts = rowsToHosts(rows);
        body = [`Top hosts (${title}):`, ...hostTable(hosts)];
      } else {
        body = [
          `Matching lines (${title}):`,
          ...rows.map((r) => `  ${r.map((f) => `${f.field}=${f.value}`).join(" ")}`),
        ];
      }
    } catch (err) {
      const e = err as Error;
      reason = `${e.name}: ${e.message}`;
    }
  }
  if (reason) body = [`Hosts: not available (${reason}). Run the saved query by hand.`];
  const message = [...head, "", ...body, "", ...links].join("\n");
  return { subject, message, hosts, ...(reason ? { reason } : {}) };
}

/** Publishes an enriched (or plain, with the reason) message for one notification. */
export async function enrichAndPublish(
  deps: EnrichmentDeps,
  n: AlarmNotification,
  deadline: Deadline,
): Promise<Enriched> {
  const enriched = await enrich(deps, n, deadline);
  await deps.sns.send(
    new PublishCommand({
      TopicArn: deps.config.enrichedTopicArn,
      Subject: enriched.subject.replace(/[^\x20-\x7e]/g, " "),
      Message: enriched.message,
    }),
  );
  return enriched;
}
