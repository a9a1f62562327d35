/**
 * The audit field table (`operations/audit-fields.ts`) is plain names, so deploy time and run
 * time share it without importing each other; here it is held to the handler's own
 * `AuditLine`: at compile time (`tsc` fails on a field no audit line carries) and on a real
 * line the handler writes.
 */
import { describe, expect, it } from "vitest";
import type { AuditLine } from "../../functions/audit/audit-log.ts";
import { AUDIT_FIELDS, AUDIT_TYPE } from "../../operations/audit-fields.ts";
import { hungAuditLine } from "../helpers/audit-lines.ts";

/** Every dotted path to a leaf of `T` (arrays are leaves). */
type Leaves<T, P extends string = ""> = {
  [K in keyof T & string]-?: NonNullable<T[K]> extends readonly unknown[]
    ? `${P}${K}`
    : NonNullable<T[K]> extends object
      ? Leaves<NonNullable<T[K]>, `${P}${K}.`>
      : `${P}${K}`;
}[keyof T & string];

// Compile-time: a renamed or misspelt field, or another discriminator, fails `npm run typecheck`.
AUDIT_FIELDS satisfies Record<string, Leaves<AuditLine>>;
AUDIT_TYPE satisfies AuditLine["type"];

/** Whether the dotted path exists on the object (a `null` leaf counts: the key is written). */
function hasPath(line: unknown, field: string): boolean {
  let value: unknown = line;
  for (const key of field.split(".")) {
    if (value === null || typeof value !== "object" || !(key in value)) return false;
    value = (value as Record<string, unknown>)[key];
  }
  return true;
}

describe("audit fields", () => {
  it("name keys that a real audit line carries", () => {
    // Prepare: a failed session through a jump host, attributed to the jump host.
    const line = hungAuditLine({
      host: "10.0.0.5",
      via: { host: "bastion.example", username: "ops", credential: "jump" },
      hop: "via",
    });
    // Act
    const missing = Object.values(AUDIT_FIELDS).filter((f) => !hasPath(line, f));
    // Assess: all there, but the timings a session without a result writes as `null`.
    expect(line.type).toBe(AUDIT_TYPE);
    expect(line.timings).toBeNull();
    expect(missing).toEqual([AUDIT_FIELDS.totalMs]);
  });
});
