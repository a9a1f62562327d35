/**
 * Regenerates the header of every docs/runbooks/<Kind>.md from the alarm catalog (name,
 * severity, meaning, first checks, saved query), keeping each page's own sections after it
 * (`## Impact`, `## Remediation`). `test/cdk/monitoring.test.ts` fails when a page drifts.
 *
 *   npm run runbooks
 */
import { runCli } from "../local/cli.ts";

const HELP = `
usage: npm run runbooks

Rewrites the header of every docs/runbooks/<Kind>.md (one per alarm kind) from the alarm
catalog (operations/alarm-catalog.ts): name, severity, meaning, first checks, saved query.
Each page's own sections from "## Impact" on are kept; a missing page is created with TODO
sections. Run it after editing the catalog; test/cdk/monitoring.test.ts fails while a page
is stale.

cost: about a second; rewrites docs/runbooks/*.md in the checkout (review with git diff).
`;

async function main(): Promise<void> {
  // Loaded here, not at the top: --help answers without loading the catalog.
  const { existsSync, readFileSync, writeFileSync } = await import("node:fs");
  const path = await import("node:path");
  const { ALARM_KINDS, runbookFile, runbookHeader } = await import(
    "../operations/alarm-catalog.ts"
  );
  const dir = path.resolve(import.meta.dirname, "../docs/runbooks");
  for (const kind of ALARM_KINDS) {
    const file = path.join(dir, runbookFile(kind));
    const old = existsSync(file) ? readFileSync(file, "utf8") : "";
    const start = old.indexOf("## Impact");
    const own = start >= 0 ? old.slice(start) : "## Impact\n\nTODO\n\n## Remediation\n\nTODO\n";
    writeFileSync(file, `${runbookHeader(kind)}\n${own}`);
  }
  console.log(`wrote ${ALARM_KINDS.length} pages in ${path.relative(process.cwd(), dir) || dir}`);
}

await runCli("runbooks", HELP, main);
