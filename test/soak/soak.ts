/**
 * The leak soak (issue 6): many sessions in one process, healthy ones against the real sshd
 * mixed with the cheap rows of the fault matrix, bounded concurrency. Afterwards no socket or
 * timer may be alive beyond the baseline, and the heap after GC may not have grown by more
 * than 5 MB. Used by `npm run soak` (test/soak/run.ts) and by the CI test (soak.test.ts).
 */

import { monitorEventLoopDelay } from "node:perf_hooks";
import { DEFAULT_PHASE_CAPS, LOOP_MARGIN_MAX_MS, recentLoopDelayMs } from "../../lib/deadline.ts";
import { installScopedEnv } from "../faults/aws-env.ts";
import {
  DEPENDENCY_ROWS,
  type DependencyLab,
  type DependencyOutcome,
  type DependencyRow,
  dependencyOutcomeProblems,
  dependencyTimingProblems,
  runDependencyRow,
  startDependencyLab,
} from "../faults/dependency-matrix.ts";
import { type Farm, type FarmServer, startFarm } from "../faults/farm.ts";
import {
  FAULTS,
  type FaultCase,
  type FaultLab,
  type FaultOutcome,
  OVERSHOOT_MARGIN_MS,
  outcomeProblems,
  prepareServers,
  runFault,
  timingProblems,
} from "../faults/matrix.ts";
import { generateEd25519KeyPair } from "../helpers/keys.ts";
import { activeHandles, handleGrowth, settleHandles } from "../helpers/leaks.ts";
import { type SshdServer, startSshd } from "../helpers/sshd.ts";
import { heapAfterGc } from "./gc.ts";

export interface SoakOptions {
  /** Sessions to run (after the warm-up). Default 10,000. */
  sessions?: number;
  /** Sessions in flight at once. Default 16. */
  concurrency?: number;
  /**
   * Budget of the rows that end in a timeout. Default 1,000 ms, the matrix's own: with 400 ms
   * (250 of them the teardown reserve) the phases before the faulty one had 150 ms, which 16
   * concurrent handshakes on 2 loaded cores overran (AuthTimeout where ChannelTimeout was due).
   */
  timeoutBudgetMs?: number;
  /**
   * Every this many sessions, one is a dependency-lab invocation instead (the API handler over
   * the deployed runtime, one AWS dependency faulted: test/faults/dependency-matrix.ts).
   * Default 32 (a stalled dependency holds its slot for the whole session budget, 4.45 s);
   * 0: none.
   */
  dependencyEvery?: number;
  /** Progress lines. Default: none. */
  log?: (line: string) => void;
}

export interface Percentiles {
  p50: number;
  p99: number;
  max: number;
}

export interface SoakReport {
  sessions: number;
  concurrency: number;
  /** Of `sessions`: dependency-lab invocations (one AWS dependency faulted). */
  dependencySessions: number;
  /** Of `late`: dependency-lab invocations past their deadline. */
  dependencyLate: number;
  wallMs: number;
  sessionsPerSecond: number;
  /** Per row id: sessions run. */
  perCase: Record<string, number>;
  /** Per outcome (`succeeded`, `failed`, or the error name): sessions. */
  perOutcome: Record<string, number>;
  /** Sessions whose outcome (error name, phase, retryable, …) differed from the table. */
  mismatches: number;
  mismatchExamples: string[];
  /**
   * Sessions that ended right but late (past budget + 50 ms, or a row's timing check) while
   * the loop's delay stayed inside the engine's promise (≤ 100 ms), or later than the excess
   * beyond it: a failure.
   */
  late: number;
  lateExamples: string[];
  /**
   * Late sessions that ended while the loop's recent delay was past the promise (> 100 ms,
   * SPEC §3) and overran by no more than that excess: reported, not a failure.
   */
  lateBeyondPromise: number;
  lateBeyondPromiseExamples: string[];
  /** Event-loop delay of this process during the soak (ms): what late timers come from. */
  eventLoopDelayMs: Percentiles;
  /** elapsed − budget of the sessions that ended in a `*Timeout` (ms; negative = early). */
  timeoutOvershootMs: Percentiles & { count: number };
  /** elapsed − budget of every session (ms; negative = early): the SPEC §3 bound is +50. */
  overshootMs: Percentiles;
  /** Teardown time of every session (ms): its cap is 250 (DEFAULT_PHASE_CAPS.teardown). */
  teardownMs: Percentiles;
  /** Session resources alive after the soak beyond the baseline (must be empty). */
  leakedHandles: Record<string, number>;
  heapBeforeBytes: number;
  heapAfterBytes: number;
  heapGrowthBytes: number;
  /** Unhandled rejections / uncaught exceptions seen during the soak. */
  unhandled: string[];
}

/**
 * The dependency rows of the mix: the cheap ones, not CloudWatch's (the metrics publisher's
 * client is one per process, and its rows take turns in the matrix).
 */
function dependencyMix(): DependencyRow[] {
  return DEPENDENCY_ROWS.filter((r) => r.soak && r.dependency !== "cloudwatch");
}

/** The mix: every other session is healthy, the rest cycle through the soak rows. */
function mix(): FaultCase[] {
  const healthy = FAULTS.find((c) => c.id === "healthy")!;
  const faults = FAULTS.filter((c) => c.soak && c !== healthy && !c.perSession);
  return faults.flatMap((c) => [healthy, c]);
}

function percentiles(values: number[]): Percentiles {
  if (values.length === 0) return { p50: 0, p99: 0, max: 0 };
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
  const round = (n: number) => Math.round(n * 10) / 10;
  return { p50: round(at(0.5)), p99: round(at(0.99)), max: round(sorted[sorted.length - 1]!) };
}

/** The dependency lab's part of a soak: its lab, rows, and the farm servers its sessions left. */
interface DependencyPart {
  lab: DependencyLab;
  rows: DependencyRow[];
  every: number;
  servers: FarmServer[];
}

/** Runs `count` sessions of the mix with at most `concurrency` in flight. */
async function runMany(
  lab: FaultLab,
  plan: FaultCase[],
  count: number,
  concurrency: number,
  timeoutBudgetMs: number,
  onOutcome: (o: FaultOutcome) => void,
  log?: (line: string) => void,
  dependencies?: DependencyPart & { onOutcome: (o: DependencyOutcome) => void },
): Promise<void> {
  let next = 0;
  let done = 0;
  let nextDependency = 0;
  const step = Math.max(1, Math.floor(count / 10));
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= count) return;
      if (dependencies && i % dependencies.every === dependencies.every - 1) {
        const row = dependencies.rows[nextDependency++ % dependencies.rows.length]!;
        dependencies.onOutcome(
          await runDependencyRow(dependencies.lab, row, (s) => dependencies.servers.push(...s)),
        );
        done++;
        if (log && done % step === 0) log(`  ${done}/${count} sessions`);
        continue;
      }
      const c = plan[i % plan.length]!;
      const budget = c.expect.status === "timed_out" ? timeoutBudgetMs : c.budgetMs;
      onOutcome(await runFault(lab, c, budget));
      done++;
      if (log && done % step === 0) log(`  ${done}/${count} sessions`);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}

export async function runSoak(options: SoakOptions = {}): Promise<SoakReport> {
  const sessions = options.sessions ?? 10_000;
  const concurrency = options.concurrency ?? 16;
  const timeoutBudgetMs = options.timeoutBudgetMs ?? 1_000;
  const log = options.log;
  const unhandled: string[] = [];
  const collect = (err: unknown) => unhandled.push(String(err));
  process.on("unhandledRejection", collect);
  process.on("uncaughtException", collect);

  const dependencyEvery = options.dependencyEvery ?? 32;
  let sshd: SshdServer | undefined;
  let farm: Farm | undefined;
  let backendFarm: Farm | undefined;
  const dependencyServers: FarmServer[] = [];
  try {
    // MaxStartups 100: more than sshd's default 10 concurrent pre-auth connections.
    [sshd, farm, backendFarm] = await Promise.all([
      startSshd({ maxStartups: "100", keepLog: false }),
      startFarm(),
      dependencyEvery > 0 ? startFarm() : undefined,
    ]);
    const lab: FaultLab = { farm, sshd, servers: new Map() };
    const plan = mix();
    await prepareServers(lab, plan);
    let dependencies: DependencyPart | undefined;
    if (backendFarm) {
      installScopedEnv();
      dependencies = {
        lab: await startDependencyLab(farm, backendFarm, generateEd25519KeyPair().private),
        rows: dependencyMix(),
        every: dependencyEvery,
        servers: dependencyServers,
      };
    }

    // Warm-up: one pass over the mix, so JIT and module caches are in the heap baseline; every
    // dependency row once too (each loads SDK clients and code paths of its own: S3, DynamoDB,
    // Powertools, the error paths), at the soak's concurrency.
    await runMany(lab, plan, plan.length, concurrency, timeoutBudgetMs, () => {});
    if (dependencies) {
      await Promise.all(
        dependencies.rows.map((row) =>
          runDependencyRow(dependencies.lab, row, (s) => dependencies.servers.push(...s)),
        ),
      );
    }
    await settleHandles();
    const baseline = activeHandles();
    const heapBeforeBytes = heapAfterGc();

    const perCase: Record<string, number> = {};
    const perOutcome: Record<string, number> = {};
    const overshoots: number[] = [];
    const allOvershoots: number[] = [];
    const teardowns: number[] = [];
    const mismatchExamples: string[] = [];
    const lateExamples: string[] = [];
    let mismatches = 0;
    let late = 0;
    let lateBeyondPromise = 0;
    const lateBeyondPromiseExamples: string[] = [];
    let dependencySessions = 0;
    let dependencyLate = 0;
    const loopDelay = monitorEventLoopDelay({ resolution: 10 });
    loopDelay.enable();
    log?.(
      `soak: ${sessions} sessions, concurrency ${concurrency}, ${plan.length}-row mix${dependencies ? ` + every ${dependencyEvery}th a dependency row (${dependencies.rows.length} rows)` : ""}`,
    );
    const start = performance.now();
    await runMany(
      lab,
      plan,
      sessions,
      concurrency,
      timeoutBudgetMs,
      (o) => {
        perCase[o.case.id] = (perCase[o.case.id] ?? 0) + 1;
        const outcome = o.result.error?.name ?? o.result.status;
        perOutcome[outcome] = (perOutcome[outcome] ?? 0) + 1;
        if (o.result.status === "timed_out") overshoots.push(o.overshootMs);
        allOvershoots.push(o.overshootMs);
        if (o.result.timings.teardownMs != null) teardowns.push(o.result.timings.teardownMs);
        const wrong = outcomeProblems(o);
        if (wrong.length > 0) {
          mismatches++;
          if (mismatchExamples.length < 10) {
            mismatchExamples.push(`${o.case.id}: ${wrong.join("; ")}`);
          }
        }
        const slow = timingProblems(o);
        if (slow.length > 0) {
          // The bound holds while the loop's delay stays ≤ LOOP_MARGIN_MAX_MS; past that, by
          // the contract, a session may overrun by the excess (the worst delay of the last
          // 1–2 s, which covers the session's end).
          const loopMs = recentLoopDelayMs();
          const excess = Math.max(0, loopMs - LOOP_MARGIN_MAX_MS);
          const overBy = Math.max(o.overshootMs - OVERSHOOT_MARGIN_MS, teardownOverCap(o));
          const example = `${o.case.id}: ${slow.join("; ")} (loop delay ${Math.round(loopMs)} ms)`;
          // Only lateness itself: any other check a row makes (output, remoteCleanup) still fails.
          const onlyTiming = slow.every((p) => /^returned \d+ ms after|^teardown took /.test(p));
          if (excess > 0 && onlyTiming && overBy <= excess) {
            lateBeyondPromise++;
            if (lateBeyondPromiseExamples.length < 5) lateBeyondPromiseExamples.push(example);
          } else {
            late++;
            if (lateExamples.length < 5) lateExamples.push(example);
          }
        }
      },
      log,
      dependencies && {
        ...dependencies,
        onOutcome: (o) => {
          perCase[o.row.id] = (perCase[o.row.id] ?? 0) + 1;
          perOutcome[o.answer] = (perOutcome[o.answer] ?? 0) + 1;
          dependencySessions++;
          const wrong = dependencyOutcomeProblems(o);
          if (wrong.length > 0) {
            mismatches++;
            if (mismatchExamples.length < 10) {
              mismatchExamples.push(`${o.row.id}: ${wrong.join("; ")}`);
            }
          }
          const slow = dependencyTimingProblems(o);
          if (slow.length > 0) {
            late++;
            dependencyLate++;
            if (lateExamples.length < 5) lateExamples.push(`${o.row.id}: ${slow.join("; ")}`);
          }
        },
      },
    );
    const wallMs = performance.now() - start;
    loopDelay.disable();
    const ms = (ns: number) => Math.round(ns / 1e5) / 10;
    const eventLoopDelayMs = {
      p50: ms(loopDelay.percentile(50)),
      p99: ms(loopDelay.percentile(99)),
      max: ms(loopDelay.max),
    };

    // Nothing of the sessions may be alive: compare with the baseline (servers live in the
    // farm and in sshd, so every TCP handle here was a client's).
    await settleHandles();
    const leakedHandles = handleGrowth(baseline, activeHandles());
    const heapAfterBytes = heapAfterGc();
    return {
      sessions,
      concurrency,
      dependencySessions,
      dependencyLate,
      wallMs: Math.round(wallMs),
      sessionsPerSecond: Math.round((sessions / wallMs) * 1000 * 10) / 10,
      perCase,
      perOutcome,
      mismatches,
      mismatchExamples,
      late,
      lateExamples,
      lateBeyondPromise,
      lateBeyondPromiseExamples,
      eventLoopDelayMs,
      timeoutOvershootMs: { count: overshoots.length, ...percentiles(overshoots) },
      overshootMs: percentiles(allOvershoots),
      teardownMs: percentiles(teardowns),
      leakedHandles,
      heapBeforeBytes,
      heapAfterBytes,
      heapGrowthBytes: heapAfterBytes - heapBeforeBytes,
      unhandled,
    };
  } finally {
    process.off("unhandledRejection", collect);
    process.off("uncaughtException", collect);
    // The dependency rows' proxies stay open until the leak check above: closing one closes
    // the socket of any call a session left behind, which would hide it.
    await Promise.allSettled(dependencyServers.map((s) => farm!.close(s)));
    await Promise.all([farm?.stop(), backendFarm?.stop()]);
    await sshd?.stop();
  }
}

const TEARDOWN_CAP_MS = DEFAULT_PHASE_CAPS.teardown;

/** How far past the 250 ms teardown cap (+20 ms, the matrix's slack) the session's teardown ran. */
function teardownOverCap(o: FaultOutcome): number {
  return (o.result.timings.teardownMs ?? 0) - (TEARDOWN_CAP_MS + 20);
}

/** The report as printable lines. */
export function formatReport(r: SoakReport): string {
  const mb = (b: number) => `${(b / 1024 / 1024).toFixed(2)} MB`;
  const o = r.timeoutOvershootMs;
  return [
    `sessions: ${r.sessions} (${r.dependencySessions} dependency-lab invocations; concurrency ${r.concurrency}) in ${(r.wallMs / 1000).toFixed(1)} s = ${r.sessionsPerSecond}/s`,
    `outcomes: ${Object.entries(r.perOutcome)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `${k} ${v}`)
      .join(", ")}`,
    `mismatches against the fault table: ${r.mismatches}${r.mismatchExamples.map((e) => `\n  ${e}`).join("")}`,
    `late (right outcome, timing check missed; a failure): ${r.late}${r.lateExamples.map((e) => `\n  ${e}`).join("")}`,
    `late while the loop's delay was past ${LOOP_MARGIN_MAX_MS} ms, by no more than the excess (the contract's condition; not a failure): ${r.lateBeyondPromise}${r.lateBeyondPromiseExamples.map((e) => `\n  ${e}`).join("")}`,
    `event-loop delay: p50 ${r.eventLoopDelayMs.p50} ms, p99 ${r.eventLoopDelayMs.p99} ms, max ${r.eventLoopDelayMs.max} ms`,
    `timeout overshoot past the deadline (${o.count} sessions): p50 ${o.p50} ms, p99 ${o.p99} ms, max ${o.max} ms`,
    `every session, end − budget: p50 ${r.overshootMs.p50} ms, p99 ${r.overshootMs.p99} ms, max ${r.overshootMs.max} ms (bound +50); teardown: p50 ${r.teardownMs.p50} ms, p99 ${r.teardownMs.p99} ms, max ${r.teardownMs.max} ms (cap 250) — beside the loop delay above`,
    `leaked handles: ${JSON.stringify(r.leakedHandles)}`,
    `heap after GC: before ${mb(r.heapBeforeBytes)}, after ${mb(r.heapAfterBytes)}, growth ${mb(r.heapGrowthBytes)}`,
    `unhandled errors: ${r.unhandled.length}${r.unhandled
      .slice(0, 5)
      .map((u) => `\n  ${u}`)
      .join("")}`,
  ].join("\n");
}

/** Every way the report breaks the soak's guarantees (empty = pass). */
export function soakFailures(r: SoakReport): string[] {
  const out: string[] = [];
  if (r.mismatches > 0) out.push(`${r.mismatches} sessions ended differently from the table`);
  if (Object.keys(r.leakedHandles).length > 0) {
    out.push(`handles left alive: ${JSON.stringify(r.leakedHandles)}`);
  }
  if (r.heapGrowthBytes > 5 * 1024 * 1024) {
    out.push(`heap grew ${(r.heapGrowthBytes / 1024 / 1024).toFixed(2)} MB after GC (> 5 MB)`);
  }
  // Timing on a saturated 2-core box: single late timers follow the event-loop delay (reported
  // next to it); the guarantee is held to at p99.
  if (r.timeoutOvershootMs.p99 > 50) {
    out.push(`p99 overshoot ${r.timeoutOvershootMs.p99} ms past the deadline (> 50 ms)`);
  }
  // Every session on time: the engine keeps back the loop's delay (lib/deadline.ts), so a
  // late one is a broken guarantee, not noise, while the loop delay stays ≤ 100 ms.
  if (r.late > 0) {
    out.push(
      `${r.late} sessions late (event-loop delay p99 ${r.eventLoopDelayMs.p99} ms, max ${r.eventLoopDelayMs.max} ms)`,
    );
  }
  if (r.unhandled.length > 0) out.push(`${r.unhandled.length} unhandled errors`);
  return out;
}
