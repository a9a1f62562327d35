/**
 * `npm run drill`: runs the incident drill and prints which alarms fire and the enriched
 * notifications. Exits non-zero when the drill does not pass (see drill-checks.ts).
 */
import { runCli } from "../../local/cli.ts";

const HELP = `
usage: npm run drill

The incident drill: synthesizes the stack (stage "drill", short task timeouts), runs the fleet
workflow locally (aws-local-stepfunctions) with the real task handler over 22 hosts, each with
its own name and loopback address (127.0.X.n), all on port 22 (tarpits, a freeze, an auth
hang, a full-budget command, healthy hosts), evaluates every alarm of the template on the
captured metrics and sends the notifications through the real enrichment handler (AWS faked
at the wire). Prints each host's outcome, which alarms fired and the enriched page; exits 1
when anything but the intended alarms fired or any host ended other than expected.
Needs root or CAP_NET_BIND_SERVICE (port 22 on 127.0.X.n).

cost: ~30 s on a quiet 2-core machine (synth, real sshd, 20 hosts); writes nothing in the
checkout (its config and synth output go to temporary directories).
`;

async function main(): Promise<void> {
  // Loaded here, not at the top: --help answers without loading the CDK app.
  const { formatReport, runDrill } = await import("./drill.ts");
  const { drillProblems, recordedProblems } = await import("./drill-checks.ts");
  const { checkOf, MUTATIONS, mutationProblems } = await import("./mutations.ts");
  const { pageLevelAlarms } = await import("./page-scenario.ts");
  const report = await runDrill((line) => process.stdout.write(`${line}\n`));
  process.stdout.write(`${formatReport(report)}\n`);
  // The same run's data again: saved queries, the page scenario, then each mutation.
  const recorded = recordedProblems(report);
  const pages = pageLevelAlarms(report.recorded.stage);
  process.stdout.write(
    `\nPage scenario and query checks: ${recorded.length === 0 ? `passed (${pages.length} page-level alarms fired and paged: ${pages.join(", ")})` : "FAILED"}\n`,
  );
  const rows = MUTATIONS.map((m) => {
    const caught = [...new Set(mutationProblems(report, m).map(checkOf))];
    return `  ${caught.length ? "caught " : "MISSED "} ${m.what}${caught.length ? `  [${caught.join(", ")}]` : ""}`;
  });
  const missed = rows.filter((r) => r.startsWith("  MISSED"));
  process.stdout.write(
    `\nMutations (${MUTATIONS.length - missed.length} of ${MUTATIONS.length} caught):\n${rows.join("\n")}\n`,
  );
  const problems = [
    ...drillProblems(report),
    ...recorded,
    ...missed.map((r) => `mutation not caught: ${r.trim()}`),
  ];
  if (problems.length > 0) {
    process.stdout.write(`\nDRILL FAILED:\n  - ${problems.join("\n  - ")}\n`);
    process.exitCode = 1;
  } else {
    process.stdout.write(
      "\nDRILL PASSED: exactly the intended alarms fired, every host ended as expected, the notification names every hung host with its phase, every page alarm fires in the page scenario, every mutation is caught.\n",
    );
  }
}

await runCli("drill", HELP, main);
