/**
 * Audit lines as the handlers write them (`auditLineOf` over an {@link Invocation}), for the
 * monitoring tests: the hang-hosts rule, the host queries and the enrichment read real lines,
 * jump host (`via`) and `error.hop` included, not hand-written JSON.
 */
import { type AuditLine, auditLineOf } from "../../functions/audit/audit-log.ts";
import { Invocation } from "../../functions/invocation/invocation.ts";
import { BannerTimeout, type EngineError } from "../../lib/errors.ts";
import type { Hop } from "../../lib/names.ts";
import type { JumpHostRequest } from "../../lib/types.ts";
import type { LogEvent } from "./logs-insights.ts";

export interface HungSession {
  /** The target's host and port. */
  host: string;
  port?: number;
  /** The jump host, when the request had one. */
  via?: JumpHostRequest;
  /** Where the error happened (only with `via`). */
  hop?: Hop;
  /** @default a BannerTimeout in phase banner */
  error?: EngineError;
}

/** The audit line of one session that failed (a task invocation, no result). */
export function hungAuditLine(s: HungSession): AuditLine {
  const invocation = new Invocation({
    source: "task",
    requestId: `r-${s.host}-${s.port ?? 22}-${s.via?.host ?? "direct"}`,
    mustReturnWithinMs: 60_000,
    reserveMs: 0,
  });
  invocation.audit.request = {
    host: s.host,
    ...(s.port !== undefined ? { port: s.port } : {}),
    username: "ops",
    command: "uptime",
    ...(s.via ? { via: s.via } : {}),
  };
  const error = s.error ?? new BannerTimeout("no banner", { phase: "banner" });
  if (s.hop !== undefined) error.hop = s.hop;
  invocation.error = error;
  return auditLineOf(invocation, "plain");
}

/** A log event carrying {@link hungAuditLine}. */
export function hungAuditEvent(logGroup: string, timestamp: number, s: HungSession): LogEvent {
  return { logGroup, logStream: "test", timestamp, message: JSON.stringify(hungAuditLine(s)) };
}
