/**
 * Regenerates the header of every docs/runbooks/<Kind>.md from the alarm catalog (name,
 * severity, meaning, first checks, saved query), keeping each page's own sections after it
 * (`## Impact`, `## Remediation`). `test/cdk/runbooks.test.ts` fails when a page drifts.
 *
 *   npm run runbooks
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ALARM_KINDS, runbookFile, runbookHeader } from "../operations/alarm-catalog.ts";

const DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../docs/runbooks");

for (const kind of ALARM_KINDS) {
  const file = path.join(DIR, runbookFile(kind));
  const old = existsSync(file) ? readFileSync(file, "utf8") : "";
  const start = old.indexOf("## Impact");
  const own = start >= 0 ? old.slice(start) : "## Impact\n\nTODO\n\n## Remediation\n\nTODO\n";
  writeFileSync(file, `${runbookHeader(kind)}\n${own}`);
}
