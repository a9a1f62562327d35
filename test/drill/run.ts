/**
 * `npm run drill`: runs the incident drill and prints which alarms fire and the enriched
 * notifications. Exits non-zero when the drill does not pass (see drill-checks.ts).
 */

import { formatReport, runDrill } from "./drill.ts";
import { drillProblems } from "./drill-checks.ts";

const report = await runDrill((line) => process.stdout.write(`${line}\n`));
process.stdout.write(`${formatReport(report)}\n`);
const problems = drillProblems(report);
if (problems.length > 0) {
  process.stdout.write(`\nDRILL FAILED:\n  - ${problems.join("\n  - ")}\n`);
  process.exitCode = 1;
} else {
  process.stdout.write(
    "\nDRILL PASSED: exactly the intended alarms fired; the notification names every hung host with its phase.\n",
  );
}
