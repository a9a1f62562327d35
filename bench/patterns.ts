/**
 * Policy pattern matching (functions/policy/patterns.ts): the linear engine on normal and
 * hostile values, beside RegExp (the backtracking engine it replaced) and beside itself on a
 * normal value, all in the same run. Timing targets live here, never in unit tests.
 */
import { compilePattern, MAX_PROGRAM, PatternDeadline } from "../functions/policy/patterns.ts";
import { REQUEST_LIMITS } from "../lib/request-schema.ts";
import { median } from "./stats.ts";

/** An ordinary kebab-case parameter pattern: exponential under RegExp on `aaa…!`. */
export const KEBAB = "[a-z0-9]+(-?[a-z0-9]+)*";
const hostile = (n: number) => `${"a".repeat(n - 1)}!`;

/** Median ms of `fn` over `rounds` runs after `warm` unmeasured ones. */
function time(fn: () => unknown, rounds: number, warm = 3): number {
  for (let i = 0; i < warm; i++) fn();
  const samples: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const t0 = performance.now();
    fn();
    samples.push(performance.now() - t0);
  }
  return median(samples);
}

export interface PatternBench {
  /** Linear engine, kebab pattern: normal 26-byte value / hostile 30-byte / hostile 100 KB. */
  normalMs: number;
  hostile30Ms: number;
  hostile100kMs: number;
  /** RegExp, kebab pattern, hostile value of `regexpBytes` bytes (kept short: it is exponential). */
  regexpHostileMs: number;
  regexpBytes: number;
  /** Compile time of the kebab pattern (at policy load). */
  compileMs: number;
  /** The worst single match: a command of the request limit × the largest program allowed. */
  worstMs: number;
  worstSize: number;
  worstPattern: string;
  commandBytes: number;
  /** The worst match given a deadline `budgetMs` away: how long past it each one stopped. */
  overshootMs: number[];
  /**
   * Anchor: how late a busy loop that reads the clock on every turn notices the same
   * deadline, same rounds: what scheduling alone costs a CPU-bound check on this machine.
   */
  spinLateMs: number[];
  budgetMs: number;
}

export async function measurePatterns(): Promise<PatternBench> {
  const kebab = compilePattern(KEBAB);
  const normal = "web-frontend-blue-canary-7";
  const answers = [kebab.test(normal), kebab.test(hostile(30)), kebab.test(hostile(100_000))];
  if (answers.join() !== "true,false,false") throw new Error(`wrong answers: ${answers}`);
  const regexp = new RegExp(`^(?:${KEBAB})$`);
  const regexpBytes = 24;
  // The largest `[ab]*a[ab]{k}` that compiles within MAX_PROGRAM: every thread alive on `abab…`.
  let worst = compilePattern("a");
  for (let k = MAX_PROGRAM; k > 0; k -= 5) {
    try {
      worst = compilePattern(`[ab]*a[ab]{${k}}`);
      break;
    } catch {}
  }
  const command = "ab".repeat(REQUEST_LIMITS.commandBytes / 2);
  const budgetMs = 20;
  const overshootMs: number[] = [];
  const spinLateMs: number[] = [];
  let spun = 0;
  for (let i = 0; i < 25; i++) {
    const due = performance.now() + budgetMs + (i % 5);
    for (let now = performance.now(); now <= due; now = performance.now()) spun++;
    spinLateMs.push(performance.now() - due);
    await new Promise((resolve) => setImmediate(resolve));
    const deadlineAt = performance.now() + budgetMs + (i % 5);
    try {
      worst.test(command, deadlineAt);
      throw new Error(`the worst match finished within ${budgetMs} ms: measure a larger one`);
    } catch (err) {
      if (!(err instanceof PatternDeadline)) throw err;
      overshootMs.push(performance.now() - deadlineAt);
    }
  }
  if (spun === 0) throw new Error("the spin anchor never ran");
  return {
    overshootMs,
    spinLateMs,
    budgetMs,
    normalMs: time(() => kebab.test(normal), 2000, 200),
    hostile30Ms: time(() => kebab.test(hostile(30)), 2000, 200),
    hostile100kMs: time(() => kebab.test(hostile(100_000)), 15),
    regexpHostileMs: time(() => regexp.test(hostile(regexpBytes)), 5, 1),
    regexpBytes,
    compileMs: time(() => compilePattern(KEBAB), 200, 20),
    worstMs: time(() => worst.test(command), 7, 1),
    worstSize: worst.size,
    worstPattern: worst.source,
    commandBytes: command.length,
  };
}
