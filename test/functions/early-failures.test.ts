/**
 * Every failure before a session, through the real handlers (API v1 and the Step Functions
 * task): what on-call sees — the HTTP status and body, the Step Functions error name and
 * message, the audit line, the metric datums — and which reads, store calls and dials happened
 * before the refusal (the refusal order a hostile caller probes). Pinned as snapshots: the
 * file was recorded on the code before the request path became a step script (302f939) and is
 * unchanged after it.
 *
 * The breaker and idempotency stores are in-memory ports here (their DynamoDB implementations
 * run in fleet-trust.test.ts): what is pinned is the route each store error takes, not the
 * store.
 */
import { describe, expect, it } from "vitest";
import { createApiHandler } from "../../functions/api.ts";
import { unavailable } from "../../functions/credentials/credential-store.ts";
import type { PolicyDocument } from "../../functions/policy/policy.ts";
import type { Runtime } from "../../functions/runtime/runtime.ts";
import { createTaskHandler } from "../../functions/task.ts";
import { CommandInProgress, HostQuarantined, IdempotencyKeyReused } from "../../lib/errors.ts";
import {
  CALLER,
  fakeContext,
  LOOPBACK_DENY,
  taskEvent,
  testRuntime,
  v1Event,
  WORKFLOW,
} from "./support.ts";

/** A pin no known-hosts line matches. */
const PIN = `SHA256:${"A".repeat(43)}`;
/** The operator's known hosts: neither 127.0.0.1 nor 127.0.0.9 is listed. */
const KNOWN_HOSTS = `[127.0.0.5]:22 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGZha2VrZXlmYWtla2V5ZmFrZWtleWZha2VrZXk=\n`;

const POLICY: PolicyDocument = {
  denyCidrs: LOOPBACK_DENY,
  replaceDefaultDenyCidrs: true,
  rules: [
    {
      id: "loopback",
      callers: [CALLER, WORKFLOW],
      targets: { cidrs: ["127.0.0.1/32"], ports: [22, 2222], usernames: ["*"] },
      commands: { patterns: ["echo [ -~]*"] },
      credentials: ["default", "pw", "missing"],
      allowAsJumpHost: true,
    },
    {
      id: "pins",
      callers: [CALLER, WORKFLOW],
      targets: { cidrs: ["127.0.0.9/32"], ports: [22], usernames: ["*"] },
      commands: { patterns: ["echo [ -~]*"] },
      credentials: ["default", "pw"],
      allowRequestPins: true,
      allowAsJumpHost: true,
    },
  ],
};

const KEY = {
  privateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nnot-read\n-----END OPENSSH PRIVATE KEY-----\n",
};

const ok = { host: "127.0.0.1", username: "u", command: "echo hi" };

interface Scenario {
  name: string;
  input: unknown;
  /** Which entry points: the API refuses some inputs the task accepts and vice versa. */
  entry?: "api" | "task";
  caller?: string;
  setup?: (runtime: Runtime, calls: string[]) => void;
}

const quarantine =
  (hops: string[]) =>
  (runtime: Runtime, calls: string[]): void => {
    runtime.breaker = {
      check: async (host, port) => {
        calls.push(`breaker.check ${host}:${port}`);
        if (hops.includes(`${host}:${port}`)) {
          throw new HostQuarantined(`host ${host}:${port} is quarantined for 60 s more`, {
            phase: "policy",
          });
        }
      },
      record: async (result) => {
        calls.push(`breaker.record ${result.error?.name ?? result.status}`);
      },
    };
  };

const idempotencyFails =
  (err: () => Error) =>
  (runtime: Runtime, calls: string[]): void => {
    quarantine([])(runtime, calls);
    runtime.idempotency = {
      run: async (scope) => {
        calls.push(`idempotency.run ${scope.key}`);
        throw err();
      },
    };
  };

const SCENARIOS: Scenario[] = [
  { name: "input that is not a request", input: "nope" },
  { name: "a field out of range", input: { ...ok, port: 70_000 } },
  {
    name: "more output than a state carries",
    input: { ...ok, maxOutputBytes: 200_000 },
    entry: "task",
  },
  { name: "less budget than minBudgetMs", input: { ...ok, timeoutMs: 10 } },
  { name: "a command no rule allows", input: { ...ok, command: "rm -rf /" } },
  { name: "a port no rule allows", input: { ...ok, port: 23 } },
  {
    name: "a caller no rule names",
    input: ok,
    entry: "api",
    caller: "arn:aws:iam::123456789012:role/stranger",
  },
  {
    name: "a policy that can not be loaded",
    input: ok,
    setup: (runtime) => {
      runtime.policy = {
        get: async () => {
          throw new Error("AccessDenied: arn:aws:ssm:us-east-1:123456789012:parameter/secret-path");
        },
      };
    },
  },
  { name: "spill without a bucket", input: { ...ok, spill: true } },
  { name: "an idempotency key without a store", input: { ...ok, idempotencyKey: "k-1" } },
  {
    name: "a quarantined target",
    input: { ...ok, idempotencyKey: "k-q" },
    setup: (runtime, calls) => {
      quarantine(["127.0.0.1:22"])(runtime, calls);
      runtime.idempotency = {
        run: async (scope, work) => {
          calls.push(`idempotency.run ${scope.key}`);
          return { result: await work(), replayed: false };
        },
      };
    },
  },
  {
    name: "a quarantined jump host",
    input: { ...ok, via: { host: "127.0.0.1", port: 2222, username: "j" } },
    setup: quarantine(["127.0.0.1:2222"]),
  },
  {
    name: "an idempotent request still in progress",
    input: { ...ok, idempotencyKey: "k-inflight" },
    setup: idempotencyFails(
      () =>
        new CommandInProgress('a request with idempotency key "k-inflight" is still running', {
          phase: "request",
        }),
    ),
  },
  {
    name: "an idempotency key reused with another request",
    input: { ...ok, idempotencyKey: "k-reused" },
    setup: idempotencyFails(
      () =>
        new IdempotencyKeyReused('idempotency key "k-reused" was used with a different request', {
          phase: "request",
        }),
    ),
  },
  {
    name: "a credential store that does not answer",
    input: ok,
    setup: (runtime) => {
      runtime.credentials = {
        get: async (name) => {
          throw unavailable(
            name,
            "could not be read (ThrottlingException)",
            new Error("raw SDK detail"),
          );
        },
      };
    },
  },
  { name: "a credential that is not configured", input: { ...ok, credential: "missing" } },
  {
    name: "known hosts that can not be read",
    input: ok,
    setup: (runtime) => {
      runtime.knownHosts = {
        get: async () => {
          throw new Error("NoSuchKey: s3://ops-bucket/known_hosts");
        },
      };
    },
  },
  { name: "a target pin the rules do not allow", input: { ...ok, hostKey: PIN } },
  {
    name: "a target pin with a password",
    input: { ...ok, host: "127.0.0.9", credential: "pw", hostKey: PIN },
  },
  {
    name: "a jump host pin the rules do not allow",
    input: { ...ok, via: { host: "127.0.0.1", port: 2222, username: "j", hostKey: PIN } },
  },
  {
    name: "a jump host pin with a password",
    input: { ...ok, via: { host: "127.0.0.9", username: "j", credential: "pw", hostKey: PIN } },
  },
];

/** Values that differ run to run (ids, clocks, durations) replaced by their kind. */
function stable(value: unknown, key = ""): unknown {
  if (Array.isArray(value)) return value.map((v) => stable(v));
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, stable(v, k)]),
    );
  }
  if (typeof value === "number" && /(Ms|Seconds)$/.test(key)) return "<ms>";
  if (typeof value === "string") {
    if (key === "requestId" || key === "time" || key === "correlation_id") return `<${key}>`;
    return value
      .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, "<uuid>")
      .replace(/"(requestId|time)":"[^"]*"/g, '"$1":"<$1>"')
      .replace(/"(\w+Ms)":[0-9.-]+/g, '"$1":"<ms>"')
      .replace(/only -?\d+ ms left/g, "only <n> ms left");
  }
  return value;
}

function setupRuntime(scenario: Scenario) {
  const calls: string[] = [];
  const { runtime, captured } = testRuntime({
    policy: POLICY,
    credentials: { default: KEY, pw: { password: "hunter2" } },
    knownHosts: KNOWN_HOSTS,
    lookup: async (host) => {
      calls.push(`dial ${host}`);
      throw new Error("no dial in this test");
    },
  });
  scenario.setup?.(runtime, calls);
  const { credentials, knownHosts } = runtime;
  runtime.credentials = {
    get: (name, options) => {
      calls.push(`credentials.get ${name}`);
      return credentials.get(name, options);
    },
  };
  runtime.knownHosts = {
    get: (options) => {
      calls.push("knownHosts.get");
      return knownHosts.get(options);
    },
  };
  return { runtime, captured, calls };
}

function observed(captured: ReturnType<typeof setupRuntime>["captured"], calls: string[]) {
  return {
    calls,
    audit: stable(captured.audits),
    // One line a datum: name{dimensions} unit=value (durations as <ms>).
    metrics: captured.metrics.flat().map((d) => {
      const dims = Object.entries(d.dimensions)
        .map(([k, v]) => `${k}=${v}`)
        .join(",");
      return `${d.name}{${dims}} ${d.unit}=${d.unit === "Milliseconds" ? "<ms>" : d.value}`;
    }),
  };
}

describe("failures before a session, as on-call and the caller see them", () => {
  it.each(SCENARIOS.filter((s) => s.entry !== "task"))("API: $name", async (scenario) => {
    const { runtime, captured, calls } = setupRuntime(scenario);
    const response = await createApiHandler(runtime)(
      v1Event(JSON.stringify(scenario.input), scenario.caller ? { caller: scenario.caller } : {}),
      fakeContext({ timeoutMs: 20_000 }),
    );
    const body = JSON.parse(response.body) as Record<string, unknown>;
    expect(JSON.stringify(body)).not.toMatch(
      /hunter2|secret-path|raw SDK detail|NoSuchKey|at .*\.ts:/,
    );
    expect({
      statusCode: response.statusCode,
      body: stable(body),
      ...observed(captured, calls),
    }).toMatchSnapshot();
  });

  it.each(SCENARIOS.filter((s) => s.entry !== "api"))("task: $name", async (scenario) => {
    const { runtime, captured, calls } = setupRuntime(scenario);
    const thrown = await createTaskHandler(runtime)(
      taskEvent(scenario.input),
      fakeContext({ timeoutMs: 20_000 }),
    ).then(
      () => expect.unreachable("the task must fail"),
      (err: unknown) => err as Error,
    );
    expect(thrown.message).not.toMatch(/hunter2|secret-path|raw SDK detail|NoSuchKey|at .*\.ts:/);
    expect({
      name: thrown.name,
      message: stable(JSON.parse(thrown.message)),
      ...observed(captured, calls),
    }).toMatchSnapshot();
  });
});
