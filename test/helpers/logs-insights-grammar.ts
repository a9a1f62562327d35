/**
 * A checker for the CloudWatch Logs Insights query language (Logs Insights QL), the subset this
 * project writes and a little more: a query the service would refuse (or silently read another
 * way) fails here first. It parses; `logs-insights-run.ts` runs the parsed commands.
 *
 * Grammar (AWS, "CloudWatch Logs Insights language query syntax", CWL_QuerySyntax*):
 *
 *   query    := command ( "|" command )*            # comments run from "#" to the line's end
 *   command  := fields   expr [as name] ( "," expr [as name] )*
 *             | display  field ( "," field )*
 *             | filter   bool
 *             | stats    agg [as name] ( "," agg [as name] )* [ by group ( "," group )* ]
 *             | sort     field [asc|desc] ( "," field [asc|desc] )*
 *             | limit    integer (1 … 10000)
 *             | parse    field ( "glob with *" as name ( "," name )* | /regex with (?<name>…)/ )
 *             | dedup    field ( "," field )*
 *             | unmask   [ "(" field ")" | field ]
 *             | pattern  expr
 *   bool     := or of and of [not] ( "(" bool ")" | expr cmp expr | expr [not] like (string|regex)
 *             | expr =~ regex | expr [not] in "[" literal, … "]" | boolean function call )
 *   expr     := arithmetic (+ - * / % ^, unary -) over numbers, "strings", 'strings', fields
 *               (`@timestamp`, `error.name`, `backtick quoted`) and function calls.
 *
 * Checked beyond the grammar: function names and arities (aggregates only in `stats`, at least
 * one per `stats` item; `pct(field, number)`; `bin(duration)`), regular expressions compile,
 * a glob's `*` count matches its names, `limit` in range, and after `stats` only its output
 * fields (aliases and `by` groups) can be sorted, displayed or filtered.
 */

/** A problem with a query, with its position (0-based offset in the text). */
export class LogsInsightsSyntaxError extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(message);
    this.name = "LogsInsightsSyntaxError";
  }
}

type TokenKind = "ident" | "field" | "string" | "number" | "duration" | "regex" | "op" | "end";

interface Token {
  kind: TokenKind;
  text: string;
  /** Decoded value of strings, regexes (pattern), backtick fields. */
  value: string;
  flags?: string;
  at: number;
}

export type Expr =
  | { t: "num"; v: number }
  | { t: "str"; v: string }
  | { t: "duration"; v: string }
  | { t: "field"; name: string }
  | { t: "call"; f: string; args: Expr[]; star?: boolean }
  | { t: "bin"; op: string; l: Expr; r: Expr }
  | { t: "neg"; e: Expr };

export type Bool =
  | { t: "and" | "or"; l: Bool; r: Bool }
  | { t: "not"; e: Bool }
  | { t: "cmp"; op: string; l: Expr; r: Expr }
  | { t: "like"; e: Expr; pattern: { regex: string; flags: string } | { text: string } }
  | { t: "in"; e: Expr; list: (string | number)[]; negated: boolean }
  | { t: "call"; call: Expr };

export type Command =
  | { cmd: "fields"; items: { e: Expr; as?: string }[] }
  | { cmd: "display"; fields: string[] }
  | { cmd: "filter"; where: Bool }
  | { cmd: "stats"; aggs: { e: Expr; as?: string }[]; by: { e: Expr; as?: string }[] }
  | { cmd: "sort"; keys: { field: string; desc: boolean }[] }
  | { cmd: "limit"; n: number }
  | { cmd: "parse"; field: string; glob?: string; regex?: string; names: string[] }
  | { cmd: "dedup"; fields: string[] }
  | { cmd: "unmask"; field?: string }
  | { cmd: "pattern"; e: Expr };

const COMMANDS = [
  "fields",
  "display",
  "filter",
  "stats",
  "sort",
  "limit",
  "parse",
  "dedup",
  "unmask",
  "pattern",
] as const;

/** Words that are never a field name where an expression starts. */
const KEYWORDS = new Set(["and", "or", "not", "in", "like", "as", "by", "asc", "desc"]);

/** Aggregate functions (stats only): name → [min, max] arguments. */
const AGGREGATES: Record<string, [number, number]> = {
  avg: [1, 1],
  count: [0, 1],
  count_distinct: [1, 1],
  max: [1, 1],
  min: [1, 1],
  pct: [2, 2],
  stddev: [1, 1],
  sum: [1, 1],
  earliest: [1, 1],
  latest: [1, 1],
  sortsFirst: [1, 1],
  sortsLast: [1, 1],
};

/** Other functions: name → [min, max] arguments (max -1: any). */
const FUNCTIONS: Record<string, [number, number]> = {
  abs: [1, 1],
  ceil: [1, 1],
  floor: [1, 1],
  greatest: [1, -1],
  least: [1, -1],
  log: [1, 1],
  sqrt: [1, 1],
  bin: [1, 1],
  datefloor: [2, 2],
  dateceil: [2, 2],
  fromMillis: [1, 1],
  toMillis: [1, 1],
  now: [0, 0],
  concat: [1, -1],
  ltrim: [1, 2],
  rtrim: [1, 2],
  trim: [1, 2],
  strlen: [1, 1],
  toupper: [1, 1],
  tolower: [1, 1],
  substr: [2, 3],
  replace: [3, 3],
  strcontains: [2, 2],
  coalesce: [1, -1],
  ispresent: [1, 1],
  isempty: [1, 1],
  isblank: [1, 1],
  isValidIp: [1, 1],
  isValidIpV4: [1, 1],
  isValidIpV6: [1, 1],
  isIpInSubnet: [2, 2],
  isIpv4InSubnet: [2, 2],
  isIpv6InSubnet: [2, 2],
  unmask: [1, 1],
  jsonParse: [1, 1],
  jsonStringify: [1, 1],
};

/** Functions that return a boolean (usable alone in `filter`). */
const BOOLEAN_FUNCTIONS = new Set([
  "ispresent",
  "isempty",
  "isblank",
  "strcontains",
  "isValidIp",
  "isValidIpV4",
  "isValidIpV6",
  "isIpInSubnet",
  "isIpv4InSubnet",
  "isIpv6InSubnet",
]);

const DURATION = /^\d+(ms|s|m|h|d|w|mo|q|y)$/;

class Lexer {
  private pos = 0;
  private buffered: Token | undefined;

  constructor(private readonly src: string) {}

  private fail(message: string, at = this.pos): never {
    throw new LogsInsightsSyntaxError(`${message} at offset ${at}`, at);
  }

  private skipSpace(): void {
    for (;;) {
      const c = this.src[this.pos];
      if (c === undefined) return;
      if (c === "#") {
        while (this.pos < this.src.length && this.src[this.pos] !== "\n") this.pos++;
      } else if (/\s/.test(c)) this.pos++;
      else return;
    }
  }

  peek(): Token {
    this.buffered ??= this.scan();
    return this.buffered;
  }

  next(): Token {
    const t = this.peek();
    this.buffered = undefined;
    return t;
  }

  /** Reads a regex literal `/…/flags` where the grammar expects one. */
  regex(): Token {
    if (this.buffered) {
      if (this.buffered.text !== "/")
        this.fail("expected a /regular expression/", this.buffered.at);
      this.pos = this.buffered.at;
      this.buffered = undefined;
    }
    this.skipSpace();
    const at = this.pos;
    if (this.src[this.pos] !== "/") this.fail("expected a /regular expression/");
    let i = this.pos + 1;
    let inClass = false;
    for (; i < this.src.length; i++) {
      const c = this.src[i];
      if (c === "\\") i++;
      else if (c === "[") inClass = true;
      else if (c === "]") inClass = false;
      else if (c === "/" && !inClass) break;
      else if (c === "\n") this.fail("unterminated regular expression", at);
    }
    if (i >= this.src.length) this.fail("unterminated regular expression", at);
    const body = this.src.slice(this.pos + 1, i);
    // No trailing flags: Logs Insights takes inline ones, e.g. /(?i)error/.
    if (/[A-Za-z]/.test(this.src[i + 1] ?? "")) {
      this.fail("a regular expression takes no trailing flags (write (?i) inside)", i + 1);
    }
    this.pos = i + 1;
    if (body === "") this.fail("empty regular expression", at);
    return { kind: "regex", text: this.src.slice(at, i + 1), value: body, flags: "", at };
  }

  private scan(): Token {
    this.skipSpace();
    const at = this.pos;
    const src = this.src;
    const c = src[at];
    if (c === undefined) return { kind: "end", text: "", value: "", at };
    if (c === '"' || c === "'") {
      let i = at + 1;
      let value = "";
      for (; i < src.length && src[i] !== c; i++) {
        if (src[i] === "\\") {
          i++;
          if (i >= src.length) break;
        }
        if (src[i] === "\n") this.fail("newline in a string literal", i);
        value += src[i];
      }
      if (i >= src.length) this.fail("unterminated string literal", at);
      this.pos = i + 1;
      return { kind: "string", text: src.slice(at, this.pos), value, at };
    }
    if (c === "`") {
      const end = src.indexOf("`", at + 1);
      if (end < 0) this.fail("unterminated `field name`", at);
      this.pos = end + 1;
      const value = src.slice(at + 1, end);
      if (value === "") this.fail("empty `field name`", at);
      return { kind: "field", text: src.slice(at, this.pos), value, at };
    }
    const number = /^\d+(\.\d+)?([a-z]+)?/.exec(src.slice(at));
    if (number) {
      this.pos = at + number[0].length;
      if (number[2] !== undefined) {
        if (!DURATION.test(number[0])) this.fail(`bad number or duration "${number[0]}"`, at);
        return { kind: "duration", text: number[0], value: number[0], at };
      }
      return { kind: "number", text: number[0], value: number[0], at };
    }
    const word = /^[@A-Za-z_][@A-Za-z0-9_]*(\.[@A-Za-z0-9_]+)*/.exec(src.slice(at));
    if (word) {
      this.pos = at + word[0].length;
      const kind = word[0].includes(".") || word[0].startsWith("@") ? "field" : "ident";
      return { kind, text: word[0], value: word[0], at };
    }
    const op = /^(=~|!=|<=|>=|[=<>|,()[\]+\-*/%^])/.exec(src.slice(at));
    if (op) {
      this.pos = at + op[0].length;
      return { kind: "op", text: op[0], value: op[0], at };
    }
    this.fail(`unexpected character ${JSON.stringify(c)}`);
  }
}

class Parser {
  private readonly lex: Lexer;

  constructor(src: string) {
    this.lex = new Lexer(src);
  }

  private fail(message: string, t: Token = this.lex.peek()): never {
    throw new LogsInsightsSyntaxError(
      `${message}, found ${t.kind === "end" ? "the end of the query" : JSON.stringify(t.text)} at offset ${t.at}`,
      t.at,
    );
  }

  private isOp(text: string): boolean {
    const t = this.lex.peek();
    return t.kind === "op" && t.text === text;
  }

  private isWord(word: string): boolean {
    const t = this.lex.peek();
    return t.kind === "ident" && t.text === word;
  }

  private expectOp(text: string): Token {
    if (!this.isOp(text)) this.fail(`expected "${text}"`);
    return this.lex.next();
  }

  private name(): string {
    const t = this.lex.peek();
    if ((t.kind === "ident" && !KEYWORDS.has(t.text)) || t.kind === "field") {
      this.lex.next();
      return t.value;
    }
    this.fail("expected a field name");
  }

  query(): Command[] {
    const commands: Command[] = [this.command()];
    while (this.isOp("|")) {
      this.lex.next();
      commands.push(this.command());
    }
    if (this.lex.peek().kind !== "end") this.fail('expected "|" or the end of the query');
    return commands;
  }

  private list<T>(item: () => T): T[] {
    const out = [item()];
    while (this.isOp(",")) {
      this.lex.next();
      out.push(item());
    }
    return out;
  }

  private aliased(): { e: Expr; as?: string } {
    const e = this.expr();
    if (this.isWord("as")) {
      this.lex.next();
      return { e, as: this.name() };
    }
    return { e };
  }

  private command(): Command {
    const t = this.lex.peek();
    if (t.kind !== "ident" || !(COMMANDS as readonly string[]).includes(t.text)) {
      this.fail(`expected a command (${COMMANDS.join(", ")})`);
    }
    this.lex.next();
    switch (t.text as (typeof COMMANDS)[number]) {
      case "fields":
        return { cmd: "fields", items: this.list(() => this.aliased()) };
      case "display":
        return { cmd: "display", fields: this.list(() => this.name()) };
      case "filter":
        return { cmd: "filter", where: this.bool() };
      case "stats": {
        const aggs = this.list(() => this.aliased());
        let by: { e: Expr; as?: string }[] = [];
        if (this.isWord("by")) {
          this.lex.next();
          by = this.list(() => this.aliased());
        }
        return { cmd: "stats", aggs, by };
      }
      case "sort":
        return {
          cmd: "sort",
          keys: this.list(() => {
            const field = this.name();
            let desc = false;
            if (this.isWord("asc") || this.isWord("desc")) desc = this.lex.next().text === "desc";
            return { field, desc };
          }),
        };
      case "limit": {
        const n = this.lex.peek();
        if (n.kind !== "number" || !/^\d+$/.test(n.text)) this.fail("limit takes an integer");
        this.lex.next();
        return { cmd: "limit", n: Number(n.text) };
      }
      case "parse": {
        const field = this.name();
        const p = this.lex.peek();
        if (p.kind === "string") {
          this.lex.next();
          if (!this.isWord("as")) this.fail('a parse glob needs "as" and names');
          this.lex.next();
          return { cmd: "parse", field, glob: p.value, names: this.list(() => this.name()) };
        }
        const re = this.lex.regex();
        return { cmd: "parse", field, regex: re.value, names: [] };
      }
      case "dedup":
        return { cmd: "dedup", fields: this.list(() => this.name()) };
      case "unmask": {
        if (this.isOp("(")) {
          this.lex.next();
          const field = this.name();
          this.expectOp(")");
          return { cmd: "unmask", field };
        }
        const n = this.lex.peek();
        if (n.kind === "field" || (n.kind === "ident" && !KEYWORDS.has(n.text))) {
          return { cmd: "unmask", field: this.name() };
        }
        return { cmd: "unmask" };
      }
      case "pattern":
        return { cmd: "pattern", e: this.expr() };
    }
  }

  // --- boolean conditions ---------------------------------------------------------------

  private bool(): Bool {
    let l = this.andBool();
    while (this.isWord("or")) {
      this.lex.next();
      l = { t: "or", l, r: this.andBool() };
    }
    return l;
  }

  private andBool(): Bool {
    let l = this.notBool();
    while (this.isWord("and")) {
      this.lex.next();
      l = { t: "and", l, r: this.notBool() };
    }
    return l;
  }

  private notBool(): Bool {
    if (this.isWord("not")) {
      this.lex.next();
      return { t: "not", e: this.notBool() };
    }
    if (this.isOp("(")) {
      // "(" starts a condition or an arithmetic expression: try the condition first.
      const save = this.snapshot();
      try {
        this.lex.next();
        const inner = this.bool();
        this.expectOp(")");
        if (!this.startsComparison()) return inner;
      } catch (err) {
        if (!(err instanceof LogsInsightsSyntaxError)) throw err;
      }
      this.restore(save);
    }
    return this.condition();
  }

  private snapshot(): Lexer {
    return Object.assign(Object.create(Object.getPrototypeOf(this.lex)), this.lex) as Lexer;
  }

  private restore(saved: Lexer): void {
    Object.assign(this.lex, saved);
  }

  private startsComparison(): boolean {
    const t = this.lex.peek();
    return (
      (t.kind === "op" && ["=", "!=", "<", "<=", ">", ">=", "=~"].includes(t.text)) ||
      (t.kind === "ident" && ["like", "in"].includes(t.text))
    );
  }

  private condition(): Bool {
    const l = this.expr();
    const t = this.lex.peek();
    if (t.kind === "op" && ["=", "!=", "<", "<=", ">", ">="].includes(t.text)) {
      this.lex.next();
      return { t: "cmp", op: t.text, l, r: this.expr() };
    }
    if (t.kind === "op" && t.text === "=~") {
      this.lex.next();
      const re = this.lex.regex();
      return { t: "like", e: l, pattern: { regex: re.value, flags: re.flags ?? "" } };
    }
    let negated = false;
    if (this.isWord("not")) {
      this.lex.next();
      negated = true;
      if (!this.isWord("like") && !this.isWord("in"))
        this.fail('expected "like" or "in" after "not"');
    }
    if (this.isWord("like")) {
      this.lex.next();
      const p = this.lex.peek();
      const like: Bool =
        p.kind === "string"
          ? { t: "like", e: l, pattern: { text: this.lex.next().value } }
          : (() => {
              const re = this.lex.regex();
              return {
                t: "like" as const,
                e: l,
                pattern: { regex: re.value, flags: re.flags ?? "" },
              };
            })();
      return negated ? { t: "not", e: like } : like;
    }
    if (this.isWord("in")) {
      this.lex.next();
      this.expectOp("[");
      const list: (string | number)[] = [];
      if (!this.isOp("]")) {
        for (;;) {
          const v = this.lex.next();
          if (v.kind === "string") list.push(v.value);
          else if (v.kind === "number") list.push(Number(v.text));
          else this.fail("expected a string or number in the list", v);
          if (!this.isOp(",")) break;
          this.lex.next();
        }
      }
      this.expectOp("]");
      return { t: "in", e: l, list, negated };
    }
    if (l.t === "call" && BOOLEAN_FUNCTIONS.has(l.f)) return { t: "call", call: l };
    this.fail("expected a comparison (=, !=, <, <=, >, >=, =~, like, in) or a boolean function");
  }

  // --- expressions ----------------------------------------------------------------------

  expr(): Expr {
    let l = this.term();
    while (this.isOp("+") || this.isOp("-")) {
      const op = this.lex.next().text;
      l = { t: "bin", op, l, r: this.term() };
    }
    return l;
  }

  private term(): Expr {
    let l = this.power();
    while (this.isOp("*") || this.isOp("/") || this.isOp("%")) {
      const op = this.lex.next().text;
      l = { t: "bin", op, l, r: this.power() };
    }
    return l;
  }

  private power(): Expr {
    const l = this.unary();
    if (this.isOp("^")) {
      this.lex.next();
      return { t: "bin", op: "^", l, r: this.power() };
    }
    return l;
  }

  private unary(): Expr {
    if (this.isOp("-")) {
      this.lex.next();
      return { t: "neg", e: this.unary() };
    }
    return this.primary();
  }

  private primary(): Expr {
    const t = this.lex.peek();
    if (t.kind === "number") {
      this.lex.next();
      return { t: "num", v: Number(t.text) };
    }
    if (t.kind === "string") {
      this.lex.next();
      return { t: "str", v: t.value };
    }
    if (t.kind === "duration") {
      this.lex.next();
      return { t: "duration", v: t.value };
    }
    if (t.kind === "op" && t.text === "(") {
      this.lex.next();
      const e = this.expr();
      this.expectOp(")");
      return e;
    }
    if (t.kind === "ident" && !KEYWORDS.has(t.text)) {
      this.lex.next();
      if (this.isOp("(")) return this.call(t);
      return { t: "field", name: t.value };
    }
    if (t.kind === "field") {
      this.lex.next();
      return { t: "field", name: t.value };
    }
    this.fail("expected a value, a field or a function call");
  }

  private call(name: Token): Expr {
    this.expectOp("(");
    const f = name.text;
    const arity = AGGREGATES[f] ?? FUNCTIONS[f];
    if (!arity) this.fail(`unknown function ${f}()`, name);
    if (f === "count" && this.isOp("*")) {
      this.lex.next();
      this.expectOp(")");
      return { t: "call", f, args: [], star: true };
    }
    const args: Expr[] = [];
    if (!this.isOp(")")) args.push(...this.list(() => this.expr()));
    this.expectOp(")");
    const [min, max] = arity;
    if (args.length < min || (max >= 0 && args.length > max)) {
      this.fail(
        `${f}() takes ${min === max ? min : `${min} to ${max < 0 ? "any" : max}`} argument(s), got ${args.length}`,
        name,
      );
    }
    if (f === "bin" && args[0]?.t !== "duration")
      this.fail("bin() takes a duration (e.g. 5m)", name);
    if (f === "pct" && args[1]?.t !== "num") this.fail("pct() takes a field and a number", name);
    return { t: "call", f, args };
  }
}

// --- checks beyond the grammar ----------------------------------------------------------

function walk(e: Expr, visit: (e: Expr) => void): void {
  visit(e);
  if (e.t === "call") for (const a of e.args) walk(a, visit);
  if (e.t === "bin") {
    walk(e.l, visit);
    walk(e.r, visit);
  }
  if (e.t === "neg") walk(e.e, visit);
}

function boolExprs(b: Bool): Expr[] {
  switch (b.t) {
    case "and":
    case "or":
      return [...boolExprs(b.l), ...boolExprs(b.r)];
    case "not":
      return boolExprs(b.e);
    case "cmp":
      return [b.l, b.r];
    case "like":
    case "in":
      return [b.e];
    case "call":
      return [b.call];
  }
}

function regexesOf(b: Bool): string[] {
  switch (b.t) {
    case "and":
    case "or":
      return [...regexesOf(b.l), ...regexesOf(b.r)];
    case "not":
      return regexesOf(b.e);
    case "like":
      return "regex" in b.pattern ? [b.pattern.regex] : [];
    default:
      return [];
  }
}

const hasAggregate = (e: Expr) => {
  let found = false;
  walk(e, (x) => {
    if (x.t === "call" && x.f in AGGREGATES) found = true;
  });
  return found;
};

/** Output name of a stats item or group: its alias, a field's name, else the expression's text. */
function outputName(item: { e: Expr; as?: string }, text: (e: Expr) => string): string {
  return item.as ?? (item.e.t === "field" ? item.e.name : text(item.e));
}

function exprText(e: Expr): string {
  switch (e.t) {
    case "num":
      return String(e.v);
    case "str":
      return JSON.stringify(e.v);
    case "duration":
      return e.v;
    case "field":
      return e.name;
    case "call":
      return `${e.f}(${e.star ? "*" : e.args.map(exprText).join(",")})`;
    case "bin":
      return `${exprText(e.l)}${e.op}${exprText(e.r)}`;
    case "neg":
      return `-${exprText(e.e)}`;
  }
}

function compiles(regex: string): string | undefined {
  // Logs Insights takes Java-style named groups (?<name>…) and inline (?i); JS knows the first.
  const body = regex.replace(/^\(\?i\)/, "");
  try {
    new RegExp(body);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

function semantics(commands: Command[]): string[] {
  const problems: string[] = [];
  /** Fields that exist after a stats command (undefined: any discovered field). */
  let scope: Set<string> | undefined;
  const known = (name: string) => scope === undefined || scope.has(name);
  commands.forEach((c, i) => {
    const where = `command ${i + 1} (${c.cmd})`;
    const noAggregates = (exprs: Expr[]) => {
      for (const e of exprs) {
        if (hasAggregate(e)) problems.push(`${where}: aggregate functions belong in stats`);
      }
    };
    const fieldsKnown = (exprs: Expr[]) => {
      for (const e of exprs) {
        walk(e, (x) => {
          if (x.t === "field" && !known(x.name)) {
            problems.push(`${where}: ${x.name} does not exist after stats`);
          }
        });
      }
    };
    switch (c.cmd) {
      case "fields":
        noAggregates(c.items.map((x) => x.e));
        fieldsKnown(c.items.map((x) => x.e));
        if (scope) for (const x of c.items) scope.add(outputName(x, exprText));
        break;
      case "filter": {
        const exprs = boolExprs(c.where);
        noAggregates(exprs);
        fieldsKnown(exprs);
        for (const re of regexesOf(c.where)) {
          const bad = compiles(re);
          if (bad) problems.push(`${where}: regular expression /${re}/ does not compile: ${bad}`);
        }
        break;
      }
      case "stats": {
        for (const a of c.aggs) {
          if (!hasAggregate(a.e)) {
            problems.push(`${where}: ${exprText(a.e)} is not an aggregate (count, sum, …)`);
          }
        }
        noAggregates(c.by.map((x) => x.e));
        fieldsKnown([...c.aggs, ...c.by].map((x) => x.e));
        const names = [...c.aggs, ...c.by].map((x) => outputName(x, exprText));
        const dup = names.find((n, k) => names.indexOf(n) !== k);
        if (dup) problems.push(`${where}: output field ${dup} twice`);
        scope = new Set(names);
        break;
      }
      case "sort":
        for (const k of c.keys) {
          if (!known(k.field)) problems.push(`${where}: ${k.field} does not exist after stats`);
        }
        break;
      case "display":
      case "dedup":
        for (const f of c.fields) {
          if (!known(f)) problems.push(`${where}: ${f} does not exist after stats`);
        }
        break;
      case "limit":
        if (c.n < 1 || c.n > 10_000) problems.push(`${where}: limit must be 1 to 10000`);
        break;
      case "parse":
        if (c.glob !== undefined) {
          const stars = c.glob.split("*").length - 1;
          if (stars !== c.names.length) {
            problems.push(`${where}: the glob has ${stars} "*" for ${c.names.length} name(s)`);
          }
        }
        if (c.regex !== undefined) {
          const bad = compiles(c.regex);
          if (bad) problems.push(`${where}: regular expression does not compile: ${bad}`);
          if (!/\(\?<[A-Za-z][A-Za-z0-9_]*>/.test(c.regex)) {
            problems.push(`${where}: a parse regex needs named groups (?<name>…)`);
          }
        }
        if (scope) for (const n of c.names) scope.add(n);
        break;
      case "unmask":
      case "pattern":
        break;
    }
  });
  return problems;
}

/** Parses a query; throws {@link LogsInsightsSyntaxError} naming the first problem. */
export function parseQuery(text: string): Command[] {
  if (text.trim() === "") throw new LogsInsightsSyntaxError("empty query", 0);
  const commands = new Parser(text).query();
  const problems = semantics(commands);
  if (problems.length > 0) throw new LogsInsightsSyntaxError(problems.join("; "), 0);
  return commands;
}

/** Problems of a query (empty when Logs Insights would accept it). */
export function checkQuery(text: string): string[] {
  try {
    parseQuery(text);
    return [];
  } catch (err) {
    if (err instanceof LogsInsightsSyntaxError) return [err.message];
    throw err;
  }
}
