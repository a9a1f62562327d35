import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resetSharedCloudWatchClient } from "../../functions/metrics/publisher.ts";
import { generateEd25519KeyPair } from "../helpers/keys.ts";
import { activeHandles, expectNoSessionLeaks, type HandleCounts } from "../helpers/leaks.ts";
import { installScopedEnv } from "./aws-env.ts";
import {
  DEPENDENCY_ROWS,
  type DependencyLab,
  type DependencyOutcome,
  dependencyProblems,
  runDependencyRow,
  runDependencyRows,
  startDependencyLab,
  tableLine,
} from "./dependency-matrix.ts";
import { type Farm, type FarmServer, startFarm } from "./farm.ts";

// The dependency fault matrix (issue 20, item 3): every AWS dependency × fault × moment
// against the real API handler over the deployed runtime, all rows at once. The stand-ins and
// fault proxies live in the fault farm, so every socket here is the SDK's or the engine's.

// FAULTLAB_ROWS=<regex> runs only the rows whose id matches (e.g. "^dynamodb/.*/after$");
// FAULTLAB_ATTRIBUTE_LEAKS=1: when the leak check fails, runs each row alone to name the rows.
const only = process.env.FAULTLAB_ROWS ? new RegExp(process.env.FAULTLAB_ROWS) : undefined;
const ROWS = DEPENDENCY_ROWS.filter((r) => !only || only.test(r.id));

let farm: Farm;
let backendFarm: Farm;
let lab: DependencyLab;
const unhandled: unknown[] = [];
const collect = (err: unknown) => unhandled.push(err);
const outcomes = new Map<string, DependencyOutcome>();
const rowServers: FarmServer[] = [];
let baseline: HandleCounts;
let leakError: unknown;
let wallMs = 0;

beforeAll(async () => {
  process.on("unhandledRejection", collect);
  process.on("uncaughtException", collect);
  installScopedEnv();
  [farm, backendFarm] = await Promise.all([startFarm(), startFarm()]);
  lab = await startDependencyLab(farm, backendFarm, generateEd25519KeyPair().private);
  // Warm-up: one healthy invocation loads the SDKs, Powertools and the engine, so the
  // baseline holds their module-level state and the rows' timings are not a cold start.
  const warm = await runDependencyRow(lab, DEPENDENCY_ROWS[0]!, (s) => rowServers.push(...s));
  expect(dependencyProblems(warm)).toEqual([]);

  baseline = activeHandles();
  const start = performance.now();
  const keep = (s: FarmServer[]) => rowServers.push(...s);
  const results = await runDependencyRows(lab, ROWS, keep, resetSharedCloudWatchClient);
  for (const o of results) outcomes.set(o.row.id, o);
  wallMs = performance.now() - start;
  // Before any proxy closes: a call the handler left behind would still hold its socket.
  try {
    await expectNoSessionLeaks(baseline, { waitMs: 100 });
  } catch (err) {
    leakError = err;
  }
  if (leakError && process.env.FAULTLAB_ATTRIBUTE_LEAKS) {
    // Which rows leak: each row again, alone, with its own leak check (slow: opt-in).
    const leaking: string[] = [];
    for (const row of ROWS) {
      if (row.dependency === "cloudwatch") resetSharedCloudWatchClient();
      const before = activeHandles();
      const o = await runDependencyRow(lab, row, keep);
      try {
        await expectNoSessionLeaks(before, { waitMs: 100 });
      } catch (err) {
        // What the proxy saw, newest last: the calls still in flight are among them.
        const seen = o.proxy ? (await farm.depSeen(o.proxy)).slice(-6) : [];
        leaking.push(
          `${row.id}: ${(err as Error).message.split(" (baseline")[0]}; proxy saw ${JSON.stringify(seen)}`,
        );
      }
    }
    console.log(`rows that leak when run alone:\n  ${leaking.join("\n  ") || "none"}`);
  }
  console.log(
    [
      `dependency matrix: ${outcomes.size} rows in ${Math.round(wallMs)} ms`,
      "| dependency | fault | moment | answer | commandStarted / execs | named | elapsed / deadline (ms) | |",
      ...ROWS.map((r) => outcomes.get(r.id)).flatMap((o) => (o ? [tableLine(o)] : [])),
    ].join("\n"),
  );
}, 120_000);

afterAll(async () => {
  process.off("unhandledRejection", collect);
  process.off("uncaughtException", collect);
  resetSharedCloudWatchClient();
  await Promise.allSettled(rowServers.map((s) => farm.close(s)));
  await Promise.all([farm?.stop(), backendFarm?.stop()]);
});

describe("dependency fault matrix, all rows at once", () => {
  for (const row of ROWS) {
    it(`${row.id}: ${row.calls} → ${row.answers.join(" | ")}${row.named ? `, ${row.named}` : ""}`, () => {
      const o = outcomes.get(row.id);
      expect(o, "row did not run").toBeDefined();
      expect(dependencyProblems(o!), JSON.stringify(o!.body).slice(0, 600)).toEqual([]);
    });
  }

  it("leaves no socket or timer of any invocation alive", () => {
    expect(leakError).toBeUndefined();
  });

  it("leaves nothing unhandled", () => {
    expect(unhandled).toEqual([]);
  });
});
