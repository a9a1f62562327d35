import { expect, it } from "vitest";
import { formatReport, runSoak, soakFailures } from "./soak.ts";

// The CI soak: the same function as `npm run soak`, shorter (2,000 sessions ≈ 20–30 s here).
const SESSIONS = Number(process.env.SOAK_CI_SESSIONS ?? 2_000);
// One session in this many is a dependency-lab invocation (0: none).
const DEPENDENCY_EVERY = Number(process.env.SOAK_DEPENDENCY_EVERY ?? 32);

it(`soak: ${SESSIONS} mixed sessions leave no socket or timer alive and the heap flat`, async () => {
  const report = await runSoak({
    sessions: SESSIONS,
    concurrency: 16,
    dependencyEvery: DEPENDENCY_EVERY,
  });
  console.log(formatReport(report));
  expect(soakFailures(report)).toEqual([]);
  expect(report.sessions).toBe(SESSIONS);
  expect(report.leakedHandles).toEqual({});
  expect(report.heapGrowthBytes).toBeLessThanOrEqual(5 * 1024 * 1024);
  expect(report.unhandled).toEqual([]);
}, 180_000);
