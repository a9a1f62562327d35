/**
 * The synthesized workflows, validated with asl-validator and executed with
 * aws-local-stepfunctions. The Lambda task is bound to a stand-in that fails the way the task
 * handler does (error `name` = SPEC §6 name, message = JSON result) and is reported the way
 * Lambda reports it to Step Functions (Cause = {"errorType","errorMessage","trace"}).
 * The local interpreter runs a Distributed Map as an inline Map: ItemReader, ResultWriter and
 * ToleratedFailurePercentage are not executed locally, so the inline-items branch is what runs.
 */
import aslValidator from "asl-validator";
import { App, Duration, Stack } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import * as lambda from "aws-cdk-lib/aws-lambda";
import { describe, expect, it } from "vitest";
import { deployConfigProps } from "../../cdk/bounded-ssh-stack.ts";
import {
  DEFAULT_INLINE_HOST_LIMIT,
  HOST_NOT_SUCCEEDED,
} from "../../cdk/constructs/fleet-workflow.ts";
import {
  fleetConcurrencyCeiling,
  LAMBDA_SERVICE_ERRORS,
  Workflows,
} from "../../cdk/constructs/workflows.ts";
import { checkDeployConfig } from "../../cdk/deploy-config.ts";
import { ERROR_CLASSES } from "../../lib/errors.ts";
import type { ErrorName, Status } from "../../lib/names.ts";
import { lambdaError, localStateMachineArn, runLocally } from "./local-sfn.ts";
import { definitionOf, synthOnce } from "./synth.ts";

const { template } = synthOnce();
const single = definitionOf(template, "WorkflowsSingleHost");
const fleet = definitionOf(template, "WorkflowsFleet");

interface TaskStateAsl {
  Retry: { ErrorEquals: string[] }[];
  Catch: { ErrorEquals: string[] }[];
}

/** A task state by name, wherever it is nested (map item processors). */
function taskState(definition: Record<string, unknown>, name: string): TaskStateAsl {
  let found: TaskStateAsl | undefined;
  JSON.stringify(definition, (key, value) => {
    if (key === name && value && typeof value === "object" && "Retry" in value) found = value;
    return value;
  });
  if (!found) throw new Error(`no task state ${name}`);
  return found;
}

/** Which error a host fails with, by name prefix. */
const FAILURES: Record<string, { name: ErrorName; phase: string; status: Status }> = {
  banner: { name: "BannerTimeout", phase: "banner", status: "timed_out" },
  cmd: { name: "CommandTimeout", phase: "exec", status: "timed_out" },
  auth: { name: "AuthFailed", phase: "auth", status: "error" },
  denied: { name: "TargetNotAllowed", phase: "policy", status: "error" },
  hard: { name: "Sandbox.Timedout" as ErrorName, phase: "exec", status: "error" },
};

function resultOf(
  request: { host: string; port?: number; username: string },
  status: Status,
  phase: string,
  error?: { name: string; hop?: "via" | "target" },
) {
  return {
    requestId: `req-${request.host}`,
    status,
    target: {
      host: request.host,
      port: request.port ?? 22,
      address: "127.0.0.1",
      username: request.username,
    },
    exitCode: status === "succeeded" ? 0 : status === "failed" ? 1 : null,
    phase,
    error: error
      ? {
          name: error.name,
          phase,
          message: "x",
          retryable: false,
          commandStarted: false,
          ...(error.hop ? { hop: error.hop } : {}),
        }
      : undefined,
    timings: { bannerMs: phase === "banner" ? 3000 : 2, totalMs: 3001 },
  };
}

/** Stand-in task handler: the host name decides the outcome; calls are counted per host. */
function standIn(calls: Map<string, number>, executions: { id: string; stateMachine: string }[]) {
  return async (input: unknown) => {
    // The payload the task handler verifies: the request, and the execution context from `$$`.
    const { request, execution } = input as {
      request: { host: string; username: string };
      execution: { id: string; stateMachine: string };
    };
    executions.push(execution);
    calls.set(request.host, (calls.get(request.host) ?? 0) + 1);
    // Through a jump host: `jumpauth-*` fail at the jump host, `behindauth-*` at the target.
    const hop: "via" | "target" | undefined = request.host.startsWith("jumpauth")
      ? "via"
      : request.host.startsWith("behindauth")
        ? "target"
        : undefined;
    if (hop) {
      const failure = { name: "AuthFailed" as const, phase: "auth", hop };
      const err = new ERROR_CLASSES.AuthFailed(
        JSON.stringify(resultOf(request, "error", "auth", failure)),
        { phase: "auth", hop },
      );
      throw lambdaError(err);
    }
    const kind = Object.keys(FAILURES).find((k) => request.host.startsWith(k));
    if (request.host.startsWith("exit1")) return resultOf(request, "failed", "exec");
    if (!kind) return resultOf(request, "succeeded", "teardown");
    const failure = FAILURES[kind]!;
    if (failure.name === ("Sandbox.Timedout" as ErrorName)) {
      throw Object.assign(new Error("Task timed out after 60.00 seconds"), {
        name: "Sandbox.Timedout",
      });
    }
    const Cls = ERROR_CLASSES[failure.name];
    const err = new Cls(JSON.stringify(resultOf(request, failure.status, failure.phase, failure)), {
      phase: failure.phase as never,
    });
    throw lambdaError(err);
  };
}

async function run(
  definition: Record<string, unknown>,
  taskState: string,
  input: unknown,
  calls: Map<string, number>,
) {
  const executions: { id: string; stateMachine: string }[] = [];
  const arn = localStateMachineArn(definition === fleet ? "Test-Fleet" : "Test-SingleHost");
  const execution = await runLocally(definition, taskState, input, standIn(calls, executions), arn);
  return { ...execution, failedWith: execution.failed?.Error, executions, arn };
}

const request = { username: "ops", command: "uptime" };

describe("Lambda throttles and service errors", () => {
  it("every task retries them first, with backoff and full jitter, and the fleet child catches all", () => {
    for (const [definition, state] of [
      [single, "RunCommand"],
      [fleet, "InlineRunHost"],
      [fleet, "S3RunHost"],
    ] as const) {
      const task = taskState(definition, state);
      expect(task.Retry[0]).toEqual({
        ErrorEquals: [...LAMBDA_SERVICE_ERRORS],
        IntervalSeconds: 2,
        MaxAttempts: 6,
        BackoffRate: 2,
        MaxDelaySeconds: 60,
        JitterStrategy: "FULL",
      });
      // CommandInProgress waits out the first attempt's deadline (the task timeout), unjittered.
      const asl = task as unknown as { TimeoutSeconds: number; Retry: Record<string, unknown>[] };
      expect(asl.Retry[1]).toEqual({
        ErrorEquals: ["CommandInProgress"],
        IntervalSeconds: asl.TimeoutSeconds,
        MaxAttempts: 2,
        BackoffRate: 1,
        JitterStrategy: "NONE",
      });
      expect(asl.TimeoutSeconds).toBeGreaterThan(6);
      // No other retrier matches a Lambda error (one retrier per error, no CDK default).
      const names = task.Retry.flatMap((r) => r.ErrorEquals);
      expect(new Set(names).size).toBe(names.length);
      expect(names).not.toContain("Lambda.Unknown");
      if (definition === fleet) {
        expect(task.Catch.at(-1)).toMatchObject({ ErrorEquals: ["States.ALL"] });
      }
    }
  });

  it.each([
    ["throttled on every attempt", "Lambda.TooManyRequestsException"],
    ["a Lambda service error on every attempt", "Lambda.ServiceException"],
    ["a task-state timeout", "States.Timeout"],
  ])("a fleet child %s becomes that host's outcome; the run succeeds", async (_label, name) => {
    const calls = new Map<string, number>();
    const executions: { id: string; stateMachine: string }[] = [];
    const real = standIn(calls, executions);
    const refused = new Map<string, number>();
    const task = async (input: unknown) => {
      const { host } = (input as { request: { host: string } }).request;
      if (host !== "ok-throttled") return real(input);
      refused.set(host, (refused.get(host) ?? 0) + 1);
      throw Object.assign(new Error("Rate Exceeded."), { name });
    };
    const hosts = ["ok-1", "ok-throttled", "exit1-a", "banner-a", "cmd-a"].map((host) => ({
      host,
    }));
    const { output, failed } = await runLocally(
      fleet,
      "InlineRunHost",
      { request, hosts, maxConcurrency: 5 },
      task,
      localStateMachineArn("Test-Fleet"),
    );
    expect(failed).toBeUndefined();
    const { summary, results } = output as {
      summary: Record<string, number>;
      results: Record<string, unknown>[];
    };
    expect(summary).toEqual({
      total: 5,
      succeeded: 1,
      failed: 1,
      timed_out: 2,
      error: 1,
      notStarted: 0,
    });
    // (The local interpreter drops the Pass state's nulls: phase and requestId are null on AWS.)
    expect(results[1]).toMatchObject({ host: "ok-throttled", status: "error", error: name });
    // Lambda errors: the first attempt and 6 retries; States.Timeout is not retried.
    expect(refused.get("ok-throttled")).toBe(name === "States.Timeout" ? 1 : 7);
    expect(calls.get("ok-1")).toBe(1);
  });

  it("refuses at synth a fleet ceiling that leaves no room for single-host runs, naming both numbers", () => {
    expect(fleetConcurrencyCeiling("Test/Workflows", { taskReservedConcurrency: 50 })).toBe(40);
    expect(
      fleetConcurrencyCeiling("Test/Workflows", {
        taskReservedConcurrency: 50,
        maxConcurrencyCeiling: 45,
        singleHostHeadroom: 5,
      }),
    ).toBe(45);
    expect(() =>
      fleetConcurrencyCeiling("Test/Workflows", {
        taskReservedConcurrency: 50,
        maxConcurrencyCeiling: 50,
      }),
    ).toThrow(
      /ceiling \(50\) must stay below the task function's reserved concurrency \(50\).*at most 40.*at least 60/,
    );
    // Through the stack and the deploy config's names.
    const app = new App();
    expect(
      () =>
        new Workflows(new Stack(app, "S"), "Workflows", {
          handler: new lambda.Function(new Stack(app, "F"), "Fn", {
            runtime: lambda.Runtime.NODEJS_22_X,
            handler: "index.handler",
            code: lambda.Code.fromInline("exports.handler = async () => ({})"),
          }),
          taskTimeout: Duration.seconds(75),
          taskReservedConcurrency: 20,
          maxConcurrencyCeiling: 20,
        }),
    ).toThrow(/reservedConcurrency\.fleet.*reservedConcurrency\.task/);
  });
});

describe("state machine definitions", () => {
  it("are valid ASL", () => {
    for (const asl of [single, fleet]) {
      const { isValid, errorsText } = aslValidator(asl as never);
      expect(isValid, errorsText("\n")).toBe(true);
    }
  });
});

describe("single host, executed locally", () => {
  it("retries a BannerTimeout as configured, then catches it keeping the result", async () => {
    const calls = new Map<string, number>();
    const { failedWith, events } = await run(
      single,
      "RunCommand",
      { ...request, host: "banner-1" },
      calls,
    );
    expect(calls.get("banner-1")).toBe(3); // first attempt + MaxAttempts 2
    const retries = events.filter((e) => e.type === "StateRetried");
    expect(retries).toHaveLength(2);
    const kept = events.find((e) => e.type === "StateExited" && e.state?.name === "KeepResult");
    expect(kept?.state?.output).toMatchObject({
      error: { Error: "BannerTimeout" },
      result: { status: "timed_out", phase: "banner", timings: { bannerMs: 3000 } },
    });
    expect(failedWith).toBe("BannerTimeout");
  });

  for (const [host, name] of [
    ["cmd-1", "CommandTimeout"],
    ["auth-1", "AuthFailed"],
  ] as const) {
    it(`does not retry ${name}`, async () => {
      const calls = new Map<string, number>();
      const { failedWith, events } = await run(single, "RunCommand", { ...request, host }, calls);
      expect(calls.get(host)).toBe(1);
      expect(events.filter((e) => e.type === "StateRetried")).toHaveLength(0);
      expect(failedWith).toBe(name);
    });
  }

  it("ends a Lambda hard timeout in LambdaHardTimeout, without retrying", async () => {
    const calls = new Map<string, number>();
    const { failedWith, events } = await run(
      single,
      "RunCommand",
      { ...request, host: "hard-1" },
      calls,
    );
    expect(calls.get("hard-1")).toBe(1);
    expect(
      events.some((e) => e.type === "StateEntered" && e.state?.name === "LambdaHardTimeout"),
    ).toBe(true);
    expect(failedWith).toBe("Sandbox.Timedout");
  });

  it("returns the result of a successful session", async () => {
    const { output } = await run(single, "RunCommand", { ...request, host: "ok-1" }, new Map());
    expect(output).toMatchObject({ status: "succeeded", exitCode: 0 });
  });

  it("passes the execution context from $$, which the input cannot overwrite", async () => {
    const forged = { id: "arn:aws:states:local:000000000000:execution:Other:x", stateMachine: "x" };
    const { executions, arn } = await run(
      single,
      "RunCommand",
      { ...request, host: "ok-1", execution: forged },
      new Map(),
    );
    expect(executions).toHaveLength(1);
    expect(executions[0]!.stateMachine).toBe(arn);
    expect(executions[0]!.id).toMatch(
      /^arn:aws:states:local:000000000000:execution:Test-SingleHost:/,
    );
  });
});

describe("fleet, executed locally (inline items)", () => {
  it("summarizes 20 hosts with a few bad ones per outcome", async () => {
    const hosts = [
      ...Array.from({ length: 14 }, (_, i) => ({ host: `ok-${i}` })),
      { host: "exit1-a" },
      { host: "banner-a" },
      { host: "banner-b", port: 2222 },
      { host: "cmd-a" },
      { host: "auth-a" },
      { host: "denied-a" },
    ];
    const calls = new Map<string, number>();
    const { output, error } = await run(
      fleet,
      "InlineRunHost",
      { request, hosts, maxConcurrency: 5 },
      calls,
    );
    expect(error, String((error as Error | undefined)?.cause ?? "")).toBeUndefined();
    const { summary, results } = output as {
      summary: Record<string, number>;
      results: { host: string; status: string; error?: string; phase: string | null }[];
    };
    expect(summary).toEqual({
      total: 20,
      succeeded: 14,
      failed: 1,
      timed_out: 3,
      error: 2,
      notStarted: 0,
    });
    expect(results.find((r) => r.host === "banner-b")).toMatchObject({
      status: "timed_out",
      error: "BannerTimeout",
      phase: "banner",
    });
    expect(results.find((r) => r.host === "denied-a")).toMatchObject({
      status: "error",
      error: "TargetNotAllowed",
    });
    // Retries happened per host: 3 attempts for the retryable BannerTimeout, 1 for the rest.
    expect(calls.get("banner-a")).toBe(3);
    expect(calls.get("cmd-a")).toBe(1);
    expect(calls.get("ok-0")).toBe(1);
  });

  it.each([
    [0, 40],
    [1000, 40],
    ["100%", 5],
    ["20%", 1],
    [7, 7],
  ])(
    "runs maxConcurrency %j as %j (clamped to the ceiling) with each host's fleet context",
    async (asked, runs) => {
      const { output, error, stateOutput, executions, arn } = await run(
        fleet,
        "InlineRunHost",
        {
          request,
          hosts: [
            { host: "ok-1" },
            { host: "exit1-a" },
            { host: "banner-a" },
            { host: "denied-a" },
            { host: "cmd-a" },
          ],
          maxConcurrency: asked,
        },
        new Map(),
      );
      expect(error, String((error as Error | undefined)?.cause ?? "")).toBeUndefined();
      expect(output).toBeDefined();
      const effective = (stateOutput("ClampConcurrency") ?? stateOutput("CheckConcurrency")) as {
        maxConcurrency: unknown;
      };
      expect(effective.maxConcurrency).toBe(runs);
      expect(new Set(executions.map((e) => e.stateMachine))).toEqual(new Set([arn]));
    },
  );
});

describe("fleet controls: canary batches and the failure budget (stand-in handler)", () => {
  /** 30 hosts; `bad` names the ones whose command exits 1. */
  const fleetOf = (bad: (i: number) => boolean) =>
    Array.from({ length: 30 }, (_, i) => ({ host: bad(i) ? `exit1-${i}` : `ok-${i}` }));
  type Output = {
    summary: Record<string, number>;
    ended: string;
    batches: number;
    errors: number;
    maxErrors: number;
    failures: Record<string, { host: string }[]>;
    notStarted: { host: string }[];
    results: { host: string; status: string }[];
  };

  it.each([
    // maxErrors 0: the canary's one failure exceeds it; nothing after the canary starts.
    [0, 1, 1],
    // maxErrors 1: the canary (1) and the next batch (5) ran: 6 errors > 1.
    [1, 2, 6],
    // "10%" of 30 = 3: same as 1, the second batch's errors exceed it.
    ["10%", 2, 6],
  ] as const)(
    "a wrong command everywhere with maxErrors %j stops after batch %i (%i hosts started)",
    async (maxErrors, batches, started) => {
      const calls = new Map<string, number>();
      const hosts = fleetOf(() => true);
      const { output, error } = await run(
        fleet,
        "InlineRunHost",
        { request, hosts, batches: [1, 5, "20%"], maxErrors, maxConcurrency: 5 },
        calls,
      );
      expect(error, String((error as Error | undefined)?.cause ?? "")).toBeUndefined();
      const out = output as Output;
      expect(out.ended).toBe("maxErrorsExceeded");
      expect(out.batches).toBe(batches);
      expect(out.errors).toBe(started);
      expect(calls.size).toBe(started);
      expect(out.summary).toEqual({
        total: 30,
        succeeded: 0,
        failed: started,
        timed_out: 0,
        error: 0,
        notStarted: 30 - started,
      });
      // The hosts never started are named, in list order, and none of them was called.
      expect(out.notStarted.map((h) => h.host)).toEqual(hosts.slice(started).map((h) => h.host));
      for (const h of out.notStarted) expect(calls.has(h.host)).toBe(false);
      expect(out.failures.failed?.map((r) => r.host)).toEqual(
        hosts.slice(0, started).map((h) => h.host),
      );
      expect(out.failures.timed_out).toEqual([]);
    },
  );

  it('runs every batch ([1, 5, "20%"]: 1, 5, 6, 6, 6, 6) while the budget holds', async () => {
    const calls = new Map<string, number>();
    // Two failures among 30: within maxErrors 2.
    const hosts = fleetOf((i) => i === 3 || i === 20);
    const { output, error, events } = await run(
      fleet,
      "InlineRunHost",
      { request, hosts, batches: [1, 5, "20%"], maxErrors: 2 },
      calls,
    );
    expect(error, String((error as Error | undefined)?.cause ?? "")).toBeUndefined();
    const out = output as Output;
    expect(out).toMatchObject({ ended: "completed", batches: 6, errors: 2, notStarted: [] });
    expect(out.summary).toEqual({
      total: 30,
      succeeded: 28,
      failed: 2,
      timed_out: 0,
      error: 0,
      notStarted: 0,
    });
    expect(out.results.map((r) => r.host)).toEqual(hosts.map((h) => h.host));
    const sizes = events
      .filter((e) => e.type === "StateExited" && e.state?.name === "TakeBatch")
      .concat(events.filter((e) => e.type === "StateExited" && e.state?.name === "TakeLastBatch"))
      .map((e) => (e.state as { output: { next: { hosts: unknown[] } } }).output.next.hosts.length);
    expect(sizes).toEqual([1, 5, 6, 6, 6, 6]);
  });

  it("counts every outcome but succeeded against the budget (timeouts, auth, policy)", async () => {
    const calls = new Map<string, number>();
    const hosts = [{ host: "ok-0" }, { host: "banner-a" }, { host: "auth-a" }, { host: "ok-1" }];
    const { output } = await run(
      fleet,
      "InlineRunHost",
      { request, hosts, batches: [2], maxErrors: 0 },
      calls,
    );
    const out = output as Output;
    expect(out).toMatchObject({ ended: "maxErrorsExceeded", errors: 1, batches: 1 });
    expect(out.notStarted).toEqual([{ host: "auth-a" }, { host: "ok-1" }]);
    expect(calls.has("auth-a")).toBe(false);
  });

  it.each([
    ["maxErrors", -1],
    ["maxErrors", "15%"],
    ["maxConcurrency", "ten"],
    ["batches", [1, 0]],
    ["batches", []],
    ["batches", [1, "30%"]],
    ["batches", [1, 2.5]],
    ["maxErrors", 0.5],
  ] as const)("refuses %s %j before any host starts", async (field, value) => {
    const calls = new Map<string, number>();
    const { failed, error } = await run(
      fleet,
      "InlineRunHost",
      { request, hosts: fleetOf(() => false), [field]: value },
      calls,
    );
    expect(failed?.Error).toBe("ValidationError");
    expect(String((error as Error).message)).toMatch(/maxErrors and maxConcurrency must be/);
    expect(calls.size).toBe(0);
  });

  it("stopped mid-run (StopExecution): no further host starts; the running ones finish", async () => {
    const calls = new Map<string, number>();
    const executions: { id: string; stateMachine: string }[] = [];
    const real = standIn(calls, executions);
    const finished: string[] = [];
    let stop: () => void = () => {};
    const hosts = Array.from({ length: 30 }, (_, i) => ({ host: `ok-${i}` }));
    const task = async (input: unknown) => {
      const { host } = (input as { request: { host: string } }).request;
      // The operator stops the execution while the second batch (ok-5 … ok-9) is running.
      if (host === "ok-7") stop();
      const result = await real(input);
      finished.push(host);
      return result;
    };
    const { error, output } = await runLocally(
      fleet,
      "InlineRunHost",
      { request, hosts, batches: [5], maxConcurrency: 5 },
      task,
      localStateMachineArn("Test-Fleet"),
      0,
      (abort) => {
        stop = abort;
      },
    );
    expect(output).toBeUndefined();
    expect((error as Error).name).toMatch(/Abort/);
    // Let anything still scheduled run, then check nothing past the second batch started.
    await new Promise((r) => setTimeout(r, 200));
    const started = [...calls.keys()];
    expect(started.length).toBeGreaterThanOrEqual(8);
    expect(started.length).toBeLessThanOrEqual(10);
    for (const h of hosts.slice(10)) expect(calls.has(h.host)).toBe(false);
    // An invocation already running is not interrupted: it ends on its own (here at once).
    expect(finished).toContain("ok-7");
  });

  it("refuses an inline list over the inline limit before any command, naming the limit and the fix", async () => {
    const calls = new Map<string, number>();
    const hosts = Array.from({ length: DEFAULT_INLINE_HOST_LIMIT + 1 }, (_, i) => ({
      host: `ok-${i}`,
    }));
    const { failed, error, events } = await run(fleet, "InlineRunHost", { request, hosts }, calls);
    expect(failed?.Error).toBe("ValidationError");
    expect(String((error as Error).message)).toContain(
      `more than ${DEFAULT_INLINE_HOST_LIMIT} hosts`,
    );
    expect(String((error as Error).message)).toContain("hostsKey");
    expect(calls.size).toBe(0);
    expect(events.some((e) => e.state?.name === "RunFleetInline")).toBe(false);
  });

  it("keeps every state of a full inline fleet (the limit, largest records) under the 256 KiB payload limit", async () => {
    // The largest records: every host fails at its jump host (errorHost + hop), long names.
    const hosts = Array.from({ length: DEFAULT_INLINE_HOST_LIMIT }, (_, i) => ({
      host: `jumpauth-${String(i).padStart(4, "0")}.app-tier.eu-west-1.compute.internal`,
      port: 2222,
    }));
    const viaRequest = { ...request, via: { host: "bastion-01.eu-west-1.example.internal" } };
    const { output, error, events } = await run(
      fleet,
      "InlineRunHost",
      { request: viaRequest, hosts, batches: [1, "10%"], maxConcurrency: 40 },
      new Map(),
    );
    expect(error, String((error as Error | undefined)?.cause ?? "")).toBeUndefined();
    const out = output as Output;
    expect(out.summary).toMatchObject({
      total: DEFAULT_INLINE_HOST_LIMIT,
      error: DEFAULT_INLINE_HOST_LIMIT,
    });
    // Top-level states only (a child's state holds one host).
    const largest = Math.max(
      ...events
        .filter((e) => e.type === "StateExited" && e.state?.output !== undefined)
        .map((e) => Buffer.byteLength(JSON.stringify(e.state?.output))),
    );
    expect(Buffer.byteLength(JSON.stringify(output))).toBeLessThanOrEqual(largest);
    console.log(
      `largest state of a ${DEFAULT_INLINE_HOST_LIMIT}-host inline fleet: ${largest} bytes`,
    );
    expect(largest).toBeLessThan(256 * 1024);
  });

  it("takes its defaults from the deploy config's fleet block, which is checked like the input", () => {
    const config = checkDeployConfig({
      stage: "t",
      fleet: { maxErrors: "5%", batches: [1, "10%"], maxConcurrency: 20, inlineHostLimit: 200 },
    });
    expect(deployConfigProps({ config } as never).fleet).toEqual(config.fleet);
    const app = new App();
    const stack = new Stack(app, "S");
    const handler = new lambda.Function(stack, "Fn", {
      runtime: lambda.Runtime.NODEJS_22_X,
      handler: "index.handler",
      code: lambda.Code.fromInline("exports.handler = async () => ({})"),
    });
    new Workflows(stack, "Workflows", {
      handler,
      taskTimeout: Duration.seconds(75),
      defaultMaxErrors: config.fleet?.maxErrors,
      defaultBatches: config.fleet?.batches,
      defaultMaxConcurrency: config.fleet?.maxConcurrency,
      inlineHostLimit: config.fleet?.inlineHostLimit,
    });
    const asl = JSON.stringify(
      Template.fromStack(stack).findResources("AWS::StepFunctions::StateMachine"),
    );
    expect(asl).toContain('\\"maxErrors\\":\\"5%\\"');
    expect(asl).toContain("more than 200 hosts");
    for (const bad of [
      { maxErrors: "15%" },
      { batches: [] },
      { batches: [0] },
      { maxConcurrency: "ten" },
      { inlineHostLimit: 0 },
    ]) {
      expect(() => checkDeployConfig({ stage: "t", fleet: bad })).toThrow(/\/fleet\//);
    }
  });

  it("refuses at synth a deploy-config default the state machine would refuse", () => {
    const app = new App();
    const stack = new Stack(app, "S");
    const handler = new lambda.Function(stack, "Fn", {
      runtime: lambda.Runtime.NODEJS_22_X,
      handler: "index.handler",
      code: lambda.Code.fromInline("exports.handler = async () => ({})"),
    });
    expect(
      () =>
        new Workflows(stack, "Workflows", {
          handler,
          taskTimeout: Duration.seconds(75),
          defaultMaxErrors: "15%",
          defaultBatches: [1, 0],
        }),
    ).toThrow(/defaultMaxErrors must be an integer >= 0 or one of 0%.*defaultBatches\[1\]/);
  });
});

describe("fleet through a jump host, executed locally", () => {
  it("attributes each host's error to the hop it happened at (errorHost, hop)", async () => {
    const via = { host: "bastion.example", port: 2222, username: "jump" };
    const hosts = [
      ...Array.from({ length: 3 }, (_, i) => ({ host: `jumpauth-${i}` })),
      { host: "behindauth-a" },
      { host: "ok-1" },
      // The local interpreter needs every outcome present (see the workflows' summary).
      { host: "exit1-a" },
      { host: "cmd-a" },
    ];
    const { output, error } = await run(
      fleet,
      "InlineRunHost",
      { request: { ...request, via }, hosts, maxConcurrency: 5 },
      new Map(),
    );
    expect(error, String((error as Error | undefined)?.cause ?? "")).toBeUndefined();
    const { results } = output as { results: Record<string, unknown>[] };
    const at = (host: string) => results.find((r) => r.host === host);
    for (let i = 0; i < 3; i++) {
      expect(at(`jumpauth-${i}`)).toMatchObject({
        host: `jumpauth-${i}`,
        status: "error",
        error: "AuthFailed",
        hop: "via",
        errorHost: "bastion.example",
      });
    }
    expect(at("behindauth-a")).toMatchObject({
      status: "error",
      error: "AuthFailed",
      hop: "target",
      errorHost: "behindauth-a",
    });
    expect(at("ok-1")).toMatchObject({ status: "succeeded" });
    expect(at("ok-1")).not.toHaveProperty("errorHost");
  });

  it("without a jump host: errorHost is the target and there is no hop", async () => {
    const { output } = await run(
      fleet,
      "InlineRunHost",
      {
        request,
        hosts: [{ host: "auth-a" }, { host: "ok-1" }, { host: "exit1-a" }, { host: "cmd-a" }],
        maxConcurrency: 5,
      },
      new Map(),
    );
    const { results } = output as { results: Record<string, unknown>[] };
    expect(results[0]).toMatchObject({ status: "error", error: "AuthFailed", errorHost: "auth-a" });
    expect(results[0]).not.toHaveProperty("hop");
  });
});

describe("one construct per state machine", () => {
  it("keeps the logical ids the workflows had in one construct (no replacement on deploy)", () => {
    // A changed logical id replaces the resource: a new state machine without its execution
    // history, a new log group. The two constructs keep theirs (the state machine is each
    // construct's `Default` child). The roles are new (one per state machine, issue 23): a
    // replaced role only moves each state machine to its own.
    const ids = (type: string) => Object.keys(template.findResources(type)).sort();
    expect(ids("AWS::StepFunctions::StateMachine")).toEqual([
      "WorkflowsFleetC4010161",
      "WorkflowsSingleHost5081E9AA",
    ]);
    expect(ids("AWS::Logs::LogGroup").filter((id) => id.startsWith("Workflows"))).toEqual([
      "WorkflowsFleetLogs65EE6571",
      "WorkflowsSingleHostLogs9BDB6D36",
    ]);
    expect(ids("AWS::IAM::Policy").filter((id) => id.startsWith("Workflows"))).toEqual([
      "WorkflowsFleetDistributedMapPolicy2CD91947",
      "WorkflowsFleetRoleDefaultPolicyEBC52526",
      "WorkflowsSingleHostRoleDefaultPolicy67B797A2",
    ]);
  });
});

/** All states of a definition by name, map item processors included. */
function allStates(asl: Record<string, unknown>): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {};
  const visit = (node: Record<string, unknown>) => {
    for (const [name, state] of Object.entries(
      (node.States ?? {}) as Record<string, Record<string, unknown>>,
    )) {
      out[name] = state;
      if (state.ItemProcessor) visit(state.ItemProcessor as Record<string, unknown>);
    }
  };
  visit(asl);
  return out;
}

describe("hostsKey fleet failure budget (maxErrors on S3 lists)", () => {
  const states = allStates(fleet);
  /** The map state a hostsKey input reaches, and its input (locally the map itself cannot run: no ItemReader). */
  const route = async (controls: Record<string, unknown>) => {
    const calls = new Map<string, number>();
    const execution = await run(
      fleet,
      "S3RunHost",
      { request, hostsKey: "inputs/prod.json", ...controls },
      calls,
    );
    const entered = execution.events
      .filter((e) => e.type === "StateEntered")
      .map((e) => e.state?.name ?? "");
    const map = entered.find((n) => n.startsWith("RunFleetFromS3"));
    const mapInput = (
      execution.events.find((e) => e.type === "StateEntered" && e.state?.name === map) as
        | { state: { input: Record<string, unknown> } }
        | undefined
    )?.state.input;
    return { ...execution, map, mapInput, calls };
  };

  it("runs a count on Step Functions' ToleratedFailureCount, a percentage on ToleratedFailurePercentage, no budget as before", () => {
    expect(states.RunFleetFromS3WithBudget).toMatchObject({
      ToleratedFailureCountPath: "$.maxErrors",
      // Never exceeded: the count is the one threshold.
      ToleratedFailurePercentage: 100,
      Catch: [
        {
          ErrorEquals: ["States.ExceedToleratedFailureThreshold"],
          ResultPath: "$.budgetError",
          Next: "S3BudgetExceeded",
        },
      ],
      ResultWriter: { Parameters: { Prefix: "fleet-results" } },
    });
    expect(states.RunFleetFromS3WithBudget).not.toHaveProperty("ToleratedFailurePercentagePath");
    expect(states.RunFleetFromS3WithPercentBudget).toMatchObject({
      ToleratedFailurePercentagePath: "$.budget.percent",
      Catch: [{ ErrorEquals: ["States.ExceedToleratedFailureThreshold"] }],
    });
    expect(states.RunFleetFromS3WithPercentBudget).not.toHaveProperty("ToleratedFailureCountPath");
    // Without a budget: exactly as before (malformed items budgeted by toleratedFailurePercentage).
    expect(states.RunFleetFromS3).toMatchObject({
      ToleratedFailurePercentagePath: "$.toleratedFailurePercentage",
    });
    expect(states.RunFleetFromS3).not.toHaveProperty("ToleratedFailureCountPath");
    expect(states.RunFleetFromS3).not.toHaveProperty("Catch");
  });

  it.each([
    [{}, "RunFleetFromS3", {}],
    [{ maxErrors: "100%" }, "RunFleetFromS3", {}],
    [{ toleratedFailurePercentage: 5 }, "RunFleetFromS3", { toleratedFailurePercentage: 5 }],
    [{ maxErrors: 0 }, "RunFleetFromS3WithBudget", { maxErrors: 0 }],
    [{ maxErrors: 25 }, "RunFleetFromS3WithBudget", { maxErrors: 25 }],
    [{ maxErrors: "0%" }, "RunFleetFromS3WithPercentBudget", { budget: { percent: 0 } }],
    [{ maxErrors: "10%" }, "RunFleetFromS3WithPercentBudget", { budget: { percent: 10 } }],
  ] as const)(
    "routes %j to %s, with the threshold its path reads",
    async (controls, map, reads) => {
      const routed = await route(controls);
      expect(routed.map).toBe(map);
      expect(routed.mapInput).toMatchObject(reads);
      expect(routed.calls.size).toBe(0);
    },
  );

  it.each([["15%"], [-1], [0.5], ["ten"], [true]])(
    "refuses maxErrors %j before any host starts",
    async (maxErrors) => {
      const routed = await route({ maxErrors });
      expect(routed.failed?.Error).toBe("ValidationError");
      expect(String((routed.error as Error).message)).toMatch(
        /maxErrors and maxConcurrency must be/,
      );
      expect(routed.map).toBeUndefined();
    },
  );

  it("takes the deploy config's default budget (fleet.maxErrors) on hostsKey fleets too", async () => {
    const app = new App();
    const stack = new Stack(app, "S");
    const handler = new lambda.Function(stack, "Fn", {
      runtime: lambda.Runtime.NODEJS_22_X,
      handler: "index.handler",
      code: lambda.Code.fromInline("exports.handler = async () => ({})"),
    });
    new Workflows(stack, "Workflows", {
      handler,
      taskTimeout: Duration.seconds(75),
      defaultMaxErrors: "5%",
    });
    const budgeted = definitionOf(Template.fromStack(stack), "WorkflowsFleet");
    const enter = async (controls: Record<string, unknown>) => {
      const calls = new Map<string, number>();
      const execution = await run(
        budgeted,
        "S3RunHost",
        { request, hostsKey: "inputs/prod.json", ...controls },
        calls,
      );
      expect(calls.size).toBe(0);
      return execution;
    };
    const byDefault = await enter({});
    const entered = byDefault.events.find(
      (e) => e.type === "StateEntered" && e.state?.name.startsWith("RunFleetFromS3"),
    ) as { state: { name: string; input: Record<string, unknown> } } | undefined;
    expect(entered?.state.name).toBe("RunFleetFromS3WithPercentBudget");
    expect(entered?.state.input).toMatchObject({ maxErrors: "5%", budget: { percent: 5 } });
    // The default budget is in force, so toleratedFailurePercentage alone is refused too.
    const conflict = await enter({ toleratedFailurePercentage: 10 });
    expect(conflict.failed?.Error).toBe("ValidationError");
    // It names the deploy config's value and the way out, which the caller didn't choose.
    expect(String((conflict.error as Error).message)).toMatch(
      /fleet\.maxErrors "5%" in its deploy config.*also give "maxErrors": "100%"/,
    );
    // "100%" in the input lifts the default budget: as before.
    const lifted = await enter({ maxErrors: "100%", toleratedFailurePercentage: 10 });
    expect(
      lifted.events.some((e) => e.type === "StateEntered" && e.state?.name === "RunFleetFromS3"),
    ).toBe(true);
  });

  it("refuses toleratedFailurePercentage beside a budget (the budget counts malformed items too)", async () => {
    const routed = await route({ maxErrors: 3, toleratedFailurePercentage: 10 });
    expect(routed.failed?.Error).toBe("ValidationError");
    expect(String((routed.error as Error).message)).toMatch(
      /Give one of maxErrors and toleratedFailurePercentage/,
    );
    expect(routed.map).toBeUndefined();
    // "100%" is no budget: toleratedFailurePercentage applies as before.
    expect((await route({ maxErrors: "100%", toleratedFailurePercentage: 10 })).map).toBe(
      "RunFleetFromS3",
    );
  });

  /** One child of the budgeted map, run as its own execution (what a Distributed Map child is). */
  const child = async (host: string) => {
    const { ProcessorConfig: _c, ...processor } = (states.RunFleetFromS3WithBudget?.ItemProcessor ??
      {}) as Record<string, unknown>;
    const calls = new Map<string, number>();
    return runLocally(
      processor,
      "S3BudgetRunHost",
      {
        request: { ...request, host },
        execution: { id: "arn:x", stateMachine: localStateMachineArn("Test-Fleet") },
      },
      standIn(calls, []),
      localStateMachineArn("Test-Fleet"),
    );
  };

  it("a child whose host succeeded succeeds with its outcome record", async () => {
    const { output, failed } = await child("ok-1");
    expect(failed).toBeUndefined();
    expect(output).toMatchObject({ host: "ok-1", status: "succeeded", phase: "teardown" });
  });

  it.each([
    ["exit1-1", { status: "failed", exitCode: 1 }],
    ["banner-1", { status: "timed_out", error: "BannerTimeout" }],
    ["auth-1", { status: "error", error: "AuthFailed", errorHost: "auth-1" }],
    ["hard-1", { status: "error", error: "Sandbox.Timedout" }],
  ] as const)(
    "a child whose host did not succeed (%s) fails HostNotSucceeded, its outcome record the Cause",
    async (host, record) => {
      const { failed } = await child(host);
      expect(failed?.Error).toBe(HOST_NOT_SUCCEEDED);
      expect(JSON.parse(String(failed?.Cause))).toMatchObject({ host, ...record });
    },
  );
});

describe("hostsKey fleet canary batches (batches on S3 lists)", () => {
  const states = allStates(fleet);
  /** Where a hostsKey input with `batches` goes (locally no ItemReader: the run ends at the reader). */
  const route = async (controls: Record<string, unknown>) => {
    const calls = new Map<string, number>();
    const execution = await run(
      fleet,
      "InlineRunHost",
      { request, hostsKey: "inputs/prod.json", ...controls },
      calls,
    );
    const entered = execution.events
      .filter((e) => e.type === "StateEntered")
      .map((e) => e.state?.name ?? "");
    const inputOf = (name: string) =>
      (
        execution.events.find((e) => e.type === "StateEntered" && e.state?.name === name) as
          | { state: { input: Record<string, unknown> } }
          | undefined
      )?.state.input;
    return { ...execution, entered, inputOf, calls };
  };

  it("reads the canary's K hosts with ReaderConfig.MaxItemsPath, children that only return their item", () => {
    expect(states.ReadCanaryHosts).toMatchObject({
      ItemReader: {
        ReaderConfig: { InputType: "JSON", MaxItemsPath: "$.s3CanaryCheck.k" },
        Parameters: { "Key.$": "$.hostsKey" },
      },
      ItemProcessor: {
        ProcessorConfig: { Mode: "DISTRIBUTED", ExecutionType: "EXPRESS" },
        StartAt: "CanaryHostItem",
        States: { CanaryHostItem: { Type: "Pass", End: true } },
      },
      ResultPath: "$.s3CanaryCheck.hosts",
    });
    expect(states.ReadCanaryHosts).not.toHaveProperty("ResultWriter");
  });

  it("runs the rest of the list as the S3 maps do, each child first skipping the canary's items (no task)", () => {
    for (const [map, processor] of [
      ["RunRestFromS3", "RestS3"],
      ["RunRestFromS3WithBudget", "RestS3Budget"],
      ["RunRestFromS3WithPercentBudget", "RestS3PercentBudget"],
    ] as const) {
      const rest = states[map] as Record<string, unknown> & {
        ItemProcessor: { StartAt: string; States: Record<string, Record<string, unknown>> };
      };
      const plain = states[map.replace("RunRestFromS3", "RunFleetFromS3")] as Record<
        string,
        unknown
      >;
      expect(rest.ItemSelector).toEqual({
        ...(plain.ItemSelector as object),
        "index.$": "$$.Map.Item.Index",
        "skip.$": "$.skip",
      });
      // Same reader, writer and concurrency as the plain run.
      for (const field of ["ItemReader", "ResultWriter", "MaxConcurrencyPath"]) {
        expect(rest[field]).toEqual(plain[field]);
      }
      expect(rest.ItemProcessor.StartAt).toBe(`${processor}SkipCanaryHost`);
      expect(rest.ItemProcessor.States[`${processor}SkipCanaryHost`]).toMatchObject({
        Type: "Choice",
        Choices: [
          {
            Variable: "$.index",
            NumericLessThanPath: "$.skip",
            Next: `${processor}CanaryHostSkipped`,
          },
        ],
        Default: `${processor}RunHost`,
      });
      expect(rest.ItemProcessor.States[`${processor}CanaryHostSkipped`]).toMatchObject({
        Type: "Pass",
        End: true,
      });
    }
    // A count budget is what the canary left of it.
    expect(states.RunRestFromS3WithBudget).toMatchObject({
      ToleratedFailureCountPath: "$.budget.left",
      ToleratedFailurePercentage: 100,
      Catch: [
        { ErrorEquals: ["States.ExceedToleratedFailureThreshold"], Next: "RestS3BudgetExceeded" },
      ],
    });
    expect(states.RunRestFromS3WithPercentBudget).toMatchObject({
      ToleratedFailurePercentagePath: "$.budget.percent",
    });
  });

  it.each([
    [{ batches: [1, 5, "100%"] }, 6, [1, 5]],
    [{ batches: [1, 5, 10], maxErrors: 0 }, 6, [1, 5]],
    [{ batches: [2, "20%"], maxErrors: "10%" }, 2, [2]],
    [{ batches: [399, 1, 7] }, 400, [399, 1]],
  ] as const)(
    "routes %j to the canary reader: K = %i hosts in batches %j",
    async (controls, k, batches) => {
      const routed = await route(controls);
      expect(routed.entered).toContain("ReadCanaryHosts");
      expect(routed.inputOf("ReadCanaryHosts")?.s3CanaryCheck).toEqual({ k, batches });
      expect(routed.calls.size).toBe(0);
    },
  );

  it.each([[[5]], [["20%"]], [["100%"]]])(
    "one batch %j on a hostsKey list is no canary: the list runs as before",
    async (batches) => {
      const routed = await route({ batches, maxErrors: 0 });
      expect(routed.entered).not.toContain("ReadCanaryHosts");
      expect(routed.entered).toContain("RunFleetFromS3WithBudget");
    },
  );

  it.each([[[0]], [[]], [["ten"]], [["30%"]], [[2.5]], ["5"], [5], [{ size: 5 }]])(
    "refuses batches %j on a hostsKey list before the list is read, as on an inline fleet",
    async (batches) => {
      const routed = await route({ batches, maxErrors: 0 });
      expect(routed.failed?.Error).toBe("ValidationError");
      expect(String((routed.error as Error).message)).toMatch(
        /maxErrors and maxConcurrency must be/,
      );
      expect(routed.entered.some((s: string) => s.includes("FromS3"))).toBe(false);
      expect(routed.calls.size).toBe(0);
    },
  );

  it.each([
    [[1, "10%", "100%"], /canary batches \(every batch but the last\) must be counts.*Give counts/],
    [["5%", 10], /canary batches \(every batch but the last\) must be counts/],
    [[300, 101, "100%"], /add up to more than 400 hosts.*Give smaller canary batches/],
    [[401, 5], /add up to more than 400 hosts/],
    [[1, 2.5, 10], /maxErrors and maxConcurrency must be/],
    [[0, 10], /maxErrors and maxConcurrency must be/],
    [[1, "30%"], /maxErrors and maxConcurrency must be/],
    [[1, 0], /maxErrors and maxConcurrency must be/],
  ])("refuses batches %j before any host starts or the list is read", async (batches, cause) => {
    const routed = await route({ batches, maxErrors: 0 });
    expect(routed.failed?.Error).toBe("ValidationError");
    expect(String((routed.error as Error).message)).toMatch(cause);
    expect(routed.entered).not.toContain("ReadCanaryHosts");
    expect(routed.calls.size).toBe(0);
  });

  it.each([
    [3, 0, 3],
    [3, 1, 2],
    [5, 5, 0],
  ])(
    "a count budget of %i after a canary with %i errors leaves %i for the rest",
    async (maxErrors, errors, left) => {
      const { Next: _next, ...pass } = states.RestS3BudgetLeft as Record<string, unknown>;
      const { output, error } = await runLocally(
        { StartAt: "Left", States: { Left: { ...pass, End: true } } },
        "none",
        { maxErrors, canary: { errors } },
        async () => ({}),
      );
      expect(error).toBeUndefined();
      expect(output).toMatchObject({ budget: { left } });
      expect(states.RestS3BudgetLeft).toMatchObject({ Next: "RunRestFromS3WithBudget" });
    },
  );

  it("refuses an input naming the canary's internal field (s3Canary) instead of obeying it", async () => {
    const routed = await route({ s3Canary: { sizes: [1, 5] } });
    expect(routed.failed?.Error).toBe("ValidationError");
    expect(String((routed.error as Error).message)).toMatch(/give batches instead/);
    expect(routed.entered).not.toContain("ReadCanaryHosts");
  });

  it("refuses toleratedFailurePercentage beside a canary's budget", async () => {
    const routed = await route({ batches: [1, 5], maxErrors: 0, toleratedFailurePercentage: 5 });
    expect(routed.failed?.Error).toBe("ValidationError");
    expect(String((routed.error as Error).message)).toMatch(
      /Give one of maxErrors and toleratedFailurePercentage/,
    );
    expect(routed.calls.size).toBe(0);
  });
});
