/**
 * Every AWS call is bounded (functions/runtime/aws-clients.ts): the clients built in one place
 * throw on their request timeout, each call is aborted when its signal fires (whatever step
 * the SDK is in), and the stores built on them (Powertools idempotency, the host breaker)
 * stay truthful when DynamoDB stalls. Real SDK clients against dynalite on loopback, behind a
 * TCP proxy that goes silent on cue, or a listener that accepts and never answers.
 */
import { DeleteItemCommand, ScanCommand } from "@aws-sdk/client-dynamodb";
import { GetParameterCommand } from "@aws-sdk/client-ssm";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { HostBreaker } from "../../functions/breaker/host-breaker.ts";
import { configFromEnv } from "../../functions/config/config.ts";
import {
  DynamoIdempotencyStore,
  type StoreBounds,
} from "../../functions/idempotency/idempotency.ts";
import {
  callErrorName,
  callSignal,
  clientConfig,
  dynamoDbClient,
  send,
  ssmClient,
} from "../../functions/runtime/aws-clients.ts";
import { awsRuntime } from "../../functions/runtime/runtime.ts";
import type { RunRequest, RunResult } from "../../lib/types.ts";
import {
  type Adversary,
  startProxy,
  type Proxy as TcpProxy,
  tarpit,
} from "../helpers/adversaries.ts";
import { type LocalDynamo, startDynalite } from "../helpers/dynalite.ts";
import { countActive } from "../helpers/leaks.ts";

const LOCAL = {
  region: "us-east-1",
  credentials: { accessKeyId: "local", secretAccessKey: "local" },
};

let dynamo: LocalDynamo;
let pit: Adversary;
const cleanups: (() => Promise<unknown> | unknown)[] = [];

beforeAll(async () => {
  [dynamo, pit] = await Promise.all([startDynalite(), tarpit()]);
  await dynamo.createTable("idem", "id", "expiration");
  await dynamo.createTable("breaker", "host", "expiresAt");
});
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});
afterAll(async () => {
  await Promise.all([dynamo?.close(), pit?.close()]);
});

/** A DynamoDB client built like the deployed one, through a proxy in front of dynalite. */
async function proxiedDynamo(): Promise<{
  proxy: TcpProxy;
  client: Awaited<ReturnType<typeof dynamoDbClient>>;
}> {
  const port = Number(new URL(dynamo.endpoint).port);
  const proxy = await startProxy(port);
  const client = await dynamoDbClient({ ...LOCAL, endpoint: `http://127.0.0.1:${proxy.port}` });
  cleanups.push(
    () => client.destroy(),
    () => proxy.close(),
  );
  return { proxy, client };
}

const elapsedSince = (t0: number) => performance.now() - t0;

describe("the client configuration and the one rule (aws-clients.ts)", () => {
  it("sets throwOnRequestTimeout, connection and request timeouts, and two attempts", () => {
    const config = clientConfig();
    expect(config.requestHandler).toMatchObject({
      throwOnRequestTimeout: true,
      connectionTimeout: 2_000,
      requestTimeout: 2_000,
    });
    expect(config.maxAttempts).toBe(2);
  });

  it("a client's request timeout fails a silent endpoint's call (not only a warning)", async () => {
    const client = await ssmClient({
      ...LOCAL,
      endpoint: `http://127.0.0.1:${pit.port}`,
      requestTimeout: 200,
    });
    cleanups.push(() => client.destroy());
    const t0 = performance.now();
    // No signal at all: only the transport bounds it (two attempts of 200 ms).
    const never = new AbortController().signal;
    const err = await send(client, new GetParameterCommand({ Name: "p" }), never).catch(
      (e: unknown) => e as Error,
    );
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).name).toBe("TimeoutError");
    // Loaded 2-core machine: far below the 10 s a warning-only timeout would have waited.
    expect(elapsedSince(t0)).toBeLessThan(5_000);
  });

  it("a call is aborted when its signal fires, even in a step that ignores the signal", async () => {
    // Credentials that never resolve: the SDK waits for them before any request, and that
    // wait does not watch the abort signal. The race in `send` still ends the call.
    const { SSMClient } = await import("@aws-sdk/client-ssm");
    const client = new SSMClient(
      clientConfig({ region: "us-east-1", endpoint: `http://127.0.0.1:${pit.port}` }),
    );
    Object.assign(client.config, { credentials: () => new Promise(() => {}) });
    cleanups.push(() => client.destroy());
    const t0 = performance.now();
    const err = await send(
      client,
      new GetParameterCommand({ Name: "p" }),
      callSignal(undefined, 200),
    ).catch((e: unknown) => e as Error);
    expect((err as Error).name).toBe("TimeoutError");
    expect(elapsedSince(t0)).toBeLessThan(5_000);
  });

  it("a refused connection leaves no timer behind (the transport's connect timer is cleared)", async () => {
    const closed = await tarpit();
    const port = closed.port;
    await closed.close();
    const client = await ssmClient({ ...LOCAL, endpoint: `http://127.0.0.1:${port}` });
    cleanups.push(() => client.destroy());
    const timers = () => countActive(["Timeout"]);
    const before = timers();
    const err = await send(
      client,
      new GetParameterCommand({ Name: "p" }),
      callSignal(undefined, 3_000),
    ).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(Error);
    await new Promise((r) => setTimeout(r, 100));
    expect(timers()).toBeLessThanOrEqual(before);
  });

  it("names a failed call by the SDK's error name, or a bare network error by its code", async () => {
    const closed = await tarpit();
    const port = closed.port;
    await closed.close();
    const client = await ssmClient({ ...LOCAL, endpoint: `http://127.0.0.1:${port}` });
    cleanups.push(() => client.destroy());
    const refused = await send(
      client,
      new GetParameterCommand({ Name: "p" }),
      callSignal(undefined, 3_000),
    ).catch((e: unknown) => e);
    expect(callErrorName(refused)).toBe("ECONNREFUSED");
    const timedOut = await send(
      client,
      new GetParameterCommand({ Name: "p" }),
      AbortSignal.abort(new DOMException("cap", "TimeoutError")),
    ).catch((e: unknown) => e);
    expect(callErrorName(timedOut)).toBe("TimeoutError");
    expect(callErrorName("not an error")).toBe("Error");
  });

  it("an already-aborted signal sends nothing", async () => {
    const before = pit.accepted();
    const client = await ssmClient({ ...LOCAL, endpoint: `http://127.0.0.1:${pit.port}` });
    cleanups.push(() => client.destroy());
    const done = new AbortController();
    done.abort(new DOMException("the invocation's deadline passed", "TimeoutError"));
    await expect(send(client, new GetParameterCommand({ Name: "p" }), done.signal)).rejects.toThrow(
      /deadline passed/,
    );
    expect(pit.accepted()).toBe(before);
  });
});

const REQUEST: RunRequest = { host: "db1", username: "ops", command: "uptime" };

function resultOf(commandStarted: boolean, requestId = "r1"): RunResult {
  const base = {
    requestId,
    status: commandStarted ? "succeeded" : "failed",
    target: { host: "db1", port: 22, address: "127.0.0.1", username: "ops" },
    exitCode: commandStarted ? 0 : null,
    signal: null,
    stdout: "ok\n",
    stderr: "",
    phase: commandStarted ? "exec" : "connect",
  };
  return (commandStarted
    ? base
    : {
        ...base,
        error: { name: "ConnectRefused", message: "refused", retryable: true, commandStarted },
      }) as unknown as RunResult;
}

/** Bounds as the invocation gives them: its signal, per-call caps, its deadline. */
function bounds(options: { capMs: number; deadlineMs: number }): StoreBounds & {
  controller: AbortController;
} {
  const controller = new AbortController();
  const end = performance.now() + options.deadlineMs;
  return {
    controller,
    signal: controller.signal,
    read: () => callSignal(controller.signal, options.capMs),
    write: () => callSignal(controller.signal, options.capMs),
    remainingMs: () => end - performance.now(),
  };
}

async function records(): Promise<Record<string, { S?: string; N?: string }>[]> {
  const out = await dynamo.client.send(new ScanCommand({ TableName: "idem" }));
  return (out.Items ?? []) as Record<string, { S?: string; N?: string }>[];
}

async function clearRecords(): Promise<void> {
  for (const item of await records()) {
    await dynamo.client.send(
      new DeleteItemCommand({ TableName: "idem", Key: { id: { S: item.id!.S! } } }),
    );
  }
}

describe("Powertools idempotency on the bounded client", () => {
  afterEach(clearRecords);

  it("records the run in progress until the invocation's deadline (in_progress_expiration)", async () => {
    const { client } = await proxiedDynamo();
    const store = new DynamoIdempotencyStore({ tableName: "idem", client });
    const b = bounds({ capMs: 3_000, deadlineMs: 60_000 });
    let seen: Record<string, { S?: string; N?: string }>[] = [];
    const before = Date.now();
    await store.run({ caller: "c", key: "k-expiry", request: REQUEST, bounds: b }, async () => {
      seen = await records();
      return resultOf(true);
    });
    expect(seen).toHaveLength(1);
    expect(seen[0]!.status!.S).toBe("INPROGRESS");
    const expiry = Number(seen[0]!.in_progress_expiration!.N);
    // now + the invocation's remaining time (60 s), within the test's own slack.
    expect(expiry).toBeGreaterThanOrEqual(before + 50_000);
    expect(expiry).toBeLessThanOrEqual(Date.now() + 60_000);
  });

  it("a key whose invocation died before its command started is free after that deadline", async () => {
    const { proxy, client } = await proxiedDynamo();
    const store = new DynamoIdempotencyStore({ tableName: "idem", client });
    // The first invocation records the key, then dies (its deadline passes) before the
    // command starts: the store goes silent, nothing removes the record.
    const first = bounds({ capMs: 300, deadlineMs: 400 });
    const died = store.run(
      { caller: "c", key: "k-died", request: REQUEST, bounds: first },
      async () => {
        proxy.goSilent();
        first.controller.abort(new DOMException("deadline", "TimeoutError"));
        return resultOf(false);
      },
    );
    const outcome = await died;
    expect(outcome.storeErrors?.[0]).toMatchObject({
      store: "idempotency",
      operation: "removeRecord",
    });
    expect(await records()).toHaveLength(1);
    proxy.resume();
    // A retry after that deadline runs (Powertools' conditional write treats it as expired).
    await new Promise((r) => setTimeout(r, 600));
    const { client: fresh } = await proxiedDynamo();
    const retry = await new DynamoIdempotencyStore({ tableName: "idem", client: fresh }).run(
      {
        caller: "c",
        key: "k-died",
        request: REQUEST,
        bounds: bounds({ capMs: 3_000, deadlineMs: 60_000 }),
      },
      async () => resultOf(true, "r2"),
    );
    expect(retry).toMatchObject({ replayed: false, result: { requestId: "r2" } });
  });

  it("removes the record when the command did not start", async () => {
    const { client } = await proxiedDynamo();
    const store = new DynamoIdempotencyStore({ tableName: "idem", client });
    const outcome = await store.run(
      {
        caller: "c",
        key: "k-not-started",
        request: REQUEST,
        bounds: bounds({ capMs: 3_000, deadlineMs: 60_000 }),
      },
      async () => resultOf(false),
    );
    expect(outcome.storeErrors).toBeUndefined();
    expect(outcome.result.error?.commandStarted).toBe(false);
    expect(await records()).toHaveLength(0);
  });

  it("DynamoDB silent before the session: nothing runs, the answer comes within the read cap", async () => {
    const { proxy, client } = await proxiedDynamo();
    const store = new DynamoIdempotencyStore({ tableName: "idem", client });
    proxy.goSilent();
    let ran = false;
    const t0 = performance.now();
    const err = await store
      .run(
        {
          caller: "c",
          key: "k-silent-before",
          request: REQUEST,
          bounds: bounds({ capMs: 300, deadlineMs: 60_000 }),
        },
        async () => {
          ran = true;
          return resultOf(true);
        },
      )
      .catch((e: unknown) => e as Error);
    expect((err as Error).name).toBe("InternalError");
    expect((err as Error).message).toMatch(/nothing was run/);
    expect(ran).toBe(false);
    expect(elapsedSince(t0)).toBeLessThan(5_000);
  });

  it("DynamoDB silent before the session and the invocation's deadline fires: DeadlineExceeded, nothing runs", async () => {
    const { proxy, client } = await proxiedDynamo();
    const store = new DynamoIdempotencyStore({ tableName: "idem", client });
    proxy.goSilent();
    const b = bounds({ capMs: 60_000, deadlineMs: 60_000 });
    setTimeout(() => b.controller.abort(new DOMException("deadline", "TimeoutError")), 200);
    let ran = false;
    const err = await store
      .run({ caller: "c", key: "k-deadline-before", request: REQUEST, bounds: b }, async () => {
        ran = true;
        return resultOf(true);
      })
      .catch((e: unknown) => e as Error);
    expect((err as Error).name).toBe("DeadlineExceeded");
    // Even if the record write lands late, the session is never started after the answer.
    proxy.resume();
    await new Promise((r) => setTimeout(r, 300));
    expect(ran).toBe(false);
  });

  it("DynamoDB silent after the command ran: the caller gets the result, with the store failure named", async () => {
    const { proxy, client } = await proxiedDynamo();
    const store = new DynamoIdempotencyStore({ tableName: "idem", client });
    const t0 = performance.now();
    const outcome = await store.run(
      {
        caller: "c",
        key: "k-silent-after",
        request: REQUEST,
        bounds: bounds({ capMs: 300, deadlineMs: 60_000 }),
      },
      async () => {
        proxy.goSilent();
        return resultOf(true);
      },
    );
    expect(outcome.result.status).toBe("succeeded");
    expect(outcome.result.error).toBeUndefined();
    expect(outcome.replayed).toBe(false);
    expect(outcome.storeErrors).toEqual([
      expect.objectContaining({
        store: "idempotency",
        operation: "recordResult",
        name: "TimeoutError",
      }),
    ]);
    expect(outcome.storeErrors![0]!.message).toMatch(/command ran/);
    expect(elapsedSince(t0)).toBeLessThan(5_000);
    // The key stays in progress (a repeat now is CommandInProgress, not a second run).
    proxy.resume();
    const repeat = await new DynamoIdempotencyStore({ tableName: "idem", client: dynamo.client })
      .run({ caller: "c", key: "k-silent-after", request: REQUEST }, async () =>
        resultOf(true, "r2"),
      )
      .catch((e: unknown) => e as Error);
    expect((repeat as Error).name).toBe("CommandInProgress");
  });

  it("the invocation's deadline during the result write: the result, not DeadlineExceeded", async () => {
    const { proxy, client } = await proxiedDynamo();
    const store = new DynamoIdempotencyStore({ tableName: "idem", client });
    const b = bounds({ capMs: 60_000, deadlineMs: 60_000 });
    const outcome = await store.run(
      { caller: "c", key: "k-deadline-after", request: REQUEST, bounds: b },
      async () => {
        proxy.goSilent();
        setTimeout(() => b.controller.abort(new DOMException("deadline", "TimeoutError")), 200);
        return resultOf(true);
      },
    );
    expect(outcome.result.status).toBe("succeeded");
    expect(outcome.storeErrors?.[0]).toMatchObject({ operation: "recordResult" });
  });
});

describe("host breaker on the bounded client", () => {
  it("check and record end when their signal fires against a silent DynamoDB", async () => {
    const { proxy, client } = await proxiedDynamo();
    const breaker = new HostBreaker({ tableName: "breaker", client });
    proxy.goSilent();
    const t0 = performance.now();
    await expect(breaker.check("db1", 22, callSignal(undefined, 300))).rejects.toMatchObject({
      name: "TimeoutError",
    });
    await expect(breaker.record(resultOf(true), callSignal(undefined, 300))).rejects.toMatchObject({
      name: "TimeoutError",
    });
    expect(elapsedSince(t0)).toBeLessThan(5_000);
    // The SDK destroyed the requests' sockets: nothing is left open toward the store.
    await new Promise((r) => setTimeout(r, 100));
    expect(proxy.open()).toBe(0);
  });
});

describe("the deployed runtime (awsRuntime)", () => {
  it("builds its stores on the bounded clients: a silent DynamoDB costs the call's signal, no more", async () => {
    // The SDK's own endpoint override, as an operator would point it at a VPC endpoint.
    const saved = { ...process.env };
    Object.assign(process.env, {
      AWS_ENDPOINT_URL_DYNAMODB: `http://127.0.0.1:${pit.port}`,
      AWS_REGION: "us-east-1",
      AWS_ACCESS_KEY_ID: "local",
      AWS_SECRET_ACCESS_KEY: "local",
    });
    try {
      const runtime = awsRuntime(
        configFromEnv({ BSSH_POLICY: '{"rules":[]}', BSSH_BREAKER_TABLE: "breaker" }),
      );
      const before = pit.accepted();
      const t0 = performance.now();
      await expect(
        runtime.breaker!.check("db1", 22, callSignal(undefined, 300)),
      ).rejects.toMatchObject({ name: "TimeoutError" });
      expect(elapsedSince(t0)).toBeLessThan(5_000);
      // Without a signal: the client's own request timeout throws (it used to only warn, and
      // this call waited for the endpoint forever).
      const t1 = performance.now();
      await expect(runtime.breaker!.check("db1", 22)).rejects.toMatchObject({
        name: "TimeoutError",
      });
      expect(elapsedSince(t1)).toBeLessThan(10_000);
      expect(pit.accepted()).toBeGreaterThan(before);
    } finally {
      for (const key of Object.keys(process.env)) if (!(key in saved)) delete process.env[key];
      Object.assign(process.env, saved);
    }
  });
});
