/**
 * Truthful results when the stores stall (SPEC §5 `storeErrors`): the real task handler with
 * the real idempotency store and breaker on the bounded DynamoDB client, dynalite behind a TCP
 * proxy that goes silent on cue, and a real sshd. The handler always returns before its
 * deadline (function timeout less the reserve); a store that stalls after the command ran
 * never costs the result; `commandStarted` is true exactly when the command started.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { HostBreaker } from "../../functions/breaker/host-breaker.ts";
import { DynamoIdempotencyStore } from "../../functions/idempotency/idempotency.ts";
import { RESPONSE_SAFETY_MS } from "../../functions/invocation/create-invocation.ts";
import { dynamoDbClient } from "../../functions/runtime/aws-clients.ts";
import type { Runtime } from "../../functions/runtime/runtime.ts";
import { createTaskHandler } from "../../functions/task.ts";
import type { RunResult } from "../../lib/types.ts";
import { startProxy, type Proxy as TcpProxy } from "../helpers/adversaries.ts";
import { type LocalDynamo, startDynalite } from "../helpers/dynalite.ts";
import { type SshdServer, startSshd } from "../helpers/sshd.ts";
import {
  type Captured,
  fakeContext,
  LOOPBACK_DENY,
  taskEvent,
  testRuntime,
  WORKFLOW,
} from "./support.ts";

let sshd: SshdServer;
let dynamo: LocalDynamo;
const cleanups: (() => unknown)[] = [];

beforeAll(async () => {
  [sshd, dynamo] = await Promise.all([startSshd(), startDynalite()]);
  await dynamo.createTable("idem", "id", "expiration");
  await dynamo.createTable("breaker", "host", "expiresAt");
});
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});
afterAll(async () => {
  await Promise.all([sshd?.stop(), dynamo?.close()]);
});

const FUNCTION_TIMEOUT_MS = 6_000;
/** When the handler must have returned (SPEC §3): the function's timeout less the response's safety. */
const DEADLINE_MS = FUNCTION_TIMEOUT_MS - RESPONSE_SAFETY_MS;

/** A runtime whose stores reach dynalite through a proxy; `afterCommand` runs once the session ended. */
async function setup(options: { afterSession?: (proxy: TcpProxy) => void } = {}): Promise<{
  runtime: Runtime;
  captured: Captured;
  proxy: TcpProxy;
}> {
  const proxy = await startProxy(Number(new URL(dynamo.endpoint).port));
  const client = await dynamoDbClient({
    endpoint: `http://127.0.0.1:${proxy.port}`,
    region: "us-east-1",
    credentials: { accessKeyId: "local", secretAccessKey: "local" },
  });
  cleanups.push(
    () => client.destroy(),
    () => proxy.close(),
  );
  const { runtime, captured } = testRuntime({
    policy: {
      denyCidrs: LOOPBACK_DENY,
      replaceDefaultDenyCidrs: true,
      rules: [
        {
          id: "echo",
          callers: [WORKFLOW],
          targets: { cidrs: ["127.0.0.1/32"], ports: [sshd.port], usernames: [sshd.username] },
          commands: { patterns: ["echo [a-z-]+"] },
        },
      ],
    },
    credentials: { default: { privateKey: sshd.keys.ed25519.privateKey } },
    knownHosts: sshd.knownHostsLine,
    settings: { remoteBound: false },
  });
  const store = new DynamoIdempotencyStore({ tableName: "idem", client });
  runtime.idempotency = {
    run: (scope, work) =>
      store.run(scope, async () => {
        const result = await work();
        options.afterSession?.(proxy);
        return result;
      }),
  };
  runtime.breaker = new HostBreaker({ tableName: "breaker", client });
  return { runtime, captured, proxy };
}

async function invoke(runtime: Runtime, tag: string) {
  const handler = createTaskHandler(runtime);
  const started = performance.now();
  const request = {
    host: "127.0.0.1",
    port: sshd.port,
    username: sshd.username,
    command: `echo ${tag}`,
  };
  const answer = await handler(
    taskEvent(request),
    fakeContext({ timeoutMs: FUNCTION_TIMEOUT_MS }),
  ).then(
    (result) => ({ result: result as RunResult, error: undefined }),
    (error: unknown) => ({ result: undefined, error: error as Error }),
  );
  return { ...answer, elapsedMs: performance.now() - started };
}

describe("stores stalling around the session", () => {
  it("DynamoDB silent after the command ran: the result, with both stores' failures named", async () => {
    const { runtime, captured } = await setup({ afterSession: (proxy) => proxy.goSilent() });
    const { result, error, elapsedMs } = await invoke(runtime, "after");
    console.log(
      `DynamoDB silent after the session: answered ${result?.status} with ${result?.storeErrors?.length ?? 0} storeErrors at ${Math.round(elapsedMs)} ms of ${DEADLINE_MS}`,
    );
    expect(error).toBeUndefined();
    expect(result!.status).toBe("succeeded");
    expect(result!.stdout).toBe("after\n");
    expect(result!.error).toBeUndefined();
    expect(result!.storeErrors).toEqual([
      expect.objectContaining({ store: "idempotency", operation: "recordResult" }),
      expect.objectContaining({ store: "breaker", operation: "recordOutcome" }),
    ]);
    expect(captured.audits.at(-1)?.storeErrors).toEqual(result!.storeErrors);
    // Returned before the invocation's deadline: the writes after the session spent at most
    // half of what was left each (the reserve's rule), never the whole of it.
    expect(elapsedMs).toBeLessThan(DEADLINE_MS);
    expect(captured.audits.at(-1)!.slackMs).toBeGreaterThan(0);
  });

  it("DynamoDB silent before the session: refused before its deadline, nothing ran", async () => {
    const { runtime, captured, proxy } = await setup();
    proxy.goSilent();
    const { result, error, elapsedMs } = await invoke(runtime, "before");
    console.log(
      `DynamoDB silent before the session: ${error?.name} at ${Math.round(elapsedMs)} ms of ${DEADLINE_MS}`,
    );
    expect(result).toBeUndefined();
    expect(error?.name).toMatch(/^(InternalError|DeadlineExceeded)$/);
    const line = captured.audits.at(-1)!;
    expect(line.error?.name).toBe(error?.name);
    expect(line.phase).not.toBe("exec");
    // The reads before the session are bounded by the session's budget (the function's
    // timeout less the reserve): the refusal comes with the whole reserve left.
    expect(elapsedMs).toBeLessThan(DEADLINE_MS);
    expect(line.slackMs).toBeGreaterThan(runtime.settings.reserveMs / 2);
  });
});
