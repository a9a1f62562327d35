/**
 * Field paths of the audit line (SPEC §8) that the saved queries, the insight rule and the
 * enrichment read: one table, plain names, so the CDK app and the enrichment function share it
 * without importing the handler. `test/operations/audit-fields.test.ts` types the table against
 * the handler's own `AuditLine` (a field no audit line carries fails `tsc`) and reads each
 * field from a real audit line.
 */

/** The discriminator value of audit lines among the other lines of a log group. */
export const AUDIT_TYPE = "bounded-ssh.audit";

/** Fields the queries, the insight rule and the enrichment read (one place, all typed). */
export const AUDIT_FIELDS = {
  type: "type",
  time: "time",
  source: "source",
  requestId: "requestId",
  host: "target.host",
  port: "target.port",
  address: "target.address",
  username: "target.username",
  /** The remote an error is attributed to: the jump host at hop `via`, else the target. */
  errorHost: "error.host",
  errorPort: "error.port",
  errorAddress: "error.address",
  /** With a jump host: the hop (`via` or `target`) the error happened at. */
  errorHop: "error.hop",
  viaHost: "via.host",
  caller: "caller",
  status: "outcome",
  errorName: "error.name",
  phase: "phase",
  totalMs: "timings.totalMs",
  slackMs: "slackMs",
  leakedSockets: "leakedSockets",
  remoteCleanup: "remoteCleanup",
} as const;

/** A dotted path to a leaf of the audit line that the table names, e.g. `target.host`. */
export type AuditField = (typeof AUDIT_FIELDS)[keyof typeof AUDIT_FIELDS];

/** Reads a dotted field of a parsed JSON line (tests, the drill, the fake Logs endpoint). */
export function readField(line: unknown, field: string): unknown {
  let value: unknown = line;
  for (const key of field.split(".")) {
    if (value === null || typeof value !== "object") return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  return value;
}
