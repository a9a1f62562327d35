/**
 * `npm run fleet-lab [-- --hosts N]`: runs the fleet lab (lab.ts) and prints its table.
 * Exits non-zero when a result is lost, the output is not bounded, the canary does not stop
 * the wrong command or a throttle fails the run (see fleetLabProblems).
 */
import { type CliArgs, runCli, UsageError } from "../../local/cli.ts";

const HELP = `
usage: npm run fleet-lab [-- --hosts N]

The fleet lab (issue 21): synthesizes the stack (stage "lab", short task timeouts) and runs the
fleet state machine on aws-local-stepfunctions with the real task handler over N hosts
(default 1000) on distinct loopback addresses 127.R.a.b:22 (one in-process ssh2 Server; 5 %
tarpits and closed ports), with Lambda throttles injected at the Lambda boundary:
  - the hostsKey (S3) fleet, echo ok: the list from s3rver, results to s3rver and read back;
  - the wrong command (exit 1) as an inline canary over the first 400 hosts,
    batches [1, 5, "20%"], maxErrors 0 and 1;
  - the hostsKey fleet with the same canary batches: exit 1 with maxErrors 0 (stops after the
    canary, the rest of the list never starts) and echo ok with maxErrors "10%" (the canary's
    6 hosts inline, the rest from S3 with those 6 skipped, every host run once) and echo ok
    with maxErrors 3 (the canary passes, the rest stops on what the canary left of the count);
  - hostsKey fleets under a failure budget (the map's own threshold, a lab stand-in locally):
    exit 1 with maxErrors 0 and maxConcurrency 10, echo ok with maxErrors "10%".
Prints wall time, task invocations (throttled ones included), outcomes, hosts not started and
the execution status per scenario, and what stays unverified without AWS.

Needs root (port 22 on 127.0.0.0/8 addresses; a free 127.R.0.0/16 block is picked at random).

cost: ~30–50 s for 1000 hosts on a shared 2-core machine (synth, in-process servers, s3rver);
about 3 minutes for 10000; writes nothing in the checkout (config and S3 data in temporary
directories).
`;

async function main(args: CliArgs): Promise<void> {
  const given = args.values.hosts;
  const hosts = typeof given === "string" ? Number(given) : 1_000;
  if (!Number.isInteger(hosts) || hosts < 20 || hosts > 10_000) {
    throw new UsageError(`--hosts must be an integer from 20 to 10000 (got ${given}); see --help`);
  }
  const { formatLabReport, fleetLabProblems, runFleetLab } = await import("./lab.ts");
  const report = await runFleetLab({ hosts, log: (line) => process.stdout.write(`${line}\n`) });
  process.stdout.write(`\n${formatLabReport(report)}\n`);
  const problems = fleetLabProblems(report);
  if (problems.length > 0) {
    process.stdout.write(`\nFLEET LAB FAILED:\n  - ${problems.join("\n  - ")}\n`);
    process.exitCode = 1;
  } else {
    process.stdout.write("\nFLEET LAB PASSED\n");
  }
}

await runCli("fleet-lab", HELP, main, { options: { hosts: { type: "string" } } });
