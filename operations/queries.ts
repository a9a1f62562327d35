/**
 * Saved Logs Insights queries, as data: each query is a {@link QuerySpec} whose conditions name
 * typed audit-line fields ({@link AuditField}); {@link renderQuery} turns it into the query text
 * CloudFormation saves and the enrichment function runs. Tests and the drill evaluate the same
 * specs over captured lines (`test/helpers/logs-insights.ts`).
 */
import { AUDIT_TYPE, type AuditField, AUDIT_FIELDS as F } from "./audit-fields.ts";

/** One condition on an audit line; conditions of a query are ANDed. */
export type Condition =
  | { readonly field: AuditField; readonly in: readonly string[] }
  /** Present and none of these (a missing field does not pass). */
  | { readonly field: AuditField; readonly notIn: readonly string[] }
  | { readonly field: AuditField; readonly present: true }
  | { readonly field: AuditField; readonly lt: number }
  | { readonly field: AuditField; readonly gt: number };

/** What a query lists. */
export type QueryShape =
  /**
   * Hosts the errors are attributed to (host, port, address, error, phase, source, hop) with
   * sessions, distinct targets, first and last seen.
   */
  | "hosts"
  /** Individual invocations (request id, log stream, host, error, slack, leaks). */
  | "invocations"
  /** Invocations per caller per minute. */
  | "callers"
  /** Step Functions execution failures (their own log format, not audit lines). */
  | "workflow";

export interface QuerySpec {
  /** Saved query name (without the stage folder). */
  readonly id: string;
  readonly shape: QueryShape;
  /** ANDed conditions on audit lines. */
  readonly where: readonly Condition[];
  /**
   * Lines that are NOT audit lines (Lambda's own: `Task timed out after`, runtime errors) and
   * match this regular expression are listed too. Audit lines never match it: a command that
   * contains the phrase is not an incident.
   */
  readonly otherLines?: string;
  /** Which log groups the query runs over. */
  readonly logGroups: "functions" | "workflows";
}

/**
 * Columns of a `hosts` query, in order: the enrichment reads them by these names. The host is
 * the one the error is attributed to (`error.host`: the jump host when `error.hop` is `via`,
 * else the target), so one dead jump host is one row, not a row per target behind it; `hop`
 * follows, and the aggregate `targets` ({@link TARGETS_COLUMN}) counts the distinct targets
 * behind the row (1 unless `hop` is `via`).
 */
export const HOST_COLUMNS = [
  F.errorHost,
  F.errorPort,
  F.errorAddress,
  F.errorName,
  F.phase,
  F.source,
  F.errorHop,
] as const satisfies readonly AuditField[];

/** Aggregate column of a `hosts` query: distinct target hosts (`count_distinct(target.host)`). */
export const TARGETS_COLUMN = "targets";

/**
 * Rows a `hosts` query returns (the Logs Insights maximum): the enrichment counts totals and
 * groups over all of them and lists the top ones.
 */
export const HOST_ROWS_LIMIT = 10_000;
/** Rows an `invocations` query returns. */
export const INVOCATION_ROWS_LIMIT = 200;

/** Saved query name inside the stage's folder. */
export function queryName(stage: string, spec: QuerySpec): string {
  return `bounded-ssh-${stage}/${spec.id}`;
}

const quote = (s: string) => JSON.stringify(s);

function conditionText(c: Condition): string {
  if ("in" in c) {
    return c.in.length === 1
      ? `${c.field} = ${quote(c.in[0] as string)}`
      : `${c.field} in [${c.in.map(quote).join(", ")}]`;
  }
  if ("notIn" in c) {
    return `ispresent(${c.field}) and ${c.field} not in [${c.notIn.map(quote).join(", ")}]`;
  }
  if ("present" in c) return `ispresent(${c.field})`;
  if ("lt" in c) return `${c.field} < ${c.lt}`;
  return `${c.field} > ${c.gt}`;
}

/** The filter of a query over function log groups. */
function filterText(spec: QuerySpec): string {
  const audit = [`${F.type} = ${quote(AUDIT_TYPE)}`, ...spec.where.map(conditionText)].join(
    " and ",
  );
  if (!spec.otherLines) return audit;
  return `(${audit}) or (not ispresent(${F.type}) and @message like /${spec.otherLines}/)`;
}

/** Logs Insights query text of a spec (what is saved and what the enrichment runs). */
export function renderQuery(spec: QuerySpec): string {
  const lines: string[] = [];
  switch (spec.shape) {
    case "hosts": {
      const by = HOST_COLUMNS.join(", ");
      lines.push(
        `fields @timestamp, ${by}`,
        `filter ${filterText(spec)}`,
        `stats count(*) as sessions, count_distinct(${F.host}) as ${TARGETS_COLUMN}, min(@timestamp) as firstSeen, max(@timestamp) as lastSeen by ${by}`,
        "sort sessions desc",
        `limit ${HOST_ROWS_LIMIT}`,
      );
      break;
    }
    case "invocations":
      lines.push(
        `fields @timestamp, @logStream, ${F.requestId}, ${F.source}, ${F.host}, ${F.port}, ${F.errorName}, ${F.errorHop}, ${F.errorHost}, ${F.phase}, ${F.slackMs}, ${F.leakedSockets}, @message`,
        `filter ${filterText(spec)}`,
        "sort @timestamp desc",
        `limit ${INVOCATION_ROWS_LIMIT}`,
      );
      break;
    case "callers":
      lines.push(
        `fields ${F.caller}`,
        `filter ${filterText(spec)}`,
        `stats count(*) as invocations by ${F.caller}, bin(1m)`,
        "sort invocations desc",
        "limit 200",
      );
      break;
    case "workflow":
      lines.push(
        "fields @timestamp, type, execution_arn, details.error, details.cause",
        "filter type like /ExecutionFailed|ExecutionTimedOut|ExecutionAborted|TaskFailed|TaskTimedOut|MapRunFailed/",
        "sort @timestamp desc",
        "limit 200",
      );
      break;
  }
  return lines.join("\n| ");
}
