/**
 * `npm run soak [-- <sessions>]`: the long leak soak (default 10,000 sessions).
 * Environment: SOAK_SESSIONS, SOAK_CONCURRENCY (default 16), SOAK_TIMEOUT_BUDGET_MS (1000),
 * SOAK_DEPENDENCY_EVERY (default 32: one session in 32 is a dependency-lab invocation; 0: none).
 * Exits 1 when a guarantee broke (a leak, heap growth > 5 MB, a late return, a mismatch).
 */
import { formatReport, runSoak, soakFailures } from "./soak.ts";

function intFrom(value: string | undefined, fallback: number): number {
  const n = Number(value);
  return Number.isInteger(n) && n > 0 ? n : fallback;
}

const sessions = intFrom(process.argv[2] ?? process.env.SOAK_SESSIONS, 10_000);
const concurrency = intFrom(process.env.SOAK_CONCURRENCY, 16);
const timeoutBudgetMs = intFrom(process.env.SOAK_TIMEOUT_BUDGET_MS, 1_000);
const dependencyEvery = Number(process.env.SOAK_DEPENDENCY_EVERY ?? 32);

const report = await runSoak({
  sessions,
  concurrency,
  timeoutBudgetMs,
  dependencyEvery: Number.isInteger(dependencyEvery) && dependencyEvery >= 0 ? dependencyEvery : 32,
  log: (line) => console.log(line),
});
console.log(formatReport(report));
const failures = soakFailures(report);
if (failures.length > 0) {
  console.error(`SOAK FAILED:\n  ${failures.join("\n  ")}`);
  process.exitCode = 1;
} else {
  console.log("soak passed");
}
