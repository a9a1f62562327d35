/**
 * The candidates measured for policy patterns (docs/security.md, "Policy patterns"), one
 * engine per process so that each import is cold. Not part of `npm run bench`: the libraries
 * are not dependencies. To repeat the comparison:
 *
 *   npm i --no-save re2js@2.10.0 re2-wasm@1.0.2 @adguard/re2-wasm@1.2.0
 *   for e in regexp re2js re2-wasm @adguard/re2-wasm linear; do npx tsx bench/pattern-engines.ts $e; done
 *
 * Pattern `[a-z0-9]+(-?[a-z0-9]+)*`, full match; values: a normal 26-byte one and `aaa…!`.
 */
import { compilePattern } from "../functions/policy/patterns.ts";

type Full = (input: string) => boolean;
const engine = process.argv[2] ?? "linear";
const PATTERN = "[a-z0-9]+(-?[a-z0-9]+)*";

const t0 = performance.now();
let compile: (pattern: string) => Full;
if (engine === "re2js") {
  const name = "re2js";
  const { RE2JS } = await import(name);
  compile = (p) => {
    const re = RE2JS.compile(p);
    return (s) => re.matches(s);
  };
} else if (engine === "re2-wasm" || engine === "@adguard/re2-wasm") {
  const { RE2 } = await import(engine);
  compile = (p) => {
    const re = new RE2(`^(?:${p})$`, "u");
    return (s) => re.test(s);
  };
} else if (engine === "regexp") {
  compile = (p) => {
    const re = new RegExp(`^(?:${p})$`);
    return (s) => re.test(s);
  };
} else {
  compile = (p) => {
    const re = compilePattern(p);
    return (s) => re.test(s);
  };
}
const importMs = performance.now() - t0;

/** Median ms of `fn` over `n` runs after `warm` unmeasured ones. */
function median(fn: () => unknown, n: number, warm = 3): number {
  for (let i = 0; i < warm; i++) fn();
  const xs: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    fn();
    xs.push(performance.now() - t);
  }
  return xs.sort((a, b) => a - b)[n >> 1]!;
}

const hostile = (n: number) => `${"a".repeat(n - 1)}!`;
const c0 = performance.now();
const full = compile(PATTERN);
const out: Record<string, unknown> = {
  engine,
  importMs: +importMs.toFixed(1),
  firstCompileMs: +(performance.now() - c0).toFixed(2),
  compileUs: +(median(() => compile(PATTERN), 100, 10) * 1000).toFixed(1),
  normalUs: +(median(() => full("web-frontend-blue-canary-7"), 1000, 100) * 1000).toFixed(2),
};
if (engine === "regexp") {
  // Exponential: 30 bytes would take about 40 s.
  for (const n of [20, 22, 24])
    out[`hostile${n}Ms`] = +median(() => full(hostile(n)), 3, 0).toFixed(1);
} else {
  const [h30, h16k, h100k] = [hostile(30), hostile(16_384), hostile(100_000)];
  if (full(h30) || full(h16k) || full(h100k)) throw new Error(`${engine}: wrong answer`);
  out.hostile30Us = +(median(() => full(h30), 1000, 100) * 1000).toFixed(2);
  out.hostile16KiBMs = +median(() => full(h16k), 21).toFixed(2);
  out.hostile100KBMs = +median(() => full(h100k), 11).toFixed(2);
}
console.log(JSON.stringify(out));
