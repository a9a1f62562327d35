import type { RunRequest } from "../../lib/types.ts";

/** What the audit line needs beyond the {@link InvocationRecord}; stored on `request.internal`. */
export interface AuditFacts {
  source: "api" | "task";
  /** The validated request, once validation passed. */
  request?: RunRequest;
  /** The command that runs (a template expanded), once policy allowed it. */
  command?: string;
  template?: string;
  /** Policy rules that allowed the request. */
  rules?: string[];
  /** API Gateway's request id (what the caller sees), API only. */
  apiRequestId?: string;
  /** HTTP status sent, API only. */
  statusCode?: number;
  /** Size of the raw body, API only. */
  bodyBytes?: number;
}

export const AUDIT_FACTS_KEY = "boundedSshAudit";

/** The audit facts of a middy request, created on first use. */
export function auditFactsOf(
  request: { internal: Record<string, unknown> },
  source: AuditFacts["source"] = "api",
): AuditFacts {
  const existing = request.internal[AUDIT_FACTS_KEY] as AuditFacts | undefined;
  if (existing) return existing;
  const created: AuditFacts = { source };
  request.internal[AUDIT_FACTS_KEY] = created;
  return created;
}
