/**
 * Policy patterns in linear time. Command patterns, template parameter patterns and the globs
 * of a rule run on caller input; JavaScript's `RegExp` backtracks, so an ordinary pattern such
 * as `[a-z0-9]+(-?[a-z0-9]+)*` takes seconds on a 26-byte value (SPEC §3: every wait ends with
 * the deadline). Here every pattern is translated, when the policy is loaded, into the syntax of
 * RE2 and run by `re2js` (a pure-JavaScript port of RE2: time linear in the input, no
 * backtracking, nothing native or WebAssembly for the Lambda bundle to carry; the measurements
 * behind the choice are in docs/security.md, "Policy patterns").
 *
 * The meaning is exactly JavaScript's `RegExp` without flags (Annex B syntax, no `u`): the
 * translation spells every character set out (`.`, `\s`, `\w`, `\d`, classes) as the UTF-16
 * code units `RegExp` matches, and the input's surrogate code units are mapped one-to-one to
 * code points RE2 sees as single characters, so a character outside the BMP is two characters
 * here as it is in `RegExp`. A construct RE2 cannot run in linear time (backreferences,
 * lookahead, lookbehind) or whose meaning would be a guess (an escape of a letter that is no
 * escape, inline modifiers) is refused when the policy loads, by {@link PatternError}: never
 * at request time, never by falling back to `RegExp`.
 */
import { RE2JS } from "re2js";

/** A compiled pattern: `test` is a full match, in time linear in the input. */
export interface LinearPattern {
  /** The pattern as written in the policy. */
  readonly source: string;
  /** Instructions in the compiled program: one match costs at most input length × size steps. */
  readonly size: number;
  /**
   * True when the whole of `input` matches (the pattern is anchored at both ends). Throws
   * {@link PatternDeadline} once `performance.now()` passes `deadlineAt`.
   */
  test(input: string, deadlineAt?: number): boolean;
}

/** A pattern the linear engine cannot run; `message` says what and what to do. */
export class PatternError extends Error {
  override name = "PatternError";
}

/** Sorted, disjoint, inclusive ranges of UTF-16 code units (0–0xFFFF). */
type Ranges = Array<readonly [number, number]>;

const MAX_UNIT = 0xffff;
const SURROGATE_FIRST = 0xd800;
const SURROGATE_LAST = 0xdfff;
/** Where surrogate code units go for RE2: Supplementary Private Use Area-A, one-to-one. */
const SURROGATE_BASE = 0xf0000;

function normalize(ranges: Ranges): Ranges {
  const sorted = [...ranges].sort((a, b) => a[0] - b[0]);
  const out: Array<[number, number]> = [];
  for (const [lo, hi] of sorted) {
    const last = out.at(-1);
    if (last && lo <= last[1] + 1) last[1] = Math.max(last[1], hi);
    else out.push([lo, hi]);
  }
  return out;
}

function complement(ranges: Ranges): Ranges {
  const out: Array<[number, number]> = [];
  let next = 0;
  for (const [lo, hi] of normalize(ranges)) {
    if (lo > next) out.push([next, lo - 1]);
    next = hi + 1;
  }
  if (next <= MAX_UNIT) out.push([next, MAX_UNIT]);
  return out;
}

const one = (unit: number): Ranges => [[unit, unit]];
const DIGIT: Ranges = [[0x30, 0x39]];
const WORD: Ranges = normalize([
  [0x30, 0x39],
  [0x41, 0x5a],
  [0x5f, 0x5f],
  [0x61, 0x7a],
]);
/** `RegExp`'s \s: WhiteSpace and LineTerminator (ECMA-262 §22.2.2.9, Unicode Zs). */
const SPACE: Ranges = normalize([
  [0x09, 0x0d],
  [0x20, 0x20],
  [0xa0, 0xa0],
  [0x1680, 0x1680],
  [0x2000, 0x200a],
  [0x2028, 0x2029],
  [0x202f, 0x202f],
  [0x205f, 0x205f],
  [0x3000, 0x3000],
  [0xfeff, 0xfeff],
]);
/** `RegExp`'s `.` without the `s` flag: anything but a line terminator. */
const DOT: Ranges = complement([
  [0x0a, 0x0a],
  [0x0d, 0x0d],
  [0x2028, 0x2029],
]);
const ANY: Ranges = [[0, MAX_UNIT]];

const CLASS_ESCAPES: Record<string, Ranges> = {
  d: DIGIT,
  D: complement(DIGIT),
  w: WORD,
  W: complement(WORD),
  s: SPACE,
  S: complement(SPACE),
};
const CONTROL_ESCAPES: Record<string, number> = { t: 9, n: 10, v: 11, f: 12, r: 13 };

/** The code point RE2 sees for a code unit: surrogates moved, everything else itself. */
function mapped(unit: number): number {
  return unit >= SURROGATE_FIRST && unit <= SURROGATE_LAST
    ? SURROGATE_BASE + (unit - SURROGATE_FIRST)
    : unit;
}

const cp = (n: number) => `\\x{${n.toString(16)}}`;

/** An RE2 character class matching exactly the code units in `ranges`. */
function emitSet(ranges: Ranges): string {
  const parts: string[] = [];
  for (const [lo, hi] of normalize(ranges)) {
    // Split around the surrogates, which move to their own block.
    const pieces: Array<[number, number]> = [];
    if (lo < SURROGATE_FIRST) pieces.push([lo, Math.min(hi, SURROGATE_FIRST - 1)]);
    if (hi >= SURROGATE_FIRST && lo <= SURROGATE_LAST) {
      pieces.push([mapped(Math.max(lo, SURROGATE_FIRST)), mapped(Math.min(hi, SURROGATE_LAST))]);
    }
    if (hi > SURROGATE_LAST) pieces.push([Math.max(lo, SURROGATE_LAST + 1), hi]);
    for (const [a, b] of pieces) parts.push(a === b ? cp(a) : `${cp(a)}-${cp(b)}`);
  }
  // An empty set (`[]` in RegExp) matches nothing.
  return parts.length === 0 ? "[^\\x{0}-\\x{10ffff}]" : `[${parts.join("")}]`;
}

const isDigit = (c: string | undefined) => c !== undefined && c >= "0" && c <= "9";
const isHex = (text: string) => /^[0-9A-Fa-f]+$/.test(text);
const isLetter = (c: string | undefined) => c !== undefined && /^[A-Za-z]$/.test(c);
const isAlnum = (c: string | undefined) => c !== undefined && /^[A-Za-z0-9]$/.test(c);

/** RE2's largest repeat count; larger ones are refused with a clear message. */
const MAX_REPEAT = 1000;

/**
 * Translates a `RegExp` source (no flags) to RE2 syntax with the same meaning over the mapped
 * input, or throws {@link PatternError}. The source must already be a valid `RegExp`.
 */
class Translator {
  #pos = 0;
  readonly #src: string;

  constructor(src: string) {
    this.#src = src;
  }

  translate(): string {
    const out = this.#disjunction();
    if (this.#pos < this.#src.length) {
      // Only an unbalanced `)` stops a valid disjunction early; RegExp refused that already.
      throw new PatternError(`has an unmatched ")" at offset ${this.#pos}`);
    }
    return out;
  }

  #peek(offset = 0): string | undefined {
    return this.#src[this.#pos + offset];
  }

  #disjunction(): string {
    const alternatives = [this.#alternative()];
    while (this.#peek() === "|") {
      this.#pos++;
      alternatives.push(this.#alternative());
    }
    return alternatives.join("|");
  }

  #alternative(): string {
    let out = "";
    while (this.#pos < this.#src.length && this.#peek() !== "|" && this.#peek() !== ")") {
      out += this.#term();
    }
    return out;
  }

  #term(): string {
    const c = this.#peek()!;
    if (c === "^" || c === "$") {
      this.#pos++;
      return c === "^" ? "\\A" : "\\z";
    }
    if (c === "\\" && (this.#peek(1) === "b" || this.#peek(1) === "B")) {
      // Word boundaries: ASCII word characters in both engines.
      this.#pos += 2;
      return `\\${this.#src[this.#pos - 1]}`;
    }
    const atom = this.#atom();
    return atom + this.#quantifier();
  }

  #atom(): string {
    const c = this.#peek()!;
    if (c === "(") return this.#group();
    if (c === "[") return emitSet(this.#class());
    if (c === ".") {
      this.#pos++;
      return emitSet(DOT);
    }
    if (c === "\\") return emitSet(this.#escape(false));
    this.#pos++;
    return emitSet(one(c.charCodeAt(0)));
  }

  #group(): string {
    this.#pos++; // (
    if (this.#peek() === "?") {
      const next = this.#peek(1);
      const after = this.#peek(2);
      if (next === "=" || next === "!") {
        throw new PatternError(
          `uses a lookahead ((?${next}…)), which cannot run in linear time; match the text itself instead`,
        );
      }
      if (next === "<" && (after === "=" || after === "!")) {
        throw new PatternError(
          `uses a lookbehind ((?<${after}…)), which cannot run in linear time; match the text itself instead`,
        );
      }
      if (next === "<") {
        const end = this.#src.indexOf(">", this.#pos);
        this.#pos = end + 1; // a named group: the name does not change what matches
      } else if (next === ":") {
        this.#pos += 2;
      } else {
        throw new PatternError(
          `uses inline modifiers ((?${next ?? ""}…)), which are not supported; write the cases out (e.g. [Aa] for a letter in either case)`,
        );
      }
    }
    const inner = this.#disjunction();
    this.#pos++; // )
    return `(?:${inner})`;
  }

  #quantifier(): string {
    const c = this.#peek();
    let out: string;
    if (c === "*" || c === "+" || c === "?") {
      this.#pos++;
      out = c;
    } else if (c === "{") {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(this.#src.slice(this.#pos));
      if (!m) return ""; // Annex B: a `{` that opens no quantifier is itself (an atom next).
      const [text, min, comma, max] = m;
      for (const n of [min, max]) {
        if (n && Number(n) > MAX_REPEAT) {
          throw new PatternError(
            `repeats ${text} times: the linear engine allows counts up to ${MAX_REPEAT}; use + or * with a maxLength, or a smaller count`,
          );
        }
      }
      this.#pos += text.length;
      out = `{${Number(min)}${comma ? `,${max ? Number(max) : ""}` : ""}}`;
    } else {
      return "";
    }
    // Lazy or greedy gives the same answer to "does the whole input match".
    if (this.#peek() === "?") this.#pos++;
    return out;
  }

  /** A character class `[…]` as code-unit ranges (negation applied). */
  #class(): Ranges {
    this.#pos++; // [
    let negate = false;
    if (this.#peek() === "^") {
      negate = true;
      this.#pos++;
    }
    const ranges: Array<readonly [number, number]> = [];
    while (this.#peek() !== "]") {
      const from = this.#classAtom();
      if (this.#peek() === "-" && this.#peek(1) !== "]" && this.#peek(1) !== undefined) {
        this.#pos++; // -
        const to = this.#classAtom();
        if (from.single !== undefined && to.single !== undefined) {
          ranges.push([from.single, to.single]);
          continue;
        }
        // Annex B: a range with a class escape at either end is both ends and a "-".
        ranges.push(...from.ranges, [0x2d, 0x2d], ...to.ranges);
        continue;
      }
      ranges.push(...from.ranges);
    }
    this.#pos++; // ]
    return negate ? complement(ranges) : normalize(ranges);
  }

  #classAtom(): { ranges: Ranges; single?: number } {
    const c = this.#peek()!;
    if (c === "\\") {
      const next = this.#peek(1);
      if (next === "b") {
        this.#pos += 2;
        return { ranges: one(8), single: 8 }; // [\b] is backspace
      }
      const cls = next === undefined ? undefined : CLASS_ESCAPES[next];
      if (cls) {
        this.#pos += 2;
        return { ranges: cls };
      }
      const [[unit]] = this.#escape(true) as [[number, number]];
      return { ranges: one(unit), single: unit };
    }
    this.#pos++;
    const unit = c.charCodeAt(0);
    return { ranges: one(unit), single: unit };
  }

  /** An escape after `\` (outside or inside a class), as code-unit ranges. */
  #escape(inClass: boolean): Ranges {
    const at = this.#pos;
    const c = this.#src[at + 1];
    this.#pos += 2;
    if (c === undefined) throw new PatternError("ends with a lone backslash");
    const cls = CLASS_ESCAPES[c];
    if (cls) return cls;
    const control = CONTROL_ESCAPES[c];
    if (control !== undefined) return one(control);
    if (c === "0" && !isDigit(this.#peek())) return one(0);
    if (isDigit(c)) {
      throw new PatternError(
        `uses \\${c}, a backreference (or a legacy octal escape), which cannot run in linear time; repeat the group's pattern instead, or write \\x hex escapes`,
      );
    }
    if (c === "x" || c === "u") {
      const len = c === "x" ? 2 : 4;
      const hex = this.#src.slice(this.#pos, this.#pos + len);
      if (hex.length === len && isHex(hex)) {
        this.#pos += len;
        return one(Number.parseInt(hex, 16));
      }
      throw new PatternError(
        `uses \\${c} without ${len} hex digits, which RegExp reads as the letter ${c}; write \\${c}${"0".repeat(len)}-style escapes in full, or the letter itself`,
      );
    }
    if (c === "c") {
      const letter = this.#peek();
      if (isLetter(letter)) {
        this.#pos++;
        return one(letter!.charCodeAt(0) % 32);
      }
      throw new PatternError("uses \\c without a letter after it; write a \\x hex escape instead");
    }
    if (c === "k") {
      throw new PatternError(
        "uses \\k, a named backreference, which cannot run in linear time; repeat the group's pattern instead",
      );
    }
    if (c === "p" || c === "P") {
      throw new PatternError(
        `uses \\${c}, which RegExp without the u flag reads as the letter ${c}, not a Unicode property class; write the characters out as ranges (e.g. [A-Za-z\\u00c0-\\u024f])`,
      );
    }
    if (isAlnum(c)) {
      throw new PatternError(
        `uses \\${c}, which is no escape (RegExp reads it as the letter ${c}${inClass ? " in a class" : ""}, other engines as something else); write ${c} without the backslash`,
      );
    }
    // An identity escape of punctuation: the character itself (a surrogate half stays one unit).
    return one(c.charCodeAt(0));
  }
}

/** RE2's instruction opcodes (re2js `Inst`); the tests pin them against re2js's own matcher. */
const OP = {
  ALT: 1,
  ALT_MATCH: 2,
  CAPTURE: 3,
  EMPTY_WIDTH: 4,
  FAIL: 5,
  MATCH: 6,
  NOP: 7,
  RUNE: 8,
  RUNE1: 9,
  RUNE_ANY: 10,
  RUNE_ANY_NOT_NL: 11,
} as const;
/** RE2's empty-width conditions (re2js `Utils.EMPTY_*`). */
const EMPTY = { BEGIN_LINE: 1, END_LINE: 2, BEGIN_TEXT: 4, END_TEXT: 8, WORD: 16, NOT_WORD: 32 };

/** One compiled RE2 instruction, as re2js's program holds it. */
interface Inst {
  op: number;
  out: number;
  arg: number;
  matchRune(rune: number): boolean;
}
interface Prog {
  inst: Inst[];
  start: number;
}

/** A program laid out flat for the VM: opcode, `out` and `arg` of each instruction. */
interface Flat {
  insts: Inst[];
  op: Uint8Array;
  out: Int32Array;
  arg: Int32Array;
  start: number;
}

function flatten(prog: Prog): Flat {
  const n = prog.inst.length;
  const flat: Flat = {
    insts: prog.inst,
    op: new Uint8Array(n),
    out: new Int32Array(n),
    arg: new Int32Array(n),
    start: prog.start,
  };
  prog.inst.forEach((inst, pc) => {
    flat.op[pc] = inst.op;
    flat.out[pc] = inst.out;
    flat.arg[pc] = inst.arg;
  });
  return flat;
}

/**
 * Largest program (RE2 instructions) a pattern may compile to. A match costs at most
 * input length × program size steps: with 16 KiB commands this bounds one match (measured in
 * docs/security.md, "Policy patterns"), and the deadline bounds the sum.
 */
export const MAX_PROGRAM = 1000;
/** Steps between deadline checks (a check is one `performance.now()`). */
const CHECK_EVERY = 4096;

/** A match stopped because the invocation's deadline passed. */
export class PatternDeadline extends Error {
  override name = "PatternDeadline";
}

const isWord = (r: number) =>
  (r >= 0x30 && r <= 0x39) || (r >= 0x41 && r <= 0x5a) || r === 0x5f || (r >= 0x61 && r <= 0x7a);

/** The empty-width conditions true between runes `before` and `after` (-1 at either end). */
function context(before: number, after: number): number {
  let flag = 0;
  if (before < 0) flag |= EMPTY.BEGIN_TEXT | EMPTY.BEGIN_LINE;
  if (before === 0x0a) flag |= EMPTY.BEGIN_LINE;
  if (after < 0) flag |= EMPTY.END_TEXT | EMPTY.END_LINE;
  if (after === 0x0a) flag |= EMPTY.END_LINE;
  flag |= isWord(before) !== isWord(after) ? EMPTY.WORD : EMPTY.NOT_WORD;
  return flag;
}

/**
 * Runs a program over `input` for a full match: a Pike VM (Thompson's simulation), every
 * thread advanced in lockstep one code unit at a time, each instruction visited at most once
 * per position, so time ≤ input length × program size and memory ≤ program size. It checks
 * the clock every {@link CHECK_EVERY} steps and throws {@link PatternDeadline} past
 * `deadlineAt` (a `performance.now()` time): a match never outlives the invocation.
 */
function fullMatch(prog: Flat, input: string, deadlineAt: number | undefined): boolean {
  const { insts, op, out, arg } = prog;
  const size = insts.length;
  const seen = new Uint32Array(size);
  const stack = new Int32Array(size);
  let pending = new Int32Array(size);
  let next = new Int32Array(size);
  const runes = new Int32Array(size);
  let pendingCount = 1;
  pending[0] = prog.start;
  let generation = 0;
  let steps = 0;
  let before = -1;
  for (let i = 0; ; i++) {
    const rune = i < input.length ? mapped(input.charCodeAt(i)) : -1;
    const flag = context(before, rune);
    generation++;
    let sp = 0;
    let runeCount = 0;
    for (let k = 0; k < pendingCount; k++) {
      const pc = pending[k]!;
      if (seen[pc] !== generation) {
        seen[pc] = generation;
        stack[sp++] = pc;
      }
    }
    while (sp > 0) {
      const pc = stack[--sp]!;
      let a = -1;
      let b = -1;
      switch (op[pc]) {
        case OP.ALT:
        case OP.ALT_MATCH:
          a = out[pc]!;
          b = arg[pc]!;
          break;
        case OP.NOP:
        case OP.CAPTURE:
          a = out[pc]!;
          break;
        case OP.EMPTY_WIDTH:
          if ((arg[pc]! & ~flag) === 0) a = out[pc]!;
          break;
        case OP.MATCH:
          if (rune < 0) return true;
          break;
        case OP.FAIL:
          break;
        default:
          runes[runeCount++] = pc;
      }
      if (a >= 0 && seen[a] !== generation) {
        seen[a] = generation;
        stack[sp++] = a;
      }
      if (b >= 0 && seen[b] !== generation) {
        seen[b] = generation;
        stack[sp++] = b;
      }
    }
    if (rune < 0 || runeCount === 0) return false;
    let nextCount = 0;
    for (let k = 0; k < runeCount; k++) {
      const pc = runes[k]!;
      const code = op[pc];
      const ok =
        code === OP.RUNE_ANY ||
        (code === OP.RUNE_ANY_NOT_NL ? rune !== 0x0a : insts[pc]!.matchRune(rune));
      if (ok) next[nextCount++] = out[pc]!;
    }
    const swap = pending;
    pending = next;
    next = swap;
    pendingCount = nextCount;
    before = rune;
    steps += size;
    if (deadlineAt !== undefined && steps >= CHECK_EVERY) {
      steps = 0;
      if (performance.now() > deadlineAt) {
        throw new PatternDeadline(`stopped at offset ${i} of ${input.length}: the deadline passed`);
      }
    }
  }
}

function linear(source: string, re2Source: string): LinearPattern {
  let prog: Flat;
  try {
    prog = flatten(RE2JS.compile(re2Source).re2().prog as Prog);
  } catch (err) {
    const detail = (err as Error).message.replace(/^error parsing regexp: /, "");
    throw new PatternError(
      /repeat count/.test(detail)
        ? `cannot run in the linear engine (${detail}): nested counted repeats multiply, and the product may not exceed ${MAX_REPEAT}; use + or * (with a maxLength for a template parameter)`
        : `cannot run in the linear engine (${detail}); simplify it`,
    );
  }
  if (prog.insts.length > MAX_PROGRAM) {
    throw new PatternError(
      `compiles to ${prog.insts.length} instructions, more than the ${MAX_PROGRAM} that keep one match of a 16 KiB command bounded; use + or * instead of large counted repeats {n,m}, or split it into several patterns`,
    );
  }
  return {
    source,
    size: prog.insts.length,
    test: (input, deadlineAt) => fullMatch(prog, input, deadlineAt),
  };
}

/**
 * Compiles a policy pattern (`RegExp` syntax, no flags) for a full match: the same strings
 * `new RegExp("^(?:" + source + ")$")` matches, in linear time. Throws {@link PatternError}
 * when the source is not a valid `RegExp` on its own or uses a construct the linear engine
 * cannot run.
 */
export function compilePattern(source: string): LinearPattern {
  try {
    new RegExp(source);
  } catch (err) {
    throw new PatternError(
      `is not a valid regular expression (${(err as Error).message.replace(/^Invalid regular expression: /, "")})`,
    );
  }
  return linear(source, new Translator(source).translate());
}

/**
 * Compiles a glob for a full match in linear time: `*` matches any run of characters
 * (`wildcard: "any"`), or one or more characters other than `.` (`"label"`, a DNS label) with
 * `**` matching one or more of anything. Every other character is itself.
 */
export function compileGlob(glob: string, wildcard: "any" | "label"): LinearPattern {
  const star = wildcard === "any" ? `${emitSet(ANY)}*` : `${emitSet(complement(one(0x2e)))}+`;
  // Code units, not code points: a character outside the BMP is two, as in `RegExp`.
  const literal = (text: string) =>
    Array.from({ length: text.length }, (_, i) => emitSet(one(text.charCodeAt(i)))).join("");
  const parts = wildcard === "label" ? glob.split("**") : [glob];
  const body = parts
    .map((part) => part.split("*").map(literal).join(star))
    .join(`${emitSet(DOT)}+`);
  return linear(glob, body);
}
