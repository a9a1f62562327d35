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
  alarmName,
  alarmNamesOf,
  type CatalogEntry,
  kindOfAlarmName,
  QUERIES,
  runbookFile,
  severityOf,
} from "../../operations/alarm-catalog.ts";
import { AUDIT_TYPE } from "../../operations/audit-fields.ts";
import {
  HOST_COLUMNS,
  HOST_ROWS_LIMIT,
  INVOCATION_ROWS_LIMIT,
  type QuerySpec,
  queryName,
  renderQuery,
  TARGETS_COLUMN,
} from "../../operations/queries.ts";
import type { EnrichmentConfig } from "../config/config.ts";
import { CALL_CAPS, callSignal, send } from "../runtime/aws-clients.ts";
import {
  commandHash,
  consoleBaseOf,
  escapeText,
  fitMessage,
  logsInsightsUrl,
  type Section,
} from "./message.ts";

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
  /** The follow-up (with hosts), or the only message when no query runs. */
  subject: string;
  message: string;
  /** The plain page published first, before any query, when a follow-up comes. */
  plain?: { subject: string; message: string };
  /** Every host row the query returned (the message lists the top ones). */
  hosts: HostRow[] | undefined;
  /** Why there are no hosts (query failed, timed out, not an ALARM, unknown alarm). */
  reason?: string;
  /** The message lost lines to the size cap (it says so in a `TRUNCATED:` line). */
  truncated?: boolean;
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
  const work = send(
    deps.cloudwatch,
    new DescribeAlarmsCommand({ AlarmNames: pageChildren(deps.config.stage) }),
    controller.signal,
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
  limit: number,
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
    send(
      deps.logs,
      new StartQueryCommand({
        logGroupNames: [
          ...(spec.logGroups === "workflows"
            ? deps.config.workflowLogGroups
            : deps.config.functionLogGroups),
        ],
        queryString: renderQuery(spec),
        startTime: Math.floor(window.startMs / 1000),
        endTime: Math.ceil(window.endMs / 1000),
        limit,
      }),
      controller.signal,
    ),
  );
  const queryId = started.queryId;
  if (!queryId) throw new Error("StartQuery returned no queryId");
  try {
    for (;;) {
      const res = await call(
        send(deps.logs, new GetQueryResultsCommand({ queryId }), controller.signal),
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
    // Best effort, not awaited: a query nobody reads costs scanning. Capped like any call.
    send(
      deps.logs,
      new StopQueryCommand({ queryId }),
      callSignal(undefined, CALL_CAPS.publishMs),
    ).catch(() => {});
    throw err;
  }
}

/** One host row, every value escaped: no host name or error text can start a line. */
function hostLine(h: HostRow): string {
  const e = (v: unknown) => escapeText(v);
  // A jump host's failure names the jump host and says so; the target is only context.
  const hop =
    h.hop === "via"
      ? ` jump host (hop via, ${h.targets} target(s) behind it)`
      : h.hop === "target"
        ? " target (hop target, behind a jump host)"
        : h.hop
          ? ` (hop ${e(h.hop)})`
          : "";
  return `  ${e(h.host)}:${e(h.port)} (${h.address ? e(h.address) : "unresolved"})${hop} ${e(h.error)} in ${e(h.phase)}, ${h.sessions} session(s), first seen ${e(h.firstSeen)}, last seen ${e(h.lastSeen)} [${e(h.source)}]`;
}

/** Totals and groups of every returned host row: distinct hosts (host:port) and sessions. */
function hostSections(hosts: HostRow[], show: number, title: string): Section[] {
  const key = (h: HostRow) => `${h.host}\u0000${h.port}`;
  const all = new Set(hosts.map(key));
  const sessions = hosts.reduce((n, h) => n + (Number.isFinite(h.sessions) ? h.sessions : 0), 0);
  const atLeast = hosts.length >= HOST_ROWS_LIMIT ? "at least " : "";
  const groups = new Map<string, { label: string; hosts: Set<string>; sessions: number }>();
  for (const h of hosts) {
    const label = `${escapeText(h.error)} in ${escapeText(h.phase)}${h.hop ? ` (hop ${escapeText(h.hop)})` : ""}`;
    const g = groups.get(label) ?? { label, hosts: new Set<string>(), sessions: 0 };
    g.hosts.add(key(h));
    g.sessions += Number.isFinite(h.sessions) ? h.sessions : 0;
    groups.set(label, g);
  }
  const byCount = [...groups.values()].sort(
    (a, b) => b.hosts.size - a.hosts.size || b.sessions - a.sessions,
  );
  const top = hosts.slice(0, show);
  const shownHosts = new Set(top.map(key)).size;
  if (hosts.length === 0) {
    return [
      {
        what: "lines",
        lines: [`Hosts: none (${title}).`, "  (no matching audit lines in the window)"],
      },
    ];
  }
  return [
    {
      what: "summary lines",
      lines: [
        `Hosts: ${atLeast}${all.size} host(s), ${atLeast}${sessions} session(s) (${title}).`,
        "By error, phase and hop:",
      ],
    },
    {
      what: "groups",
      lines: byCount.map((g) => `  ${g.label}: ${g.hosts.size} host(s), ${g.sessions} session(s)`),
    },
    {
      what: "host rows",
      lines: [
        `Top hosts by sessions: ${shownHosts} of ${atLeast}${all.size} hosts:`,
        ...top.map(hostLine),
      ],
    },
  ];
}

/** Fields of an invocation row, escaped; an audit line's command only as its hash. */
function invocationLine(row: ResultField[]): string {
  const parts: string[] = [];
  let raw: string | undefined;
  for (const f of row) {
    if (f.field === "@message") raw = f.value ?? "";
    else if (f.field && f.field !== "@ptr") {
      parts.push(`${escapeText(f.field, 60)}=${escapeText(f.value)}`);
    }
  }
  if (raw !== undefined) {
    let line: { type?: unknown; command?: unknown; commandSha256?: unknown } | undefined;
    try {
      const parsed: unknown = JSON.parse(raw);
      if (parsed && typeof parsed === "object") line = parsed as typeof line;
    } catch {
      line = undefined;
    }
    if (line?.type === AUDIT_TYPE) {
      // The audit line's fields are listed above; its command shows as a hash only.
      if (typeof line.command === "string") parts.push(`command=${commandHash(line.command)}`);
      else if (typeof line.commandSha256 === "string") {
        parts.push(`command=sha256:${escapeText(line.commandSha256, 16)}`);
      }
    } else {
      // Lambda's own line (timeout, runtime error): escaped and cut.
      parts.push(`message=${escapeText(raw)}`);
    }
  }
  return `  ${parts.join(" ")}`;
}

/** Builds the enriched message of one notification (exported for the drill and tests). */
export async function enrich(
  deps: EnrichmentDeps,
  n: AlarmNotification,
  deadline: Deadline,
): Promise<Enriched> {
  const c = deps.config;
  const { subject, head, links, kind, entry } = plainParts(c, n);
  let hosts: HostRow[] | undefined;
  let reason: string | undefined;
  let sections: Section[] = [];
  const tail: string[] = [];
  if (!entry || !kind) reason = "not an alarm of this stage's catalog";
  else if (n.NewStateValue !== "ALARM")
    reason = `state ${escapeText(n.NewStateValue)}: no query run`;
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
            ...children.map((ch) => `  ${escapeText(ch.name)}: ${escapeText(ch.reason, 1000)}`),
          );
          for (const k of new Set(children.map((ch) => ch.kind))) {
            links.push(`Runbook (${k}): ${c.runbookBaseUrl}/${runbookFile(k)}`);
          }
          const queries = new Set(children.map((ch) => ALARM_CATALOG[ch.kind].query));
          if (queries.size === 1) queryKey = [...queries][0] as typeof queryKey;
        }
      } catch (err) {
        head.push(
          `Page-level alarms: not available (${escapeText((err as Error).name)}: ${escapeText((err as Error).message)})`,
        );
      }
    }
    const spec: QuerySpec = QUERIES[queryKey];
    const window = alarmWindow(n);
    const groups = spec.logGroups === "workflows" ? c.workflowLogGroups : c.functionLogGroups;
    tail.push(
      `Full list (Logs Insights): ${logsInsightsUrl(consoleBaseOf(c.dashboardUrl), renderQuery(spec), groups, window)}`,
    );
    const title = `query ${queryName(c.stage, spec)}, ${new Date(window.startMs).toISOString()} to ${new Date(window.endMs).toISOString()}`;
    const show = c.maxHosts ?? 20;
    try {
      if (spec.shape === "hosts") {
        hosts = rowsToHosts(await runQuery(deps, deadline, spec, window, HOST_ROWS_LIMIT));
        sections = hostSections(hosts, show, title);
      } else {
        const rows = await runQuery(deps, deadline, spec, window, INVOCATION_ROWS_LIMIT);
        const atLeast = rows.length >= INVOCATION_ROWS_LIMIT ? "at least " : "";
        const top = rows.slice(0, show);
        sections = [
          {
            what: "lines",
            lines: [
              `Matching lines: ${top.length} of ${atLeast}${rows.length} (${title}):`,
              ...top.map(invocationLine),
            ],
          },
        ];
      }
    } catch (err) {
      const e = err as Error;
      reason = `${escapeText(e.name)}: ${escapeText(e.message)}`;
    }
  }
  if (reason) {
    sections = [
      { what: "lines", lines: [`Hosts: not available (${reason}). Run the saved query by hand.`] },
    ];
  }
  const fitted = fitMessage([...head, ""], sections, ["", ...tail, ...links]);
  return {
    subject,
    message: fitted.message,
    hosts,
    ...(reason ? { reason } : {}),
    ...(fitted.truncated ? { truncated: true } : {}),
  };
}

/** Subject, header and links of a notification: what the plain page carries, before any query. */
function plainParts(c: EnrichmentConfig, n: AlarmNotification) {
  const found = kindOfAlarmName(c.stage, n.AlarmName);
  const kind: AlarmKind | undefined = found?.kind;
  const entry: CatalogEntry | undefined = kind ? ALARM_CATALOG[kind] : undefined;
  const severity = kind ? severityOf(kind, found?.subject) : "unknown";
  const name = escapeText(n.AlarmName, 255);
  const state = escapeText(n.NewStateValue, 40);
  const subject = `${state}: ${name} (${severity})`.slice(0, 100);
  const head = [
    `${state}: ${name} - severity ${severity}`,
    entry ? `What: ${entry.meaning}` : escapeText(n.AlarmDescription ?? "", 2000),
    `Since: ${escapeText(n.StateChangeTime, 64)}${n.NewStateReason ? ` - ${escapeText(n.NewStateReason, 1000)}` : ""}`,
  ];
  const links = [
    kind ? `Runbook: ${c.runbookBaseUrl}/${runbookFile(kind)}` : "",
    `Dashboard: ${c.dashboardUrl}`,
  ].filter(Boolean);
  return { subject, head, links, kind, entry };
}

/**
 * The plain page, published before any query runs: the alarm, what it means, the runbook and
 * the dashboard. `undefined` when no query will run (the one message is the plain one).
 */
export function plainPage(
  c: EnrichmentConfig,
  n: AlarmNotification,
): { subject: string; message: string } | undefined {
  const { subject, head, links, entry } = plainParts(c, n);
  if (!entry || n.NewStateValue !== "ALARM") return undefined;
  const message = fitMessage(
    [...head, "", "Hosts: follow in a second notification (the saved query is running)."],
    [],
    ["", ...links],
  ).message;
  return { subject, message };
}

/**
 * Publishes one notification: the plain page first (before any query, so a slow or failing
 * query never delays it), then the enrichment (hosts, totals, groups) as a follow-up. When no
 * query runs (OK, unknown alarm) the one message is the plain one.
 * Each publish gets its own cap, at most `publishWithinMs()` read when it starts (what the
 * function's reserve leaves it).
 */
export async function enrichAndPublish(
  deps: EnrichmentDeps,
  n: AlarmNotification,
  deadline: Deadline,
  publishWithinMs: () => number = () => CALL_CAPS.publishMs,
): Promise<Enriched> {
  const plain = plainPage(deps.config, n);
  const attributes = messageAttributes(deps.config, n);
  if (plain) {
    await publish(deps, plain.subject, plain.message, publishWithinMs, {
      ...attributes,
      part: "plain",
    });
  }
  const enriched = await enrich(deps, n, deadline);
  const subject = plain ? `${enriched.subject} - hosts`.slice(0, 100) : enriched.subject;
  await publish(deps, subject, enriched.message, publishWithinMs, {
    ...attributes,
    part: plain ? "hosts" : "only",
  });
  return { ...enriched, subject, ...(plain ? { plain } : {}) };
}

/**
 * SNS message attributes of a notification, for subscription filter policies (docs/alarms.md,
 * "Routes"): `severity` (`page`, `ticket`, `fleet`, `unknown`), `stage`, `alarm` (its name),
 * `kind` (its catalog kind), `state` (`ALARM`, `OK`, …) and `part` (`plain`, `hosts` or `only`).
 * Printable ASCII only, capped: none is caller-controlled (CloudWatch's own alarm name and state).
 */
export function messageAttributes(
  c: EnrichmentConfig,
  n: AlarmNotification,
): Record<string, string> {
  const found = kindOfAlarmName(c.stage, n.AlarmName);
  return {
    severity: found ? severityOf(found.kind, found.subject) : "unknown",
    stage: c.stage,
    // The public name: a `-Notify` composite (suppression) stands for its metric alarm.
    alarm: found ? alarmName(c.stage, found.kind, found.subject) : n.AlarmName,
    kind: found?.kind ?? "unknown",
    state: n.NewStateValue,
  };
}

const attributeValue = (v: string) => v.replace(/[^\x20-\x7e]/g, " ").slice(0, 256) || "-";

async function publish(
  deps: EnrichmentDeps,
  subject: string,
  message: string,
  publishWithinMs: () => number,
  attributes: Record<string, string>,
): Promise<void> {
  await send(
    deps.sns,
    new PublishCommand({
      TopicArn: deps.config.enrichedTopicArn,
      Subject: subject.replace(/[^\x20-\x7e]/g, " "),
      Message: message,
      MessageAttributes: Object.fromEntries(
        Object.entries(attributes).map(([k, v]) => [
          k,
          { DataType: "String", StringValue: attributeValue(v) },
        ]),
      ),
    }),
    callSignal(undefined, Math.min(CALL_CAPS.publishMs, publishWithinMs())),
  );
}
