/**
 * Policy patterns in linear time. Command patterns, template parameter patterns and the globs
 * of a rule run on caller input; JavaScript's `RegExp` backtracks, so an ordinary pattern such
 * as `[a-z0-9]+(-?[a-z0-9]+)*` takes seconds on a 26-byte value (SPEC §3: every wait ends with
 * the deadline). Here every pattern is parsed when the policy loads, compiled to a Thompson
 * automaton (RE2's construction) and run by a Pike VM: every thread advanced in lockstep, one
 * code unit at a time, so a match costs at most input length × program size steps, whatever
 * the pattern and the input. The VM reads the clock as it goes and stops at the invocation's
 * deadline. Why this and not a library (re2js, re2-wasm): docs/security.md, "Policy patterns".
 *
 * The meaning is exactly JavaScript's `RegExp` without flags (Annex B syntax, no `u`): the
 * input is matched as UTF-16 code units, and `.`, `\s`, `\w`, `\d`, `\b` and classes are the
 * sets `RegExp` uses. A construct that cannot run in linear time (backreferences, lookahead,
 * lookbehind) or whose meaning would be a guess (an escape of a letter that is no escape,
 * inline modifiers) is refused when the policy loads, by {@link PatternError}: never at request
 * time, never by falling back to `RegExp`.
 */

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

/** A match stopped because the invocation's deadline passed. */
export class PatternDeadline extends Error {
  override name = "PatternDeadline";
}

/**
 * Largest program (instructions) a pattern may compile to. A match costs at most input
 * length × program size steps: with 16 KiB commands this bounds one match (measured in
 * docs/security.md, "Policy patterns"); the deadline bounds the sum.
 */
export const MAX_PROGRAM = 1000;
/** Largest repeat count (RE2's); a larger one is refused with a clear message. */
const MAX_REPEAT = 1000;
/** Deepest group nesting (the parser and the compiler recurse once per level). */
const MAX_DEPTH = 100;
/** Steps between deadline checks (a check is one `performance.now()`). */
const CHECK_EVERY = 1024;

/** Sorted, disjoint, inclusive ranges of UTF-16 code units (0–0xFFFF). */
type Ranges = Array<readonly [number, number]>;

/** Empty-width conditions an assertion needs (bits, as RE2's). */
const EMPTY = { BEGIN_TEXT: 1, END_TEXT: 2, WORD: 4, NOT_WORD: 8 };

/** A parsed pattern. `repeat.max` is -1 for no upper bound. */
type Node =
  | { kind: "set"; ranges: Ranges }
  | { kind: "cat"; of: Node[] }
  | { kind: "alt"; of: Node[] }
  | { kind: "repeat"; of: Node; min: number; max: number }
  | { kind: "assert"; when: number };

const MAX_UNIT = 0xffff;

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

const isDigit = (c: string | undefined) => c !== undefined && c >= "0" && c <= "9";
const isHex = (text: string) => /^[0-9A-Fa-f]+$/.test(text);
const isLetter = (c: string | undefined) => c !== undefined && /^[A-Za-z]$/.test(c);
const isAlnum = (c: string | undefined) => c !== undefined && /^[A-Za-z0-9]$/.test(c);

/**
 * Parses a `RegExp` source (no flags, Annex B syntax) into a {@link Node} tree with the same
 * meaning, or throws {@link PatternError}. The source must already be a valid `RegExp`.
 */
class Parser {
  #pos = 0;
  #depth = 0;
  readonly #src: string;

  constructor(src: string) {
    this.#src = src;
  }

  parse(): Node {
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

  #disjunction(): Node {
    const alternatives = [this.#alternative()];
    while (this.#peek() === "|") {
      this.#pos++;
      alternatives.push(this.#alternative());
    }
    return alternatives.length === 1 ? alternatives[0]! : { kind: "alt", of: alternatives };
  }

  #alternative(): Node {
    const terms: Node[] = [];
    while (this.#pos < this.#src.length && this.#peek() !== "|" && this.#peek() !== ")") {
      terms.push(this.#term());
    }
    return terms.length === 1 ? terms[0]! : { kind: "cat", of: terms };
  }

  #term(): Node {
    const c = this.#peek()!;
    if (c === "^" || c === "$") {
      // No multiline: the start and the end of the input.
      this.#pos++;
      return { kind: "assert", when: c === "^" ? EMPTY.BEGIN_TEXT : EMPTY.END_TEXT };
    }
    if (c === "\\" && (this.#peek(1) === "b" || this.#peek(1) === "B")) {
      // Word boundaries: ASCII word characters, as RegExp without the u and i flags.
      this.#pos += 2;
      return {
        kind: "assert",
        when: this.#src[this.#pos - 1] === "b" ? EMPTY.WORD : EMPTY.NOT_WORD,
      };
    }
    return this.#quantifier(this.#atom());
  }

  #atom(): Node {
    const c = this.#peek()!;
    if (c === "(") return this.#group();
    if (c === "[") return { kind: "set", ranges: this.#class() };
    if (c === ".") {
      this.#pos++;
      return { kind: "set", ranges: DOT };
    }
    if (c === "\\") return { kind: "set", ranges: this.#escape(false) };
    this.#pos++;
    return { kind: "set", ranges: one(c.charCodeAt(0)) };
  }

  #group(): Node {
    this.#pos++; // (
    if (++this.#depth > MAX_DEPTH) {
      throw new PatternError(`nests groups more than ${MAX_DEPTH} deep; flatten it`);
    }
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
    this.#depth--;
    return inner;
  }

  #quantifier(atom: Node): Node {
    const c = this.#peek();
    let min: number;
    let max: number;
    if (c === "*" || c === "+" || c === "?") {
      this.#pos++;
      [min, max] = c === "*" ? [0, -1] : c === "+" ? [1, -1] : [0, 1];
    } else if (c === "{") {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(this.#src.slice(this.#pos));
      if (!m) return atom; // Annex B: a `{` that opens no quantifier is itself (an atom next).
      const [text, low, comma, high] = m;
      for (const n of [low, high]) {
        if (n && Number(n) > MAX_REPEAT) {
          throw new PatternError(
            `repeats ${text} times: the linear engine allows counts up to ${MAX_REPEAT}; use + or * with a maxLength, or a smaller count`,
          );
        }
      }
      this.#pos += text.length;
      min = Number(low);
      max = comma ? (high ? Number(high) : -1) : min;
    } else {
      return atom;
    }
    // Lazy or greedy gives the same answer to "does the whole input match".
    if (this.#peek() === "?") this.#pos++;
    return { kind: "repeat", of: atom, min, max };
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

/** Instruction kinds of a program. */
const OP = { MATCH: 0, SET: 1, SPLIT: 2, ASSERT: 3 } as const;

/**
 * A compiled program: instruction `pc` has kind `op[pc]`, continues at `out[pc]` (and, for a
 * split, also at `arg[pc]`); an assertion needs the conditions `arg[pc]`; a set matches the
 * code units in `ranges[pc]` (flat lo, hi pairs).
 */
interface Program {
  op: number[];
  out: number[];
  arg: number[];
  ranges: Int32Array[];
  start: number;
}

/**
 * Thompson's construction, built backwards: each node is compiled with the instruction to go
 * to once it has matched, and returns its entry. A counted repeat is its node copied (as RE2
 * does), so the size check runs as instructions are added.
 */
function compile(root: Node): Program {
  const prog: Program = { op: [], out: [], arg: [], ranges: [], start: 0 };
  const add = (op: number, out: number, arg = 0, ranges = NO_RANGES): number => {
    if (prog.op.length >= MAX_PROGRAM) {
      throw new PatternError(
        `compiles to more than ${MAX_PROGRAM} instructions, the most that keep one match of a 16 KiB command bounded; use + or * instead of large counted repeats {n,m} (counted repeats are copied), or split it into several patterns`,
      );
    }
    prog.op.push(op);
    prog.out.push(out);
    prog.arg.push(arg);
    prog.ranges.push(ranges);
    return prog.op.length - 1;
  };
  const node = (n: Node, next: number): number => {
    switch (n.kind) {
      case "set":
        return add(OP.SET, next, 0, Int32Array.from(normalize(n.ranges).flat()));
      case "assert":
        return add(OP.ASSERT, next, n.when);
      case "cat":
        return n.of.reduceRight((after, part) => node(part, after), next);
      case "alt": {
        const entries = n.of.map((part) => node(part, next));
        return entries.reduceRight((rest, entry) => add(OP.SPLIT, entry, rest));
      }
      case "repeat": {
        let tail = next;
        if (n.max < 0) {
          // A loop: the split goes into the body or on; the body comes back to the split.
          const loop = add(OP.SPLIT, -1, next);
          prog.out[loop] = node(n.of, loop);
          tail = loop;
        } else {
          for (let k = n.min; k < n.max; k++) tail = add(OP.SPLIT, node(n.of, tail), next);
        }
        for (let k = 0; k < n.min; k++) tail = node(n.of, tail);
        return tail;
      }
    }
  };
  prog.start = node(root, add(OP.MATCH, -1));
  return prog;
}
const NO_RANGES = new Int32Array(0);

const isWord = (u: number) =>
  (u >= 0x30 && u <= 0x39) || (u >= 0x41 && u <= 0x5a) || u === 0x5f || (u >= 0x61 && u <= 0x7a);

/** The conditions true between code units `before` and `after` (-1 at either end). */
function conditions(before: number, after: number): number {
  let flag = isWord(before) !== isWord(after) ? EMPTY.WORD : EMPTY.NOT_WORD;
  if (before < 0) flag |= EMPTY.BEGIN_TEXT;
  if (after < 0) flag |= EMPTY.END_TEXT;
  return flag;
}

function inSet(ranges: Int32Array, unit: number): boolean {
  let lo = 0;
  let hi = ranges.length >> 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (unit < ranges[2 * mid]!) hi = mid;
    else if (unit > ranges[2 * mid + 1]!) lo = mid + 1;
    else return true;
  }
  return false;
}

/**
 * Runs a program over `input` for a full match: a Pike VM (Thompson's simulation). All threads
 * advance in lockstep one code unit at a time and each instruction is visited at most once per
 * position, so time ≤ input length × program size and memory ≤ program size. It reads the clock
 * every {@link CHECK_EVERY} steps and throws {@link PatternDeadline} past `deadlineAt` (a
 * `performance.now()` time): a match never outlives the invocation.
 */
function fullMatch(prog: Program, input: string, deadlineAt: number | undefined): boolean {
  const { op, out, arg, ranges } = prog;
  const size = op.length;
  const seen = new Uint32Array(size);
  const stack = new Int32Array(size);
  const sets = new Int32Array(size);
  let pending = new Int32Array(size);
  let next = new Int32Array(size);
  let pendingCount = 1;
  pending[0] = prog.start;
  let generation = 0;
  let steps = 0;
  let before = -1;
  for (let i = 0; ; i++) {
    const unit = i < input.length ? input.charCodeAt(i) : -1;
    const flag = conditions(before, unit);
    generation++;
    let sp = 0;
    let setCount = 0;
    for (let k = 0; k < pendingCount; k++) {
      const pc = pending[k]!;
      if (seen[pc] !== generation) {
        seen[pc] = generation;
        stack[sp++] = pc;
      }
    }
    // Follow splits and assertions to the instructions that read a code unit.
    while (sp > 0) {
      const pc = stack[--sp]!;
      let a = -1;
      let b = -1;
      switch (op[pc]) {
        case OP.SET:
          sets[setCount++] = pc;
          break;
        case OP.SPLIT:
          a = out[pc]!;
          b = arg[pc]!;
          break;
        case OP.ASSERT:
          if ((arg[pc]! & flag) === arg[pc]) a = out[pc]!;
          break;
        case OP.MATCH:
          if (unit < 0) return true;
          break;
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
    if (unit < 0 || setCount === 0) return false;
    let nextCount = 0;
    for (let k = 0; k < setCount; k++) {
      const pc = sets[k]!;
      if (inSet(ranges[pc]!, unit)) next[nextCount++] = out[pc]!;
    }
    const swap = pending;
    pending = next;
    next = swap;
    pendingCount = nextCount;
    before = unit;
    steps += size;
    if (deadlineAt !== undefined && steps >= CHECK_EVERY) {
      steps = 0;
      if (performance.now() > deadlineAt) {
        throw new PatternDeadline(`stopped at offset ${i} of ${input.length}: the deadline passed`);
      }
    }
  }
}

function linear(source: string, root: Node): LinearPattern {
  const prog = compile(root);
  return {
    source,
    size: prog.op.length,
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
  return linear(source, new Parser(source).parse());
}

/**
 * Compiles a glob for a full match in linear time: `*` matches any run of characters
 * (`wildcard: "any"`), or one or more characters other than `.` (`"label"`, a DNS label) with
 * `**` matching one or more characters other than line terminators. Every other character
 * (UTF-16 code unit) is itself.
 */
export function compileGlob(glob: string, wildcard: "any" | "label"): LinearPattern {
  const set = (ranges: Ranges): Node => ({ kind: "set", ranges });
  const star: Node =
    wildcard === "any"
      ? { kind: "repeat", of: set(ANY), min: 0, max: -1 }
      : { kind: "repeat", of: set(complement(one(0x2e))), min: 1, max: -1 };
  const literal = (text: string): Node[] =>
    Array.from({ length: text.length }, (_, i) => set(one(text.charCodeAt(i))));
  const join = (parts: Node[][], between: Node): Node[] =>
    parts.flatMap((part, i) => (i === 0 ? part : [between, ...part]));
  const parts = wildcard === "label" ? glob.split("**") : [glob];
  const spans = parts.map((part) => join(part.split("*").map(literal), star));
  const body = join(spans, { kind: "repeat", of: set(DOT), min: 1, max: -1 });
  return linear(glob, { kind: "cat", of: body });
}
