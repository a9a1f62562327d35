import type { Runtime } from "../runtime/runtime.ts";
import type { AuditLogOptions } from "./audit-log.ts";

/** Audit middleware options from a runtime, leaving unset hooks to the defaults. */
export function auditOptions(runtime: Runtime): AuditLogOptions {
  const options: AuditLogOptions = { command: runtime.settings.auditCommand };
  if (runtime.writeAuditLine) options.write = runtime.writeAuditLine;
  if (runtime.observe) options.observe = runtime.observe;
  return options;
}
