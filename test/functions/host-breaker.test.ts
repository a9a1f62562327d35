/**
 * The per-host breaker's counting rules (issue 21 item 4) against dynalite, through the real
 * API and task handlers and a real OpenSSH sshd on loopback: a failure counts only when the
 * phase's own cap expired (`error.bound: "phase"`), once per logical request, and a
 * quarantined host gets one half-open probe.
 */
import { randomUUID } from "node:crypto";
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiHandler } from "../../functions/api.ts";
import { countsAgainstHost, HostBreaker } from "../../functions/breaker/host-breaker.ts";
import type { Runtime } from "../../functions/runtime/runtime.ts";
import { createTaskHandler } from "../../functions/task.ts";
import type { RunResult } from "../../lib/types.ts";
import { localStateMachineArn } from "../cdk/local-sfn.ts";
import { type Adversary, tarpit } from "../helpers/adversaries.ts";
import { type LocalDynamo, startDynalite } from "../helpers/dynalite.ts";
import { type SshdServer, startSshd } from "../helpers/sshd.ts";
import { CALLER, fakeContext, LOOPBACK_DENY, testRuntime, v1Event } from "./support.ts";

const SINGLE = localStateMachineArn("Test-SingleHost");
/** The banner cap in these tests: a hung host's BannerTimeout is the phase's own. */
const BANNER_CAP_MS = 1_000;
/** How long the "far away" host holds every connection before the sshd answers. */
const FAR_DELAY_MS = 600;

let sshd: SshdServer;
let dynamo: LocalDynamo;
let pit: Adversary;
let far: net.Server;
let farPort: number;
let runtime: Runtime;

/** A healthy host, far away: each connection reaches the real sshd after FAR_DELAY_MS. */
async function farHost(targetPort: number): Promise<net.Server> {
  const server = net.createServer((client) => {
    client.pause();
    const timer = setTimeout(() => {
      const upstream = net.connect(targetPort, "127.0.0.1");
      client.pipe(upstream).pipe(client);
      client.resume();
      upstream.on("error", () => client.destroy());
      client.on("close", () => upstream.destroy());
    }, FAR_DELAY_MS);
    client.on("error", () => undefined);
    client.on("close", () => clearTimeout(timer));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return server;
}

beforeAll(async () => {
  [sshd, dynamo, pit] = await Promise.all([startSshd(), startDynalite(), tarpit()]);
  far = await farHost(sshd.port);
  farPort = (far.address() as net.AddressInfo).port;
  await dynamo.createTable("breaker", "host", "expiresAt");
  const made = testRuntime({
    policy: {
      denyCidrs: LOOPBACK_DENY,
      replaceDefaultDenyCidrs: true,
      rules: [
        {
          id: "breaker",
          callers: [CALLER, SINGLE],
          targets: {
            cidrs: ["127.0.0.1/32"],
            ports: [sshd.port, farPort, pit.port],
            usernames: [sshd.username],
          },
          commands: { patterns: ["echo [a-z0-9-]+"] },
        },
      ],
    },
    credentials: { default: { privateKey: sshd.keys.ed25519.privateKey } },
    knownHosts: `${sshd.knownHostsLine}\n${sshd.knownHostsLine.replace(`]:${sshd.port} `, `]:${farPort} `)}`,
    settings: {
      remoteBound: false,
      stateMachineArns: [SINGLE],
      phaseCaps: { banner: BANNER_CAP_MS },
      // A short-budget caller must reach the dial: only the policy and key reads come first.
      minBudgetMs: 100,
    },
  });
  runtime = made.runtime;
  runtime.breaker = new HostBreaker({ tableName: "breaker", client: dynamo.client, threshold: 3 });
});

afterAll(async () => {
  await Promise.all([
    sshd?.stop(),
    dynamo?.close(),
    pit?.close(),
    new Promise((r) => (far ? far.close(r) : r(undefined))),
  ]);
});

async function api(port: number, timeoutMs: number) {
  const body = {
    host: "127.0.0.1",
    port,
    username: sshd.username,
    command: "echo hi",
    timeoutMs,
  };
  const response = await createApiHandler(runtime)(
    v1Event(JSON.stringify(body)),
    fakeContext({ timeoutMs: 30_000 }),
  );
  const parsed = JSON.parse(response.body) as {
    error?: { name: string; bound?: string; message?: string };
    status?: string;
  };
  if (process.env.BSSH_DEBUG_TEST) console.log(parsed.error);
  return { status: response.statusCode, name: parsed.error?.name, bound: parsed.error?.bound };
}

describe("breaker counting: the host's fault only, once per request", () => {
  it("three short-budget requests (400 ms, banner after 600 ms) never quarantine a healthy host", async () => {
    // Warm (the engine loads on first use), and the host is healthy for a patient caller.
    expect(await api(farPort, 20_000)).toMatchObject({ status: 200, name: undefined });
    // Before issue 21: each of these BannerTimeouts counted; the fourth caller got 503.
    for (let i = 0; i < 3; i++) {
      const short = await api(farPort, 400);
      expect(short.status).toBe(504);
      expect(["BannerTimeout", "HandshakeTimeout"]).toContain(short.name);
      expect(short.bound).toBe("budget");
    }
    const patient = await api(farPort, 20_000);
    expect(patient).toMatchObject({ status: 200, name: undefined });
  });

  it("quarantines a genuinely hung host (the banner cap expired) after three requests", async () => {
    for (let i = 0; i < 3; i++) {
      const hung = await api(pit.port, 5_000);
      expect(hung).toMatchObject({ status: 504, name: "BannerTimeout", bound: "phase" });
    }
    const accepted = pit.accepted();
    const next = await api(pit.port, 20_000);
    expect(next).toMatchObject({ status: 503, name: "HostQuarantined" });
    expect(pit.accepted()).toBe(accepted); // refused without a dial
    await runtime.breaker!.record({
      status: "succeeded",
      target: { host: "127.0.0.1", port: pit.port, address: null, username: "u" },
    } as RunResult); // clear it for the other tests
  });

  it("counts a workflow's retries of one host in one execution once", async () => {
    const handler = createTaskHandler(runtime);
    const execution = {
      id: `${SINGLE.replace(":stateMachine:", ":execution:")}:${randomUUID()}`,
      stateMachine: SINGLE,
    };
    const request = {
      host: "127.0.0.1",
      port: pit.port,
      username: sshd.username,
      command: "echo retried",
      timeoutMs: 5_000,
    };
    // Three attempts of one task (the workflow's retries) and three more (a second retry
    // round): one logical request, one failure.
    for (let attempt = 0; attempt < 6; attempt++) {
      await expect(handler({ request, execution }, fakeContext())).rejects.toMatchObject({
        name: "BannerTimeout",
      });
    }
    await expect(runtime.breaker!.check("127.0.0.1", pit.port)).resolves.toBeUndefined();
    await runtime.breaker!.record({
      status: "succeeded",
      target: { host: "127.0.0.1", port: pit.port, address: null, username: "u" },
    } as RunResult);
  });

  it("counts DnsLookupFailed and ConnectRefused, never a budget-bound timeout or a post-command loss", () => {
    const e = (name: string, extra: Record<string, unknown> = {}) =>
      ({ name, commandStarted: false, ...extra }) as never;
    expect(countsAgainstHost(e("DnsLookupFailed"))).toBe(true);
    expect(countsAgainstHost(e("ConnectRefused"))).toBe(true);
    expect(countsAgainstHost(e("BannerTimeout", { bound: "phase" }))).toBe(true);
    expect(countsAgainstHost(e("BannerTimeout", { bound: "budget" }))).toBe(false);
    expect(countsAgainstHost(e("ConnectTimeout"))).toBe(false);
    expect(countsAgainstHost(e("ConnectionLost", { commandStarted: true }))).toBe(false);
    expect(countsAgainstHost(e("AuthFailed"))).toBe(false);
    // The counted names are a setting.
    expect(countsAgainstHost(e("ConnectRefused"), ["BannerTimeout"])).toBe(false);
  });
});

describe("half-open probe", () => {
  it("lets one request through after the quarantine; success closes, failure re-opens", async () => {
    let now = 1_000_000;
    const breaker = new HostBreaker({
      tableName: "breaker",
      client: dynamo.client,
      threshold: 3,
      windowSeconds: 600,
      quarantineSeconds: 900,
      probeSeconds: 120,
      now: () => now,
    });
    const host = `probe-${randomUUID().slice(0, 8)}.example`;
    const target = { host, port: 22, address: null, username: "u" };
    const hung = {
      status: "timed_out",
      target,
      error: {
        name: "BannerTimeout",
        phase: "banner",
        message: "x",
        retryable: true,
        commandStarted: false,
        bound: "phase",
      },
    } as RunResult;
    const refused = { name: "HostQuarantined" };
    for (const key of ["a", "b", "c"]) await breaker.record(hung, undefined, key);
    await expect(breaker.check(host, 22)).rejects.toMatchObject(refused);

    // Quarantine over: the first request probes, a second one meanwhile is refused.
    now += 900_001;
    await expect(breaker.check(host, 22)).resolves.toBeUndefined();
    await expect(breaker.check(host, 22)).rejects.toThrow(/half-open/);
    // The probe failed: quarantined again at once, for a whole quarantine.
    await breaker.record(hung, undefined, "probe-1");
    await expect(breaker.check(host, 22)).rejects.toThrow(/quarantined for 900 s/);

    // Over again: the next probe succeeds and closes the breaker for everyone.
    now += 900_001;
    await expect(breaker.check(host, 22)).resolves.toBeUndefined();
    await breaker.record({ status: "succeeded", target } as RunResult, undefined, "probe-2");
    await expect(breaker.check(host, 22)).resolves.toBeUndefined();
    await expect(breaker.check(host, 22)).resolves.toBeUndefined();
  });

  it("a probe that ends without a verdict holds the host only for its lease", async () => {
    let now = 5_000_000;
    const breaker = new HostBreaker({
      tableName: "breaker",
      client: dynamo.client,
      threshold: 1,
      quarantineSeconds: 60,
      probeSeconds: 120,
      now: () => now,
    });
    const host = `lease-${randomUUID().slice(0, 8)}.example`;
    await breaker.record(
      {
        status: "error",
        target: { host, port: 22, address: null, username: "u" },
        error: {
          name: "ConnectRefused",
          phase: "connect",
          message: "x",
          retryable: true,
          commandStarted: false,
        },
      } as RunResult,
      undefined,
      "only",
    );
    await expect(breaker.check(host, 22)).rejects.toMatchObject({ name: "HostQuarantined" });
    now += 60_001;
    await expect(breaker.check(host, 22)).resolves.toBeUndefined(); // the probe (its Lambda dies)
    now += 60_000;
    await expect(breaker.check(host, 22)).rejects.toThrow(/half-open/);
    now += 60_001;
    await expect(breaker.check(host, 22)).resolves.toBeUndefined(); // lease over: a new probe
  });
});
