import { describe, expect, it } from "vitest";
import { createApiHandler } from "../../functions/api.ts";
import { createTaskHandler } from "../../functions/task.ts";
import {
  fakeContext,
  loopbackPolicy,
  taskEvent,
  testRuntime,
  v1Event,
  v2Event,
} from "./support.ts";

// Deterministic PRNG: a failing case can be replayed from its index.
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const valid = { host: "127.0.0.1", port: 22, username: "ops", command: "echo hi" };

type Category =
  | "wrong-type"
  | "huge-value"
  | "control-chars"
  | "prototype-keys"
  | "unknown-field"
  | "missing-field"
  | "out-of-range"
  | "truncated-json"
  | "not-json"
  | "wrong-content-type"
  | "oversized-body"
  | "not-an-object";

interface HostileCase {
  category: Category;
  body: string;
  contentType?: string | null;
}

const WRONG_VALUES: unknown[] = [
  null,
  true,
  false,
  0,
  -1,
  1.5,
  "",
  "x",
  [],
  [1],
  {},
  { a: 1 },
  1e308,
  -0,
];
const CONTROL = ["\u0000", "\n", "\r", "\t", "\u001b[31m", "\u007f", "\u0085", "\u009b"];

function generate(count: number): HostileCase[] {
  const rand = prng(20240601);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)]!;
  const fields = Object.keys(valid) as (keyof typeof valid)[];
  const optional = [
    "credential",
    "hostKey",
    "timeoutMs",
    "maxOutputBytes",
    "stdin",
    "failOnNonZeroExit",
  ];
  const cases: HostileCase[] = [];
  const makers: Record<Category, () => HostileCase> = {
    "wrong-type": () => {
      const field = pick([...fields, ...optional]);
      const expected =
        {
          port: "number",
          timeoutMs: "number",
          maxOutputBytes: "number",
          failOnNonZeroExit: "boolean",
        }[field] ?? "string";
      let value = pick(WRONG_VALUES);
      while (typeof value === expected && !(expected === "number" && !Number.isInteger(value)))
        value = pick(WRONG_VALUES);
      if (expected === "string" && typeof value === "string") value = 42;
      return { category: "wrong-type", body: JSON.stringify({ ...valid, [field]: value }) };
    },
    "huge-value": () => {
      const field = pick(["host", "username", "command", "credential", "hostKey", "stdin"]);
      const size = {
        host: 254,
        username: 129,
        command: 16_385,
        credential: 129,
        hostKey: 8_193,
        stdin: 65_537,
      }[field]!;
      const ch = pick(["a", "é", "€", "𝄞"]);
      return {
        category: "huge-value",
        body: JSON.stringify({
          ...valid,
          [field]: ch.repeat(Math.ceil(size / ch.length) + Math.floor(rand() * 100)),
        }),
      };
    },
    "control-chars": () => {
      const field = pick(["host", "username", "command", "hostKey"]);
      const ctl = field === "command" ? "\u0000" : pick(CONTROL);
      const base =
        field === "hostKey" ? "SHA256:abc" : String(valid[field as keyof typeof valid] ?? "x");
      const at = Math.floor(rand() * (base.length + 1));
      return {
        category: "control-chars",
        body: JSON.stringify({ ...valid, [field]: base.slice(0, at) + ctl + base.slice(at) }),
      };
    },
    "prototype-keys": () => {
      const key = pick([
        "__proto__",
        "constructor",
        "prototype",
        "__defineGetter__",
        "hasOwnProperty",
        "toString",
      ]);
      const value = pick([{ polluted: true }, { isAdmin: true }, 1, "x", null]);
      // Raw text: JSON.stringify of an object literal would drop a real __proto__ key.
      const json = JSON.stringify(valid).slice(0, -1);
      return {
        category: "prototype-keys",
        body: `${json},${JSON.stringify(key)}:${JSON.stringify(value)}}`,
      };
    },
    "unknown-field": () => {
      const key = pick([
        "hosts",
        "Host",
        "cmd",
        "password",
        "privateKey",
        "secret",
        "timeout",
        "",
        " ",
        "host\u0000",
      ]);
      return { category: "unknown-field", body: JSON.stringify({ ...valid, [key]: "x" }) };
    },
    "missing-field": () => {
      const drop = pick(fields.filter((f) => f !== "port"));
      const copy: Record<string, unknown> = { ...valid };
      delete copy[drop];
      return { category: "missing-field", body: JSON.stringify(copy) };
    },
    "out-of-range": () => {
      const [field, value] = pick([
        ["port", 0],
        ["port", 65_536],
        ["port", -22],
        ["timeoutMs", 0],
        ["timeoutMs", 900_001],
        ["maxOutputBytes", -1],
        ["maxOutputBytes", 2 ** 40],
        ["command", ""],
        ["host", ""],
        ["host", "a b"],
        ["host", "exa$mple.com"],
        ["credential", "../../etc/passwd"],
        ["hostKey", "not a key"],
        ["hostKey", "SHA256:short"],
      ] as const);
      return { category: "out-of-range", body: JSON.stringify({ ...valid, [field]: value }) };
    },
    "truncated-json": () => {
      const text = JSON.stringify({ ...valid, stdin: "data" });
      return {
        category: "truncated-json",
        body: text.slice(0, 1 + Math.floor(rand() * (text.length - 2))),
      };
    },
    "not-json": () => ({
      category: "not-json",
      body: pick([
        "host=a&user=b",
        "<xml/>",
        "{'host': 'a'}",
        "{host: 1}",
        "NaN",
        "undefined",
        "\u0000",
        '{"a":1}}',
        "[1,2,",
        "0x10",
        "'x'",
      ]),
    }),
    "wrong-content-type": () => ({
      category: "wrong-content-type",
      body: JSON.stringify(valid),
      contentType: pick([
        null,
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "",
        "json",
        "application/jsonp",
      ]),
    }),
    "oversized-body": () => ({
      category: "oversized-body",
      body: JSON.stringify({ ...valid, stdin: "x".repeat(131_072 + Math.floor(rand() * 50_000)) }),
    }),
    "not-an-object": () => ({
      category: "not-an-object",
      body: pick(["null", "true", "1", '"string"', "[]", '[{"host":"a"}]', "-0", "1e999"]),
    }),
  };
  const categories = Object.keys(makers) as Category[];
  for (let i = 0; i < count; i++) cases.push(makers[categories[i % categories.length]!]());
  return cases;
}

describe("hostile requests", () => {
  it("answers every one of 1,200 hostile API requests with a 4xx naming the problem", async () => {
    // Prepare: a policy that would allow the valid request, so only validation stands in the way.
    const { runtime, captured } = testRuntime({ policy: loopbackPolicy([22]) });
    const handler = createApiHandler(runtime);
    const cases = generate(1_200);
    const counts: Record<string, Record<number, number>> = {};
    // Act
    for (const [i, c] of cases.entries()) {
      const makeEvent = i % 2 === 0 ? v1Event : v2Event;
      const response = await handler(
        makeEvent(c.body, { contentType: c.contentType }),
        fakeContext(),
      );
      // Assess
      const body = JSON.parse(response.body) as { error?: { name: string; message: string } };
      const where = `case ${i} (${c.category}): ${c.body.slice(0, 120)}`;
      expect(response.statusCode, where).toBeGreaterThanOrEqual(400);
      expect(response.statusCode, where).toBeLessThan(500);
      expect(body.error?.name, where).toBe("ValidationError");
      expect(body.error?.message.length, where).toBeGreaterThan(10);
      expect(body.error?.message.length, where).toBeLessThan(300);
      counts[c.category] ??= {};
      counts[c.category]![response.statusCode] =
        (counts[c.category]![response.statusCode] ?? 0) + 1;
    }
    const total = Object.values(counts).reduce(
      (n, byStatus) => n + Object.values(byStatus).reduce((a, b) => a + b, 0),
      0,
    );
    console.log(`hostile API requests: ${total}, by category and status:`, JSON.stringify(counts));
    expect(total).toBe(1_200);
    expect(counts["wrong-content-type"]).toEqual({ 415: 100 });
    expect(counts["oversized-body"]).toEqual({ 413: 100 });
    expect(captured.audits).toHaveLength(1_200);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it("answers 300 hostile Step Functions inputs with ValidationError, never a crash", async () => {
    const { runtime } = testRuntime({ policy: loopbackPolicy([22]) });
    const handler = createTaskHandler(runtime);
    const inputs = generate(600)
      .filter(
        (c) =>
          !["wrong-content-type", "oversized-body", "truncated-json", "not-json"].includes(
            c.category,
          ),
      )
      .slice(0, 300)
      .map((c) => JSON.parse(c.body) as unknown);
    let rejected = 0;
    for (const input of inputs) {
      try {
        await handler(taskEvent(input), fakeContext());
      } catch (err) {
        expect((err as Error).name).toBe("ValidationError");
        rejected++;
      }
    }
    console.log(`hostile Step Functions inputs: ${inputs.length}, ValidationError: ${rejected}`);
    expect(rejected).toBe(inputs.length);
  });
});
