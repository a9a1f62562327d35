/**
 * Idempotency and the per-host breaker against real components on loopback: a real OpenSSH
 * sshd, a DynamoDB-compatible server (dynalite) holding both tables, tarpits, and the
 * synthesized single-host state machine run locally with the real task handler. Executions
 * are counted on the sshd side: the command appends a line to a file.
 */
import { randomUUID } from "node:crypto";
import { chmodSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiHandler } from "../../functions/api.ts";
import { HostBreaker } from "../../functions/breaker/host-breaker.ts";
import { DynamoIdempotencyStore } from "../../functions/idempotency/idempotency.ts";
import type { Runtime } from "../../functions/runtime/runtime.ts";
import { createTaskHandler } from "../../functions/task.ts";
import type { RunResult } from "../../lib/types.ts";
import { lambdaError, localStateMachineArn, runLocally } from "../cdk/local-sfn.ts";
import { definitionOf, synthOnce } from "../cdk/synth.ts";
import { type Adversary, tarpit } from "../helpers/adversaries.ts";
import { type LocalDynamo, startDynalite } from "../helpers/dynalite.ts";
import { type SshdServer, startSshd } from "../helpers/sshd.ts";
import {
  CALLER,
  type Captured,
  fakeContext,
  LOOPBACK_DENY,
  taskEvent,
  testRuntime,
  v1Event,
} from "./support.ts";

const SINGLE = localStateMachineArn("Test-SingleHost");

let sshd: SshdServer;
let dynamo: LocalDynamo;
let pits: Adversary[];
let runtime: Runtime;
let captured: Captured;
let marker: string;

beforeAll(async () => {
  [sshd, dynamo, ...pits] = await Promise.all([
    startSshd(),
    startDynalite(),
    ...Array.from({ length: 5 }, () => tarpit()),
  ]);
  await dynamo.createTable("idempotency", "id", "expiration");
  await dynamo.createTable("breaker", "host", "expiresAt");
  marker = `/tmp/bssh-idem-${randomUUID()}`;
  writeFileSync(marker, "");
  chmodSync(marker, 0o666);
  const made = testRuntime({
    policy: {
      denyCidrs: LOOPBACK_DENY,
      replaceDefaultDenyCidrs: true,
      rules: [
        {
          id: "counted",
          callers: [CALLER, SINGLE],
          targets: {
            cidrs: ["127.0.0.1/32"],
            ports: [sshd.port, ...pits.map((p) => p.port)],
            usernames: [sshd.username],
          },
          commands: { templates: ["append"] },
        },
      ],
      templates: {
        // Appends one line per execution, then waits: the sshd side counts executions.
        append: {
          command: "echo {{tag}} >> {{file}} && sleep {{wait}}",
          params: {
            tag: { type: "string", pattern: "[a-z0-9-]+" },
            file: { type: "string", pattern: "/tmp/bssh-idem-[0-9a-f-]+" },
            wait: { type: "integer", minimum: 0, maximum: 5, default: 0 },
          },
        },
      },
    },
    credentials: { default: { privateKey: sshd.keys.ed25519.privateKey } },
    knownHosts: sshd.knownHostsLine,
    // A tarpit's BannerTimeout is the banner cap's (`bound: "phase"`), not the 2 s budget's:
    // only that counts against the host.
    settings: { remoteBound: false, stateMachineArns: [SINGLE], phaseCaps: { banner: 1_000 } },
  });
  runtime = made.runtime;
  captured = made.captured;
  runtime.idempotency = new DynamoIdempotencyStore({
    tableName: "idempotency",
    client: dynamo.client,
  });
  runtime.breaker = new HostBreaker({ tableName: "breaker", client: dynamo.client, threshold: 3 });
});

afterAll(async () => {
  await Promise.all([sshd?.stop(), dynamo?.close(), ...(pits ?? []).map((p) => p.close())]);
  rmSync(marker, { force: true });
});

const runs = (tag: string) =>
  readFileSync(marker, "utf8")
    .split("\n")
    .filter((line) => line === tag).length;

const append = (tag: string, extra: Record<string, unknown> = {}, wait = 0) => ({
  host: "127.0.0.1",
  port: sshd.port,
  username: sshd.username,
  command: `template:append ${JSON.stringify({ tag, file: marker, wait })}`,
  timeoutMs: 8_000,
  ...extra,
});

async function api(body: unknown) {
  const response = await createApiHandler(runtime)(
    v1Event(JSON.stringify(body)),
    fakeContext({ timeoutMs: 20_000 }),
  );
  const parsed = JSON.parse(response.body) as {
    error?: { name: string; retryable: boolean };
    result?: RunResult;
  } & Partial<RunResult>;
  return { status: response.statusCode, body: parsed };
}

describe("idempotency (Powertools + DynamoDB on dynalite)", () => {
  it("returns the recorded result for a repeat, without dialling", async () => {
    const body = append("repeat", { idempotencyKey: "k-repeat" });
    const first = await api(body);
    const second = await api(body);
    expect([first.status, second.status]).toEqual([200, 200]);
    expect(second.body.requestId).toBe(first.body.requestId);
    expect(runs("repeat")).toBe(1);
    expect(captured.audits.at(-1)).toMatchObject({ idempotency: "replayed" });
  });

  it("answers CommandInProgress (409, retryable) while the first is still running", async () => {
    const body = append("inflight", { idempotencyKey: "k-inflight" }, 2);
    const first = api(body);
    await new Promise((r) => setTimeout(r, 400));
    const second = await api(body);
    expect(second.status).toBe(409);
    expect(second.body.error).toMatchObject({ name: "CommandInProgress", retryable: true });
    expect((await first).status).toBe(200);
    expect(runs("inflight")).toBe(1);
  });

  it("answers IdempotencyKeyReused (409, not retryable) for the same key with another request", async () => {
    await api(append("reused-a", { idempotencyKey: "k-reused" }));
    const other = await api(append("reused-b", { idempotencyKey: "k-reused" }));
    expect(other.status).toBe(409);
    expect(other.body.error).toMatchObject({ name: "IdempotencyKeyReused", retryable: false });
    expect(runs("reused-b")).toBe(0);
  });

  it("keeps the key per caller: another caller's repeat runs its own command", async () => {
    const body = append("per-caller", { idempotencyKey: "k-caller" });
    await api(body);
    // The scope is [caller, key]: another caller's key never meets this caller's record.
    const store = runtime.idempotency!;
    const outcome = await store.run(
      { caller: "arn:aws:iam::123456789012:role/other", key: "k-caller", request: body },
      async () => ({ requestId: "other" }) as RunResult,
    );
    expect(outcome).toMatchObject({ replayed: false, result: { requestId: "other" } });
  });

  it("leaves no record when the command did not start, so the same request can run later", async () => {
    const body = append("not-started", { idempotencyKey: "k-not-started" });
    const saved = runtime.knownHosts;
    runtime.knownHosts = { get: async () => "" };
    const refused = await api(body);
    runtime.knownHosts = saved;
    expect(refused.body.error?.name).toBe("HostKeyUnknown");
    const retried = await api(body);
    expect(retried.status).toBe(200);
    expect(runs("not-started")).toBe(1);
  });

  it("runs the command once when a task dies mid-command and the workflow retries it", async () => {
    const { template } = synthOnce();
    const single = definitionOf(template, "WorkflowsSingleHost");
    const handler = createTaskHandler(runtime);
    let invocations = 0;
    const orphans: Promise<unknown>[] = [];
    const task = async (input: unknown) => {
      invocations++;
      const running = handler(
        JSON.parse(JSON.stringify(input)),
        fakeContext({ timeoutMs: 20_000 }),
      );
      if (invocations === 1) {
        // The first attempt's Lambda dies 600 ms into a 2 s command: Step Functions sees a
        // service error (retried by the task's Lambda.ServiceException retrier).
        orphans.push(running.catch(() => undefined));
        await new Promise((r) => setTimeout(r, 600));
        throw Object.assign(new Error("Lambda died"), { name: "Lambda.ServiceException" });
      }
      return running.then(
        (r) => JSON.parse(JSON.stringify(r)) as unknown,
        (err: unknown) => {
          throw lambdaError(err as Error);
        },
      );
    };
    const t0 = performance.now();
    // Retriers in order: Lambda service errors (no wait here), CommandInProgress (the task
    // timeout in the ASL; 3 s here, past the first attempt's 2 s command), session errors.
    const execution = await runLocally(
      single,
      "RunCommand",
      append("killed", {}, 2),
      task,
      SINGLE,
      [0, 3_000, 0],
    );
    console.log(
      `killed-task run: ${invocations} invocations, ${(performance.now() - t0).toFixed(0)} ms, failed with ${execution.failed?.Error ?? "nothing"}`,
    );
    await Promise.all(orphans);
    // Died, met its first attempt in progress, waited it out, replayed its result.
    expect(invocations).toBe(3);
    expect(runs("killed")).toBe(1);
    expect(execution.failed).toBeUndefined();
    expect(execution.output).toMatchObject({ status: "succeeded", exitCode: 0 });
  });
});

describe("per-host breaker (DynamoDB on dynalite)", () => {
  it("quarantines 5 tarpits after 3 hangs; the next run dials none of them", async () => {
    const handler = createTaskHandler(runtime);
    const hit = async (pit: Adversary) => {
      const started = performance.now();
      try {
        await handler(
          taskEvent(
            {
              host: "127.0.0.1",
              port: pit.port,
              username: sshd.username,
              command: `template:append ${JSON.stringify({ tag: "pit", file: marker })}`,
              timeoutMs: 2_000,
            },
            SINGLE,
          ),
          fakeContext(),
        );
        return { name: "none", ms: performance.now() - started };
      } catch (err) {
        return { name: (err as Error).name, ms: performance.now() - started };
      }
    };
    // First fleet run: each host hangs before its banner three times (the workflow's retries).
    for (let attempt = 0; attempt < 3; attempt++) {
      const first = await Promise.all(pits.map(hit));
      expect(first.map((r) => r.name)).toEqual(pits.map(() => "BannerTimeout"));
    }
    const acceptedBefore = pits.map((p) => p.accepted());
    // Second run, one host after another: refused at once, without a connection.
    const second: { name: string; ms: number }[] = [];
    for (const pit of pits) second.push(await hit(pit));
    expect(second.map((r) => r.name)).toEqual(pits.map(() => "HostQuarantined"));
    const total = second.reduce((sum, r) => sum + r.ms, 0);
    console.log(`breaker: second run over 5 tarpits took ${total.toFixed(1)} ms in total`);
    // What makes the second run cheap is that no tarpit was dialled: no banner wait at all
    // (its speed is a bench figure, not a timed assertion that a loaded machine breaks).
    expect(pits.map((p) => p.accepted())).toEqual(acceptedBefore);
    expect(captured.metrics.at(-1)).toContainEqual(
      expect.objectContaining({ name: "Errors", dimensions: { ErrorName: "HostQuarantined" } }),
    );
  });

  it("does not count a connection lost after the command started (the command may have caused it)", async () => {
    const breaker = new HostBreaker({ tableName: "breaker", client: dynamo.client, threshold: 2 });
    const lost = (commandStarted: boolean) =>
      ({
        status: "error",
        target: { host: "lost.example", port: 22, address: null, username: "u" },
        error: {
          name: "ConnectionLost",
          phase: "exec",
          message: "x",
          retryable: false,
          commandStarted,
        },
      }) as RunResult;
    for (let i = 0; i < 3; i++) await breaker.record(lost(true), undefined, `started-${i}`);
    await expect(breaker.check("lost.example", 22)).resolves.toBeUndefined();
    for (let i = 0; i < 2; i++) await breaker.record(lost(false), undefined, `lost-${i}`);
    await expect(breaker.check("lost.example", 22)).rejects.toMatchObject({
      name: "HostQuarantined",
    });
  });

  it("counts a jump host's hang against the jump host, not the target behind it", async () => {
    const breaker = new HostBreaker({ tableName: "breaker", client: dynamo.client, threshold: 2 });
    const hung = (hop: "via" | "target") =>
      ({
        status: "timed_out",
        target: { host: "behind.example", port: 22, address: null, username: "u" },
        via: {
          host: "bastion.example",
          port: 2222,
          address: null,
          username: "j",
          timings: {
            resolveMs: null,
            connectMs: 1,
            bannerMs: 1000,
            handshakeMs: null,
            authMs: null,
            forwardMs: null,
          },
        },
        error: {
          name: "BannerTimeout",
          phase: "banner",
          message: "x",
          retryable: true,
          commandStarted: false,
          hop,
          bound: "phase",
        },
      }) as RunResult;
    for (let i = 0; i < 2; i++) await breaker.record(hung("via"), undefined, `via-${i}`);
    await expect(breaker.check("bastion.example", 2222)).rejects.toMatchObject({
      name: "HostQuarantined",
    });
    await expect(breaker.check("behind.example", 22)).resolves.toBeUndefined();
    for (let i = 0; i < 2; i++) await breaker.record(hung("target"), undefined, `target-${i}`);
    await expect(breaker.check("behind.example", 22)).rejects.toMatchObject({
      name: "HostQuarantined",
    });
    // A session that got through both hops clears both.
    const through = hung("target");
    delete through.error;
    await breaker.record({ ...through, status: "succeeded" });
    await expect(breaker.check("bastion.example", 2222)).resolves.toBeUndefined();
    await expect(breaker.check("behind.example", 22)).resolves.toBeUndefined();
  });

  it("clears a host on success", async () => {
    const breaker = runtime.breaker!;
    const body = append("healthy");
    await api(body);
    await expect(breaker.check("127.0.0.1", sshd.port)).resolves.toBeUndefined();
  });
});
