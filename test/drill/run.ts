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
  const { drillProblems } = await import("./drill-checks.ts");
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
}

await runCli("drill", HELP, main);
