import { readFileSync } from "node:fs";
import { describe, expect, it, vi } from "vitest";
import { createApiHandler } from "../../functions/api.ts";
import {
  compileGlob,
  compilePattern,
  MAX_PROGRAM,
  PatternDeadline,
} from "../../functions/policy/patterns.ts";
import { Policy, type PolicyDocument } from "../../functions/policy/policy.ts";
import { checkTemplate, expandTemplate } from "../../functions/policy/templates.ts";
import type { RunRequest } from "../../lib/types.ts";
import { CALLER, fakeContext, LOOPBACK_DENY, testRuntime, v1Event } from "./support.ts";

/** What the policy meant before the linear engine: RegExp, wrapped for a full match. */
const regexp = (pattern: string, input: string) => new RegExp(`^(?:${pattern})$`).test(input);

/** Deterministic pseudo-random numbers (mulberry32), so a failure replays. */
function prng(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

const KEBAB = "[a-z0-9]+(-?[a-z0-9]+)*";
const OPS = "arn:aws:sts::123456789012:assumed-role/ops/alice";

describe("patterns: same meaning as RegExp", () => {
  // Each row: a pattern and inputs on both sides of every construct's edge.
  const table: Array<[string, string[]]> = [
    [KEBAB, ["web-1", "a--b", "", "-a", "a-", "A"]],
    ["uptime", ["uptime", "uptime ", "xuptime", "UPTIME"]],
    ["a|ab", ["ab", "a", "b", ""]],
    ["systemctl status [a-z-]+", ["systemctl status nginx", "systemctl status Nginx"]],
    // `.` is anything but \n \r U+2028 U+2029, one UTF-16 code unit at a time.
    [".", ["a", "\n", "\r", "\u2028", "\u2029", "\u0085", "😀", "\ud800", "\udfff", "é", "\0"]],
    ["..", ["😀", "ab", "a"]],
    ["[^x]{2}", ["😀", "xy", "ab"]],
    ["\\s+", [" \t\v\f\u00a0\ufeff\u3000\u1680\u2000\u200a\u202f\u205f", "\u200b", "\u0085"]],
    ["\\S", ["\u0085", " ", "\u180e", "a"]],
    ["\\d+\\D", ["12a", "١٢a", "1"]],
    ["\\w+\\W", ["a_Z9!", "é!", "ab"]],
    ["[\\d-z]+", ["1-z", "5", "y", "-"]],
    ["[a-\\d]", ["a", "-", "5", "b"]],
    ["[\\w.]+", ["a.b_C9", "a b"]],
    ["\\bfoo\\b.*", ["foo bar", "foobar", "foo"]],
    [".*\\Bo\\B.*", ["foo", "o", "xo"]],
    ["a{2,3}", ["a", "aa", "aaa", "aaaa"]],
    ["a{2,}b{0}", ["a", "aa", "aaaaa", "aab"]],
    ["a{,3}", ["a{,3}", "aaa"]],
    ["x{", ["x{"]],
    ["x{1", ["x{1"]],
    ["\\]}", ["]}"]],
    ["[]", ["", "a"]],
    ["a[]|b", ["a", "b"]],
    ["[^]", ["a", "\n", "😀", ""]],
    ["[^]+", ["😀", "a\nb"]],
    ["\\u00e9\\x41\\0\\t\\n\\r\\v\\f", ["éA\0\t\n\r\v\f"]],
    ["[\\b]\\cJ\\ca", ["\b\n\u0001"]],
    ["(?<n>ab)+c", ["ababc", "abc", "c"]],
    ["(?:ab)*?c|d??", ["ababc", "", "d"]],
    ["\\/tmp\\/\\-\\.\\*\\$", ["/tmp/-.*$"]],
    ["[\\ud800-\\udbff][\\udc00-\\udfff]", ["😀", "ab", "\ud800\udc00"]],
    ["\\ud83d\\ude00", ["😀", "\ud83d"]],
    ["[😀]", ["\ud83d", "\ude00", "😀"]],
    ["[\\u0000-\\uffff]", ["a", "\ud800", "😀"]],
    ["[^\\ud800-\\udfff]*", ["abc", "a😀"]],
    ["^a$", ["a", "ab"]],
    ["a$|b", ["a", "b"]],
    ["(a|)+b", ["aab", "b"]],
    ["é", ["é", "É", "e\u0301"]],
    ["[é-ë]+", ["éêë", "è"]],
    ["(?:)", ["", "a"]],
    ["a|", ["", "a", "b"]],
  ];
  it.each(table)("%j", (pattern, inputs) => {
    const linear = compilePattern(pattern);
    for (const input of inputs) {
      expect([input, linear.test(input)]).toEqual([input, regexp(pattern, input)]);
    }
  });

  it("agrees with RegExp on 3,000 generated patterns × 12 inputs", () => {
    const rand = prng(20);
    const pick = <T>(xs: readonly T[]) => xs[rand(xs.length)]!;
    const ATOMS = [
      "a",
      "b",
      "-",
      "\\.",
      ".",
      "é",
      "\\d",
      "\\w",
      "\\s",
      "\\S",
      "\\W",
      "\\D",
      "[ab]",
      "[^a]",
      "[a-c-]",
      "[\\s\\d]",
      "[^\\w]",
      "\\u00e9",
      "\\x2d",
      "\\ud83d",
      "[\\ud800-\\udfff]",
    ];
    const QUANTS = ["", "", "", "*", "+", "?", "{2}", "{0,2}", "{1,}", "*?", "+?"];
    const ASSERTS = ["^", "$", "\\b", "\\B"];
    const gen = (depth: number): string => {
      const terms: string[] = [];
      const n = 1 + rand(3);
      for (let i = 0; i < n; i++) {
        const roll = rand(10);
        if (roll === 0) terms.push(pick(ASSERTS));
        else if (roll === 1 && depth < 2) terms.push(`(${gen(depth + 1)})${pick(QUANTS)}`);
        else if (roll === 2 && depth < 2) terms.push(`(?:${gen(depth + 1)})${pick(QUANTS)}`);
        else terms.push(pick(ATOMS) + pick(QUANTS));
      }
      const alt = terms.join("");
      return rand(5) === 0 ? `${alt}|${gen(depth + 1)}` : alt;
    };
    const CHARS = ["a", "b", "c", "-", ".", " ", "_", "1", "é", "\n", "\r", "\u2028", "\u00a0"];
    const UNITS = [...CHARS, "😀", "\ud83d", "\ude00"];
    let compared = 0;
    for (let p = 0; p < 3000; p++) {
      const pattern = gen(0);
      const linear = compilePattern(pattern);
      for (let k = 0; k < 12; k++) {
        const input = Array.from({ length: rand(7) }, () => pick(UNITS)).join("");
        expect([pattern, input, linear.test(input)]).toEqual([
          pattern,
          input,
          regexp(pattern, input),
        ]);
        compared++;
      }
    }
    expect(compared).toBe(36_000);
  });
});

describe("patterns: globs keep their meaning", () => {
  const oldGlob = (glob: string, input: string) =>
    new RegExp(`^${glob.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, "[\\s\\S]*")}$`).test(
      input,
    );
  const oldHost = (glob: string, input: string) =>
    new RegExp(
      `^${glob
        .replace(/[.+?^${}()|[\]\\]/g, "\\$&")
        .split("**")
        .map((part) => part.replace(/\*/g, "[^.]+"))
        .join(".+")}$`,
      "i",
    ).test(input);
  it.each([
    ["arn:aws:iam::*:role/ops-*", ["arn:aws:iam::1:role/ops-x", "arn:aws:iam::1:role/dev", "x"]],
    ["*", ["", "anything\nat all", "😀"]],
    ["lab-*", ["lab-", "lab-1", "lab", "xlab-1"]],
    ["a+b(c)[d]$^.|?{}", ["a+b(c)[d]$^.|?{}", "aab(c)[d]$^.|?{}"]],
    // Short: RegExp backtracks O(n^5) here (100 characters took 32 s).
    ["*a*a*a*a*a*b", ["a".repeat(20), `${"a".repeat(20)}b`]],
  ])("caller glob %j", (glob, inputs) => {
    const linear = compileGlob(glob, "any");
    for (const input of inputs) expect(linear.test(input)).toBe(oldGlob(glob, input));
  });
  it("matches a glob with many stars on a long value in linear time", () => {
    const linear = compileGlob("*a*a*a*a*a*b", "any");
    expect(linear.test("a".repeat(100_000))).toBe(false);
    expect(linear.test(`${"a".repeat(100_000)}b`)).toBe(true);
  });
  it.each([
    ["*.web.example.com", ["app1.web.example.com", "a.b.web.example.com", ".web.example.com"]],
    ["**.example.com", ["a.b.example.com", "example.com", "x.example.com"]],
    ["db-*-*", ["db-1-2", "db-1", "db-1.2-3", "db---"]],
    ["*-*-*-*.example.com", [`${"a-".repeat(30)}.example.org`, "a-b-c-d.example.com"]],
  ])("host glob %j", (glob, inputs) => {
    const linear = compileGlob(glob, "label");
    for (const input of inputs) expect(linear.test(input)).toBe(oldHost(glob, input));
  });
});

describe("patterns: hostile input is matched correctly in linear time", () => {
  // Timing lives in `npm run bench -- patterns`; here only the answers.
  const hostile = (n: number) => `${"a".repeat(n - 1)}!`;
  it.each([
    [KEBAB, hostile(30), false],
    [KEBAB, "a".repeat(30), true],
    [KEBAB, "a-".repeat(15).slice(0, 29), true],
    [KEBAB, hostile(100_000), false],
    [KEBAB, `${"ab-".repeat(33_333)}a`, true],
    ["(a+)+", hostile(30), false],
    ["(a+)+!", hostile(30), true],
    ["(a|a)*", hostile(100_000), false],
    ["(a|aa)+", "a".repeat(100_000), true],
    ["(.*a){12}", hostile(30), false],
    ["(.*a){12}!", hostile(30), true],
    ["(\\w+\\s?)*", `${"word ".repeat(20_000)}!`, false],
    ["([a-z]+)*[0-9]", hostile(16_384), false],
  ])("%s on %#", (pattern, input, expected) => {
    expect(compilePattern(pattern).test(input)).toBe(expected);
  });

  const policy = new Policy({
    rules: [
      {
        id: "ops",
        callers: ["*"],
        targets: { hosts: ["*.example.com"], usernames: ["deploy"] },
        commands: { patterns: [`deploy ${KEBAB}`], templates: ["restart"] },
      },
    ],
    templates: {
      restart: {
        command: "systemctl restart {{unit}}",
        params: { unit: { type: "string", pattern: KEBAB, maxLength: 200_000 } },
      },
    },
  });
  const req = (command: string): RunRequest => ({
    host: "web.example.com",
    username: "deploy",
    command,
  });
  const refusal = (fn: () => unknown) => {
    try {
      fn();
    } catch (err) {
      return err as Error & { phase?: string };
    }
    throw new Error("expected a refusal");
  };

  it("refuses a hostile command and allows a long benign one", () => {
    expect(refusal(() => policy.authorize(OPS, req(`deploy ${hostile(30)}`)))).toMatchObject({
      name: "CommandNotAllowed",
    });
    expect(refusal(() => policy.authorize(OPS, req(`deploy ${hostile(16_000)}`)))).toMatchObject({
      name: "CommandNotAllowed",
    });
    const long = `deploy ${"ab-".repeat(5000)}z`;
    expect(policy.authorize(OPS, req(long)).command).toBe(long);
  });

  it("refuses a hostile template value and allows a benign one", () => {
    const call = (unit: string) => `template:restart ${JSON.stringify({ unit })}`;
    expect(refusal(() => policy.authorize(OPS, req(call(hostile(30)))))).toMatchObject({
      name: "CommandNotAllowed",
      message: expect.stringContaining('parameter "unit" does not match'),
    });
    expect(refusal(() => policy.authorize(OPS, req(call(hostile(100_000)))))).toMatchObject({
      name: "CommandNotAllowed",
    });
    expect(policy.authorize(OPS, req(call("web-frontend-7"))).command).toBe(
      "systemctl restart 'web-frontend-7'",
    );
  });
});

describe("patterns: the deadline stops a match", () => {
  const big = "[ab]*a[ab]{900}";
  const input = "ab".repeat(8192);

  it("throws PatternDeadline once the deadline has passed, and answers without one", () => {
    const pattern = compilePattern(big);
    expect(() => pattern.test(input, performance.now() - 1)).toThrow(PatternDeadline);
    expect(pattern.test(input)).toBe(false);
    expect(pattern.test(`${input}a${"b".repeat(900)}`)).toBe(true);
  });

  it("turns a match past the deadline into DeadlineExceeded (phase policy)", () => {
    const policy = new Policy({
      rules: [
        {
          id: "wide",
          callers: ["*"],
          targets: { hosts: ["h.example.com"], usernames: ["u"] },
          commands: { patterns: [big] },
        },
      ],
    });
    const run = { host: "h.example.com", username: "u", command: input };
    let err: (Error & { phase?: string }) | undefined;
    try {
      policy.authorize("caller", run, { deadlineAt: performance.now() - 1 });
    } catch (e) {
      err = e as Error & { phase?: string };
    }
    expect(err).toMatchObject({ name: "DeadlineExceeded", phase: "policy" });
    expect(err?.message).toContain("the policy check ran out of time");
    // Without a deadline, the same check completes and refuses by pattern.
    expect(() => policy.authorize("caller", run)).toThrow(/matches no pattern/);
  });
});

describe("patterns: the handler's deadline bounds the policy check", () => {
  it("answers DeadlineExceeded (phase policy) within the request timeout, before credentials or a connection", async () => {
    // 40 patterns that each cost a 16 KiB command ~16M steps: far more work than the
    // 1,000 ms timeout allows on any machine (650M steps), so the deadline must cut it.
    const patterns = Array.from({ length: 40 }, (_, i) => `[ab]*a[ab]{${990 - i}}`);
    const { runtime } = testRuntime({
      policy: {
        denyCidrs: LOOPBACK_DENY,
        replaceDefaultDenyCidrs: true,
        rules: [
          {
            id: "wide",
            callers: [CALLER],
            targets: { cidrs: ["127.0.0.0/8"], usernames: ["*"] },
            commands: { patterns },
          },
        ],
      },
      credentials: {},
    });
    const handler = createApiHandler(runtime);
    // Every thread stays alive to the last character, which no pattern allows.
    const command = `${"ab".repeat(8191)}cc`;
    const body = JSON.stringify({ host: "127.0.0.1", username: "u", command, timeoutMs: 1_000 });
    const started = performance.now();
    const response = await handler(v1Event(body), fakeContext());
    const elapsed = performance.now() - started;
    expect(response.statusCode).toBe(504);
    const answer = JSON.parse(response.body) as { error?: { name: string; phase: string } };
    expect(answer.error).toMatchObject({ name: "DeadlineExceeded", phase: "policy" });
    // The session budget is the request's 1,000 ms; the check stops there, not after 40 matches
    // (seconds). The margin covers a loaded 2-core machine's scheduling, not the work.
    expect(elapsed).toBeLessThan(1_000 + 750);
  });
});

describe("patterns: refused when the policy loads", () => {
  const withPattern = (pattern: string): PolicyDocument => ({
    rules: [
      {
        id: "ops",
        callers: ["*"],
        targets: { hosts: ["*.example.com"], usernames: ["deploy"] },
        commands: { patterns: ["uptime", pattern] },
      },
    ],
  });
  const withParam = (pattern: string): PolicyDocument => ({
    rules: [
      {
        callers: ["*"],
        targets: { hosts: ["*.example.com"], usernames: ["deploy"] },
        commands: { templates: ["t"] },
      },
    ],
    templates: { t: { command: "echo {{x}}", params: { x: { type: "string", pattern } } } },
  });
  const UNSUPPORTED: Array<[string, string]> = [
    ["(a)\\1", "backreference"],
    ["(?<n>a)\\k<n>", "named backreference"],
    ["(?=a)a", "lookahead"],
    ["(?!a)b", "lookahead"],
    ["(?<=a)b", "lookbehind"],
    ["(?<!a)b", "lookbehind"],
    ["\\a", "no escape"],
    ["\\p{L}", "not a Unicode property"],
    ["\\x4", "without 2 hex digits"],
    ["\\u12", "without 4 hex digits"],
    ["\\c1", "\\c without a letter"],
    ["\\8", "backreference"],
    ["\\012", "octal"],
    ["a{1001}", "counts up to 1000"],
    ["(a{100}){100}", `more than ${MAX_PROGRAM} instructions`],
    ["x{600}y{600}z", `more than ${MAX_PROGRAM} instructions`],
    ["(unclosed", "not a valid regular expression"],
    [`${"(".repeat(101)}a${")".repeat(101)}`, "nests groups more than 100 deep"],
    ["a)|(b", "not a valid regular expression"],
  ];
  it.each(UNSUPPORTED)("command pattern %j: %s", (pattern, reason) => {
    let message = "";
    try {
      new Policy(withPattern(pattern));
    } catch (err) {
      expect(err).toBeInstanceOf(TypeError);
      message = (err as Error).message;
    }
    // Names the rule, the pattern and the reason, and points at the supported syntax.
    expect(message).toContain('policy.rules[0].commands.patterns[1] (rule "ops")');
    expect(message).toContain(JSON.stringify(pattern));
    expect(message).toContain(reason);
    expect(message).toContain('docs/security.md, "Policy patterns"');
  });
  it.each(UNSUPPORTED)("template parameter pattern %j: %s", (pattern, reason) => {
    let message = "";
    try {
      new Policy(withParam(pattern));
    } catch (err) {
      expect(err).toBeInstanceOf(TypeError);
      message = (err as Error).message;
    }
    expect(message).toContain('template "t": parameter "x": "pattern"');
    expect(message).toContain(JSON.stringify(pattern));
    expect(message).toContain(reason);
  });
  it("refuses inline modifiers where RegExp has them", () => {
    let supported = true;
    try {
      /(?i:a)/;
    } catch {
      supported = false;
    }
    expect(() => new Policy(withPattern("(?i:a)"))).toThrow(
      supported ? /inline modifiers/ : /not a valid regular expression/,
    );
  });
  it("refuses a pattern that is not a string", () => {
    expect(() => new Policy(withParam(5 as never))).toThrow('"pattern" must be a string');
  });

  it.each([
    ["examples/local-config.json", (j: { policy: PolicyDocument }) => j.policy],
    ["examples/deploy/policy.json", (j: PolicyDocument) => j],
  ] as const)("loads the shipped policy %s", (file, pick) => {
    const json = JSON.parse(readFileSync(new URL(`../../${file}`, import.meta.url), "utf8"));
    expect(() => new Policy(pick(json as never))).not.toThrow();
  });
});

describe("patterns: compiled once per policy load", () => {
  it("a template's patterns are compiled by checkTemplate (at load); expanding only tests them", () => {
    const loaded = checkTemplate("t", {
      command: "echo {{x}}",
      params: { x: { type: "string", pattern: KEBAB } },
    });
    const compiled = loaded.patterns.get("x")!;
    expect(compiled.source).toBe(KEBAB);
    // expandTemplate gets the compiled pattern and the deadline, never the source to compile.
    const test = vi.fn(compiled.test);
    const spied = { ...loaded, patterns: new Map([["x", { ...compiled, test }]]) };
    expect(expandTemplate("t", spied, { x: "web-1" }, 12_345)).toBe("echo 'web-1'");
    expect(test).toHaveBeenCalledWith("web-1", 12_345);
  });
});
