/**
 * The cdk-nag (and other validation) acknowledgements of a stack, as docs/deploy.md lists
 * them: one row per rule and reason, with the construct paths it applies to.
 */
import { type Stack, Validations } from "aws-cdk-lib";

export interface AcknowledgementRow {
  /** Rule id without its finding detail, e.g. `AwsSolutions-IAM5`. */
  rule: string;
  /** Construct paths below the stack, sorted. */
  paths: string[];
  reason: string;
}

export function acknowledgementRows(stack: Stack): AcknowledgementRow[] {
  const rows = new Map<string, AcknowledgementRow>();
  for (const construct of stack.node.findAll()) {
    for (const entry of construct.node.metadata) {
      if (entry.type !== Validations.ACKNOWLEDGED_RULES_METADATA_KEY) continue;
      for (const [id, reason] of Object.entries(entry.data as Record<string, string>)) {
        const rule = id.replace(/^Annotation::/, "").replace(/\[.*$/s, "");
        // Per-config names (credential names, subnet indexes) collapse to one documented row. A
        // `Default` child is its parent to CDK's logical ids (a state machine is the default
        // child of its workflow construct), so it is documented as the parent.
        const where = construct.node.path
          .split("/")
          .slice(1)
          .filter((part) => part !== "Default")
          .join("/")
          .replace(/Credential-[^/]+/, "Credential-<name>")
          .replace(/^Subnet\d+/, "Subnet<n>");
        const key = `${rule}\u0000${reason}`;
        const row = rows.get(key) ?? { rule, paths: [], reason };
        if (!row.paths.includes(where)) row.paths.push(where);
        rows.set(key, row);
      }
    }
  }
  return [...rows.values()]
    .map((r) => ({ ...r, paths: r.paths.sort() }))
    .sort((a, b) => `${a.rule} ${a.paths[0]}`.localeCompare(`${b.rule} ${b.paths[0]}`));
}

/** The markdown table of docs/deploy.md for these rows. */
export function acknowledgementTable(rows: readonly AcknowledgementRow[]): string {
  return [
    "| rule | where | reason |",
    "| --- | --- | --- |",
    ...rows.map(
      (r) => `| ${r.rule} | ${r.paths.map((p) => `\`${p}\``).join(", ")} | ${r.reason} |`,
    ),
  ].join("\n");
}
