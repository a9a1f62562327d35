/**
 * The synthesized workflows executed locally with aws-local-stepfunctions, with the Lambda task
 * bound to the REAL task handler (functions/task.ts through `createTaskHandler`, configured
 * with local mode's `localRuntime` from a config file) against loopback targets: a real OpenSSH
 * sshd, tarpits (BannerTimeout), a closed port (ConnectRefused), `sleep 30` under a short
 * `timeoutMs` (CommandTimeout) and a key sshd does not authorize (AuthFailed).
 *
 * Each task invocation gets its own Lambda-like context (10 s function timeout) and is reported
 * the way Lambda reports it to Step Functions: a returned value goes through JSON; a thrown
 * error becomes Error = its `name`, Cause = `{"errorType","errorMessage","trace"}` (the Node
 * runtime's envelope; aws-local-stepfunctions itself would use the raw message as Cause).
 * Retry waits are overridden to 0 ms; the retriers' ErrorEquals and MaxAttempts are the real ones.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_INLINE_HOST_LIMIT } from "../../cdk/constructs/fleet-workflow.ts";
import type { AuditLine } from "../../functions/audit/audit-log.ts";
import { createTaskHandler } from "../../functions/task.ts";
import { RETRYABLE_ERRORS } from "../../lib/names.ts";
import type { LocalConfig } from "../../local/local-config.ts";
import { localRuntime } from "../../local/local-config.ts";
import { LOOPBACK_DENY } from "../functions/support.ts";
import { type Adversary, closedPort, tarpit } from "../helpers/adversaries.ts";
import { asLambda as invokeAsLambda } from "../helpers/lambda-invoke.ts";
import { type SshdServer, startSshd } from "../helpers/sshd.ts";
import { localStateMachineArn, runLocally, THROTTLE_ERROR, withThrottles } from "./local-sfn.ts";
import { definitionOf, synthOnce } from "./synth.ts";

const { template } = synthOnce();
const single = definitionOf(template, "WorkflowsSingleHost");
const fleet = definitionOf(template, "WorkflowsFleet");

/** The function timeout each invocation's context counts down from. */
const FUNCTION_TIMEOUT_MS = 10_000;
/** `timeoutMs` of requests meant to time out (tarpits, `sleep 30`). */
const SHORT_MS = 1_000;
/** The policy's callers for tasks: the state machines themselves (SPEC §9). */
const SINGLE_ARN = localStateMachineArn("Test-SingleHost");
const FLEET_ARN = localStateMachineArn("Test-Fleet");
const API_CALLER = "arn:aws:iam::123456789012:role/ops-runner";
/** MaxAttempts of the task's retrier (RetrySettings default) + the first attempt. */
const RETRIED_ATTEMPTS = 3;

let sshd: SshdServer;
let tarpits: Adversary[];
let closed: Adversary;
let configDir: string;
let handler: ReturnType<typeof createTaskHandler>;
const audits: AuditLine[] = [];

beforeAll(async () => {
  // MaxStartups well above the fleet's concurrency: sshd's default (10:30:100) drops some
  // unauthenticated connections at random beyond 10, which would be a flake, not a finding.
  [sshd, closed, ...tarpits] = await Promise.all([
    startSshd({ maxStartups: "64" }),
    closedPort(),
    tarpit(),
    tarpit(),
    tarpit(),
  ]);
  configDir = await mkdtemp(path.join(os.tmpdir(), "bssh-workflows-real-"));
  const config: LocalConfig = {
    credentials: {
      default: { privateKeyFile: sshd.keys.ed25519.path },
      // A valid key that is not in authorized_keys.
      stranger: { privateKeyFile: sshd.keys.unauthorized.path },
      // Permanent credential fault: the key file does not exist.
      vanished: { privateKeyFile: path.join(os.tmpdir(), "bssh-no-such-key-file") },
    },
    knownHostsFile: sshd.knownHostsPath,
    callerArn: API_CALLER,
    policy: {
      denyCidrs: LOOPBACK_DENY,
      replaceDefaultDenyCidrs: true,
      rules: [
        {
          id: "loopback-workflows",
          callers: [SINGLE_ARN, FLEET_ARN],
          targets: {
            cidrs: ["127.0.0.0/8"],
            ports: [sshd.port, closed.port, ...tarpits.map((t) => t.port)],
            usernames: [sshd.username, "no-such-user"],
          },
          commands: { patterns: ["echo [a-z0-9-]+", "exit [0-9]+", "sleep [0-9]+"] },
          credentials: ["default", "stranger", "vanished"],
        },
      ],
    },
  };
  const configPath = path.join(configDir, "config.json");
  await writeFile(configPath, JSON.stringify(config));
  const runtime = localRuntime(configPath, {
    settings: { stateMachineArns: [SINGLE_ARN, FLEET_ARN] },
    writeAuditLine: () => {},
    observe: (_record, line) => audits.push(line),
    metrics: { mode: "emf", writeLine: () => {} },
  });
  handler = createTaskHandler(runtime);
});

afterAll(async () => {
  await Promise.all([sshd?.stop(), closed?.close(), ...(tarpits ?? []).map((t) => t.close())]);
  if (configDir) await rm(configDir, { recursive: true, force: true });
});

interface Request {
  host: string;
  port?: number;
  username: string;
  command: string;
  credential?: string;
  timeoutMs?: number;
}

/** Identifies one request in the call log (every host is 127.0.0.1). */
const keyOf = (r: Request) => `${r.port}|${r.username}|${r.credential ?? "default"}|${r.command}`;

/**
 * The real handler invoked the way Lambda invokes it for Step Functions (test/helpers/
 * lambda-invoke.ts): an invocation that outlives the function timeout is `Sandbox.Timedout`,
 * which the workflows route to LambdaHardTimeout: none of these tests may end there.
 */
function asLambda(calls: string[]) {
  return invokeAsLambda(handler, {
    timeoutMs: FUNCTION_TIMEOUT_MS,
    onEvent: (event) => calls.push(keyOf((event as { request: Request }).request)),
  });
}

async function run(definition: Record<string, unknown>, taskState: string, input: unknown) {
  const calls: string[] = [];
  const arn = definition === fleet ? FLEET_ARN : SINGLE_ARN;
  const execution = await runLocally(definition, taskState, input, asLambda(calls), arn);
  const count = (key: string) => calls.filter((c) => c === key).length;
  return { ...execution, calls, count };
}

const request = (extra: Partial<Request> = {}): Request => ({
  host: "127.0.0.1",
  port: sshd.port,
  username: sshd.username,
  command: "echo hi",
  timeoutMs: 5_000,
  ...extra,
});

describe("single host, real task handler", () => {
  it("returns the result of a healthy session as the execution output (state machine as caller)", async () => {
    const before = audits.length;
    const { output, error, calls } = await run(single, "RunCommand", request());
    expect(error).toBeUndefined();
    expect(calls).toHaveLength(1);
    expect(output).toMatchObject({
      status: "succeeded",
      exitCode: 0,
      stdout: "hi\n",
      target: { host: "127.0.0.1", port: sshd.port, username: sshd.username },
    });
    expect(audits[before]).toMatchObject({
      source: "task",
      caller: SINGLE_ARN,
      executionArn: expect.stringMatching(
        /^arn:aws:states:local:000000000000:execution:Test-SingleHost:/,
      ),
    });
  });

  it("retries a BannerTimeout as configured, then catches it keeping the result", async () => {
    const pit = tarpits[0]!;
    const req = request({ port: pit.port, timeoutMs: SHORT_MS });
    const { failed, events, count, stateOutput } = await run(single, "RunCommand", req);
    expect(RETRYABLE_ERRORS).toContain("BannerTimeout");
    expect(count(keyOf(req))).toBe(RETRIED_ATTEMPTS);
    expect(pit.accepted()).toBe(RETRIED_ATTEMPTS); // every attempt reached the tarpit
    expect(events.filter((e) => e.type === "StateRetried")).toHaveLength(RETRIED_ATTEMPTS - 1);
    // The Catch parsed the Lambda envelope and the handler's JSON message: phase and timings kept.
    const kept = stateOutput("KeepResult") as {
      error: { Error: string; Cause: string };
      result: {
        status: string;
        phase: string;
        error: { name: string; retryable: boolean };
        timings: Record<string, number | null>;
      };
    };
    expect(kept.error.Error).toBe("BannerTimeout");
    expect(JSON.parse(kept.error.Cause)).toMatchObject({ errorType: "BannerTimeout" });
    expect(kept.result).toMatchObject({
      status: "timed_out",
      phase: "banner",
      error: { name: "BannerTimeout", retryable: true, commandStarted: false },
      target: { port: pit.port, address: "127.0.0.1" },
    });
    expect(kept.result.timings.connectMs).toEqual(expect.any(Number));
    expect(kept.result.timings.bannerMs).toBeGreaterThanOrEqual(SHORT_MS * 0.5);
    expect(kept.result.timings.handshakeMs).toBeNull();
    // The execution ends in the CommandError Fail state with the SPEC name.
    expect(events.some((e) => e.type === "StateEntered" && e.state?.name === "CommandError")).toBe(
      true,
    );
    expect(failed?.Error).toBe("BannerTimeout");
  });

  it("retries a ConnectRefused (closed port) as configured, then catches it", async () => {
    const req = request({ port: closed.port });
    const { failed, count, stateOutput } = await run(single, "RunCommand", req);
    expect(count(keyOf(req))).toBe(RETRIED_ATTEMPTS);
    expect(stateOutput("KeepResult")).toMatchObject({
      result: { status: "error", phase: "connect", error: { name: "ConnectRefused" } },
    });
    expect(failed?.Error).toBe("ConnectRefused");
  });

  it("does not retry a CommandTimeout (sleep 30 under a short timeoutMs)", async () => {
    const req = request({ command: "sleep 30", timeoutMs: SHORT_MS });
    const started = Date.now();
    const { failed, events, count, stateOutput } = await run(single, "RunCommand", req);
    expect(Date.now() - started).toBeLessThan(FUNCTION_TIMEOUT_MS);
    expect(count(keyOf(req))).toBe(1);
    expect(events.filter((e) => e.type === "StateRetried")).toHaveLength(0);
    expect(stateOutput("KeepResult")).toMatchObject({
      error: { Error: "CommandTimeout" },
      result: {
        status: "timed_out",
        phase: "exec",
        error: { name: "CommandTimeout", retryable: false, commandStarted: true },
      },
    });
    expect(failed?.Error).toBe("CommandTimeout");
    // SPEC §6: "remote process stopped" — no `sleep 30` of this server survives for long.
    const until = Date.now() + 3_000;
    while (sshd.userProcesses().some((p) => p.args.includes("sleep 30")) && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(sshd.userProcesses().filter((p) => p.args.includes("sleep 30"))).toEqual([]);
  });

  it("does not retry CredentialInvalid (key file missing): one attempt, caught", async () => {
    const req = request({ credential: "vanished" });
    const { failed, events, count } = await run(single, "RunCommand", req);
    expect(RETRYABLE_ERRORS).not.toContain("CredentialInvalid");
    expect(count(keyOf(req))).toBe(1);
    expect(events.filter((e) => e.type === "StateRetried")).toHaveLength(0);
    expect(failed?.Error).toBe("CredentialInvalid");
  });

  it.each([
    ["an unauthorized key", { credential: "stranger" }],
    ["a wrong username", { username: "no-such-user" }],
  ] as const)("does not retry AuthFailed (%s)", async (_label, extra) => {
    const req = request(extra);
    const { failed, events, count, stateOutput } = await run(single, "RunCommand", req);
    expect(count(keyOf(req))).toBe(1);
    expect(events.filter((e) => e.type === "StateRetried")).toHaveLength(0);
    expect(stateOutput("KeepResult")).toMatchObject({
      result: { status: "error", phase: "auth", error: { name: "AuthFailed", retryable: false } },
    });
    expect(failed?.Error).toBe("AuthFailed");
  });
});

describe("fleet, real task handler (inline items)", () => {
  it("summarizes 20 loopback hosts by outcome", async () => {
    const [pitA, pitB] = tarpits.slice(1) as [Adversary, Adversary];
    const acceptedBefore = [pitA.accepted(), pitB.accepted()];
    // Each item names every field any item overrides: aws-local-stepfunctions 3.0.0 implements
    // States.JsonMerge as Object.assign(first, second), so the ItemSelector's merge writes each
    // item's fields into the shared $.request and they stick to the items after it (AWS
    // returns a new object). The shared request keeps what no item overrides: the username.
    const item = (extra: Partial<Request>): Partial<Request> => ({
      host: "127.0.0.1",
      port: sshd.port,
      command: "echo hi",
      credential: "default",
      timeoutMs: 5_000,
      ...extra,
    });
    const healthy = Array.from({ length: 14 }, (_, i) => item({ command: `echo ok-${i}` }));
    const tarpitA = item({ port: pitA.port, timeoutMs: SHORT_MS });
    const tarpitB = item({ port: pitB.port, timeoutMs: SHORT_MS });
    const refused = item({ port: closed.port });
    const exit3 = item({ command: "exit 3" });
    const sleeper = item({ command: "sleep 30", timeoutMs: SHORT_MS });
    const stranger = item({ credential: "stranger" });
    const hosts = [
      ...healthy.slice(0, 5),
      tarpitA,
      ...healthy.slice(5, 9),
      exit3,
      refused,
      sleeper,
      ...healthy.slice(9),
      tarpitB,
      stranger,
    ];
    expect(hosts).toHaveLength(20);
    const shared = { username: sshd.username };
    const started = Date.now();
    const { output, error, count } = await run(fleet, "InlineRunHost", {
      request: shared,
      hosts,
      maxConcurrency: 10,
    });
    const elapsed = Date.now() - started;
    expect(error, String((error as Error | undefined)?.cause ?? error ?? "")).toBeUndefined();
    const { summary, results } = output as {
      summary: Record<string, number>;
      results: {
        host: string;
        status: string;
        phase: string | null;
        error?: string;
        exitCode?: number | null;
      }[];
    };
    expect(summary).toEqual({
      total: 20,
      succeeded: 14,
      failed: 1,
      timed_out: 3,
      error: 2,
      notStarted: 0,
    });

    // Results keep item order: check each non-healthy entry's outcome record.
    const at = (host: Partial<Request>) => results[hosts.indexOf(host)];
    for (const pit of [tarpitA, tarpitB]) {
      expect(at(pit)).toMatchObject({
        status: "timed_out",
        phase: "banner",
        error: "BannerTimeout",
      });
    }
    expect(at(refused)).toMatchObject({
      status: "error",
      phase: "connect",
      error: "ConnectRefused",
    });
    expect(at(sleeper)).toMatchObject({
      status: "timed_out",
      phase: "exec",
      error: "CommandTimeout",
    });
    expect(at(exit3)).toMatchObject({ status: "failed", exitCode: 3 });
    expect(at(stranger)).toMatchObject({ status: "error", phase: "auth", error: "AuthFailed" });
    for (const h of healthy) expect(at(h)).toMatchObject({ status: "succeeded", exitCode: 0 });

    // Attempts per host: the retryable errors 3, everything else 1.
    const key = (host: Partial<Request>) => keyOf({ ...shared, ...host } as Request);
    expect([pitA.accepted() - acceptedBefore[0]!, pitB.accepted() - acceptedBefore[1]!]).toEqual([
      RETRIED_ATTEMPTS,
      RETRIED_ATTEMPTS,
    ]);
    expect(count(key(tarpitA))).toBe(RETRIED_ATTEMPTS);
    expect(count(key(refused))).toBe(RETRIED_ATTEMPTS);
    for (const once of [sleeper, stranger, exit3, ...healthy]) expect(count(key(once))).toBe(1);
    // Concurrency 10: the slowest host (a tarpit, 3 × 1 s) bounds the run, not the sum.
    expect(elapsed).toBeLessThan(15_000);
  });
});

describe("fleet, throttles injected at the Lambda boundary (real task handler)", () => {
  /** Lambda throttle retries of a task: the first attempt plus `maxAttempts` (6) retries. */
  const THROTTLE_ATTEMPTS = 7;

  const item = (extra: Partial<Request>): Partial<Request> => ({
    host: "127.0.0.1",
    port: sshd.port,
    command: "echo hi",
    credential: "default",
    timeoutMs: 5_000,
    ...extra,
  });

  it.each([
    ["once (absorbed by the retry)", 1, "succeeded"],
    ["on every attempt (beyond the retries)", Number.POSITIVE_INFINITY, "error"],
  ] as const)(
    "a host throttled %s never fails the run; the other hosts' results are kept",
    async (_label, times, outcome) => {
      const shared = { username: sshd.username };
      // Every outcome is present (the local interpreter's `[?()]` filter fails on no match).
      const throttledHost = item({ command: "echo throttled" });
      const hosts =
        outcome === "succeeded"
          ? [
              throttledHost,
              item({ command: "exit 3" }),
              item({ command: "sleep 30", timeoutMs: SHORT_MS }),
              item({ port: closed.port }),
            ]
          : [
              throttledHost,
              item({ command: "echo ok" }),
              item({ command: "exit 3" }),
              item({ command: "sleep 30", timeoutMs: SHORT_MS }),
            ];
      const calls: string[] = [];
      const target = keyOf({ ...shared, ...throttledHost } as Request);
      const injected = withThrottles(
        asLambda(calls),
        (event) => keyOf((event as { request: Request }).request),
        (key, attempt) => key === target && attempt <= times,
      );
      const { output, error, failed, events } = await runLocally(
        fleet,
        "InlineRunHost",
        { request: shared, hosts, maxConcurrency: 4 },
        injected.task,
        FLEET_ARN,
      );
      expect(failed, JSON.stringify(failed)).toBeUndefined();
      expect(error, String((error as Error | undefined)?.cause ?? error ?? "")).toBeUndefined();
      const { summary, results } = output as {
        summary: Record<string, number>;
        results: { host: string; status: string; phase: string | null; error?: string }[];
      };
      expect(summary.total).toBe(4);
      expect(results).toHaveLength(4);
      const retried = events.filter(
        (e) => e.type === "StateRetried" && e.state?.name === "InlineRunHost",
      );
      if (outcome === "succeeded") {
        // The throttle was retried and the host ran: all four real results.
        expect(injected.refused()).toBe(1);
        expect(results.map((r) => r.status)).toEqual(["succeeded", "failed", "timed_out", "error"]);
        expect(results[3]).toMatchObject({ phase: "connect", error: "ConnectRefused" });
      } else {
        // Every attempt throttled: the host's outcome names the throttle; the others ran.
        expect(injected.refused()).toBe(THROTTLE_ATTEMPTS);
        expect(calls.filter((c) => c === target)).toEqual([]);
        // (The local interpreter drops the outcome's nulls: phase and requestId are null on AWS.)
        expect(results[0]).toMatchObject({
          host: "127.0.0.1",
          status: "error",
          error: THROTTLE_ERROR,
        });
        expect(results.slice(1).map((r) => r.status)).toEqual(["succeeded", "failed", "timed_out"]);
      }
      expect(retried.length).toBeGreaterThanOrEqual(injected.refused() === 1 ? 1 : 6);
    },
  );
});

describe("fleet controls with the real task handler: a wrong command stops at the canary", () => {
  /** 30 hosts running `exit 1` (told apart by their timeoutMs: every host is this sshd). */
  const fleetOf30 = () =>
    Array.from({ length: 30 }, (_, i) => ({
      host: "127.0.0.1",
      port: sshd.port,
      command: "exit 1",
      credential: "default",
      timeoutMs: 5_000 + i,
    }));
  type Output = {
    summary: Record<string, number>;
    ended: string;
    batches: number;
    errors: number;
    failures: { failed: { status: string; exitCode: number }[] };
    notStarted: ReturnType<typeof fleetOf30>;
    results: { status: string; exitCode: number }[];
  };

  it.each([
    [0, 1],
    [1, 6],
  ] as const)(
    'batches [1, 5, "20%"], maxErrors %j: %i hosts ran, the rest never started; each first invocation throttled and absorbed',
    async (maxErrors, started) => {
      const hosts = fleetOf30();
      const calls: string[] = [];
      const injected = withThrottles(
        asLambda(calls),
        (event) => String((event as { request: Request }).request.timeoutMs),
        (_key, attempt) => attempt === 1,
      );
      const { output, error, failed } = await runLocally(
        fleet,
        "InlineRunHost",
        {
          request: { username: sshd.username },
          hosts,
          batches: [1, 5, "20%"],
          maxErrors,
          maxConcurrency: 5,
        },
        injected.task,
        FLEET_ARN,
      );
      expect(failed, JSON.stringify(failed)).toBeUndefined();
      expect(error, String((error as Error | undefined)?.cause ?? error ?? "")).toBeUndefined();
      const out = output as Output;
      // Every host that started was throttled once, retried, and ran its command.
      expect(injected.refused()).toBe(started);
      expect(calls).toHaveLength(started);
      expect(out).toMatchObject({ ended: "maxErrorsExceeded", errors: started });
      expect(out.batches).toBe(started === 1 ? 1 : 2);
      expect(out.summary).toEqual({
        total: 30,
        succeeded: 0,
        failed: started,
        timed_out: 0,
        error: 0,
        notStarted: 30 - started,
      });
      expect(out.results).toHaveLength(started);
      for (const r of out.results) expect(r).toMatchObject({ status: "failed", exitCode: 1 });
      expect(out.failures.failed).toHaveLength(started);
      expect(out.notStarted).toEqual(hosts.slice(started));
    },
  );

  it("refuses an inline list over the limit before any command runs", async () => {
    const calls: string[] = [];
    const many = Array.from({ length: DEFAULT_INLINE_HOST_LIMIT + 1 }, () => fleetOf30()[0]);
    const { failed, error } = await runLocally(
      fleet,
      "InlineRunHost",
      { request: { username: sshd.username }, hosts: many },
      asLambda(calls),
      FLEET_ARN,
    );
    expect(failed?.Error).toBe("ValidationError");
    expect(String((error as Error).message)).toMatch(
      new RegExp(`more than ${DEFAULT_INLINE_HOST_LIMIT} hosts.*hostsKey`),
    );
    expect(calls).toEqual([]);
  });
});
