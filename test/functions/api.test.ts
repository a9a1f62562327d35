import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiHandler } from "../../functions/api.ts";
import type { RunResult } from "../../lib/types.ts";
import { type Adversary, tarpit } from "../helpers/adversaries.ts";
import { generateEd25519KeyPair } from "../helpers/keys.ts";
import { type ExecContext, type Ssh2Server, startSsh2Server } from "../helpers/ssh2-server.ts";
import {
  CALLER,
  fakeContext,
  KEY_MARKERS,
  loopbackPolicy,
  testRuntime,
  v1Event,
  v2Event,
} from "./support.ts";

const clientKey = generateEd25519KeyPair();

/** exec behaviour by command: `exit N` exits N, `sleep N` never ends, anything else echoes. */
function scripted(ctx: ExecContext): void {
  const exit = /^exit (\d+)$/.exec(ctx.command);
  if (exit) {
    ctx.stderr("bye\n");
    ctx.exit(Number(exit[1]));
    ctx.close();
    return;
  }
  if (ctx.command.startsWith("sleep")) return;
  ctx.stdout(`${ctx.command}\n`);
  ctx.exit(0);
  ctx.close();
}

interface ApiBody {
  error?: {
    name: string;
    phase: string;
    message: string;
    retryable: boolean;
    commandStarted: boolean;
  };
  result?: RunResult;
}

let server: Ssh2Server;
let hung: Adversary;

beforeAll(async () => {
  server = await startSsh2Server({ exec: scripted });
  hung = await tarpit();
});
afterAll(async () => {
  await server.close();
  await hung.close();
});

function setup(
  overrides: Parameters<typeof testRuntime>[0] extends infer O ? Partial<O> : never = {},
) {
  const { runtime, captured } = testRuntime({
    policy: loopbackPolicy([server.port, hung.port]),
    credentials: { default: { privateKey: clientKey.private } },
    knownHosts: `${server.knownHostsLine}\n`,
    settings: { remoteBound: false },
    ...overrides,
  });
  return { handler: createApiHandler(runtime), captured };
}

const request = (extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    host: "127.0.0.1",
    port: server.port,
    username: "ops",
    command: "echo hi",
    ...extra,
  });

describe("API handler, REST (v1) and HTTP API (v2) payloads", () => {
  it.each([
    ["v1", v1Event],
    ["v2", v2Event],
  ] as const)("runs a command and answers 200 with the result (%s)", async (_v, makeEvent) => {
    // Prepare
    const { handler, captured } = setup();
    // Act
    const response = await handler(makeEvent(request()), fakeContext());
    // Assess
    expect(response.statusCode).toBe(200);
    const result = JSON.parse(response.body) as RunResult;
    expect(result.status).toBe("succeeded");
    expect(result.stdout).toBe("echo hi\n");
    expect(result.target).toMatchObject({
      host: "127.0.0.1",
      address: "127.0.0.1",
      username: "ops",
    });
    const audit = captured.audits[0]!;
    expect(audit).toMatchObject({
      caller: CALLER,
      outcome: "succeeded",
      statusCode: 200,
      command: "echo hi",
    });
    expect(audit.output).toEqual({ stdoutBytes: 8, stderrBytes: 0, truncated: false });
    expect(JSON.stringify(audit)).not.toContain("echo hi\\n");
  });

  it("answers 200 with status failed for a non-zero exit", async () => {
    const { handler } = setup();
    const response = await handler(v1Event(request({ command: "exit 3" })), fakeContext());
    expect(response.statusCode).toBe(200);
    expect(JSON.parse(response.body)).toMatchObject({
      status: "failed",
      exitCode: 3,
      stderr: "bye\n",
    });
  });

  it("maps a hung target to 504 BannerTimeout with the result, inside the caller's timeout", async () => {
    const { handler, captured } = setup();
    const started = Date.now();
    const response = await handler(
      v2Event(request({ port: hung.port, timeoutMs: 800 })),
      fakeContext(),
    );
    const elapsed = Date.now() - started;
    expect(response.statusCode).toBe(504);
    const body = JSON.parse(response.body) as ApiBody;
    expect(body.error).toMatchObject({
      name: "BannerTimeout",
      phase: "banner",
      retryable: true,
      commandStarted: false,
    });
    expect(body.result?.status).toBe("timed_out");
    expect(body.result?.timings.bannerMs).toBeGreaterThan(0);
    expect(elapsed).toBeLessThan(800 + 50 + 100);
    expect(captured.metrics[0]).toContainEqual(
      expect.objectContaining({ name: "HandshakeHangs", value: 1 }),
    );
  });

  it("bounds the budget by API Gateway's 29 s counted from requestTimeEpoch", async () => {
    // Prepare: API Gateway received the request 20 s ago (a slow cold start, say).
    const { handler, captured } = setup();
    // Act
    const response = await handler(
      v1Event(request(), { receivedAt: Date.now() - 20_000 }),
      fakeContext({ timeoutMs: 60_000 }),
    );
    // Assess: 29 000 − 20 000 − 1 500 reserve − 50 response safety ≈ 7 450 ms.
    expect(response.statusCode).toBe(200);
    const budget = captured.records[0]!.budgetMs!;
    expect(budget).toBeGreaterThan(7_300);
    expect(budget).toBeLessThanOrEqual(7_450);
  });

  it("answers DeadlineExceeded at once when too little time is left", async () => {
    const { handler } = setup();
    const connections = () => server.events.filter((e) => e.type === "connection").length;
    const before = connections();
    const started = Date.now();
    // 1 700 ms left − 1 500 reserve − 50 safety = 150 ms < the 250 ms minimum.
    const response = await handler(v1Event(request()), fakeContext({ timeoutMs: 1_700 }));
    expect(Date.now() - started).toBeLessThan(100);
    expect(response.statusCode).toBe(504);
    const body = JSON.parse(response.body) as ApiBody;
    expect(body.error?.name).toBe("DeadlineExceeded");
    expect(connections()).toBe(before);
  });

  it("takes the min of the budget and request.timeoutMs", async () => {
    const { handler, captured } = setup();
    await handler(v1Event(request({ timeoutMs: 1_234 })), fakeContext());
    expect(captured.records[0]!.budgetMs).toBe(1_234);
  });

  it("refuses an unknown caller with 403 TargetNotAllowed before any connection", async () => {
    const { handler } = setup();
    const before = server.events.length;
    const response = await handler(
      v1Event(request(), { caller: "arn:aws:iam::999999999999:user/mallory" }),
      fakeContext(),
    );
    expect(response.statusCode).toBe(403);
    const body = JSON.parse(response.body) as ApiBody;
    expect(body.error).toMatchObject({
      name: "TargetNotAllowed",
      phase: "policy",
      retryable: false,
    });
    expect(body.result?.status).toBe("error");
    expect(server.events.length).toBe(before);
  });

  it("refuses a command outside the policy with 403 CommandNotAllowed", async () => {
    const { handler, captured } = setup();
    const response = await handler(v2Event(request({ command: "rm -rf /" })), fakeContext());
    expect(response.statusCode).toBe(403);
    expect((JSON.parse(response.body) as ApiBody).error?.name).toBe("CommandNotAllowed");
    expect(captured.audits[0]).toMatchObject({
      outcome: "error",
      statusCode: 403,
      error: { name: "CommandNotAllowed" },
    });
  });

  it("refuses a name that resolves into a denied range (DNS cannot smuggle a target in)", async () => {
    // Prepare: the policy allows *.fleet.internal in 10.0.0.0/8 only; the name resolves to loopback.
    const { handler, captured } = setup({
      policy: {
        rules: [
          {
            callers: [CALLER],
            targets: {
              hosts: ["*.fleet.internal"],
              cidrs: ["10.0.0.0/8"],
              ports: [server.port],
              usernames: ["ops"],
            },
            commands: { patterns: ["echo .*"] },
          },
        ],
      },
      lookup: async (host) => {
        if (host === "web1.fleet.internal") return { address: "127.0.0.1", family: 4 };
        throw Object.assign(new Error(`ENOTFOUND ${host}`), { code: "ENOTFOUND" });
      },
    });
    const before = server.events.length;
    // Act
    const response = await handler(
      v1Event(request({ host: "web1.fleet.internal" })),
      fakeContext(),
    );
    // Assess
    expect(response.statusCode).toBe(403);
    const body = JSON.parse(response.body) as ApiBody;
    expect(body.error?.name).toBe("TargetNotAllowed");
    // No oracle: the caller learns neither the address nor which range refused it.
    expect(body.error?.message).toContain("resolved to an address this caller may not reach");
    expect(response.body).not.toContain("127.0.0.1");
    expect(body.result?.target.address).toBeNull();
    expect(captured.audits.at(-1)?.target?.address).toBe("127.0.0.1");
    expect(server.events.length).toBe(before);
  });

  it("answers 500 CredentialInvalid (not retryable) for a granted credential the store lacks", async () => {
    const policy = loopbackPolicy([server.port]);
    policy.rules[0]!.credentials = ["default", "nope"];
    const { handler } = setup({ policy });
    const response = await handler(v1Event(request({ credential: "nope" })), fakeContext());
    expect(response.statusCode).toBe(500);
    expect((JSON.parse(response.body) as ApiBody).error).toMatchObject({
      name: "CredentialInvalid",
      phase: "credentials",
      retryable: false,
    });
  });

  it("answers 502 HostKeyUnknown when the host is not in known hosts", async () => {
    const { handler } = setup({ knownHosts: "" });
    const response = await handler(v1Event(request()), fakeContext());
    expect(response.statusCode).toBe(502);
    expect((JSON.parse(response.body) as ApiBody).error?.name).toBe("HostKeyUnknown");
  });

  it("accepts a SHA256 pin for a host known hosts do not list where the rule allows pins", async () => {
    const policy = loopbackPolicy([server.port]);
    policy.rules[0]!.allowRequestPins = true;
    const { handler } = setup({ knownHosts: "", policy });
    const response = await handler(
      v1Event(request({ hostKey: server.hostKeyFingerprint })),
      fakeContext(),
    );
    expect(response.statusCode).toBe(200);
  });

  it("expands a named template with shell-quoted parameters", async () => {
    const { handler, captured } = setup({
      policy: loopbackPolicy([server.port], {
        templates: {
          greet: {
            command: "echo hello {{name}}",
            params: { name: { type: "string", pattern: "[^-].*", maxLength: 40 } },
          },
        },
        rules: [
          {
            callers: [CALLER],
            targets: { cidrs: ["127.0.0.1/32"], ports: [server.port], usernames: ["ops"] },
            commands: { templates: ["greet"] },
          },
        ],
      }),
    });
    const response = await handler(
      v1Event(request({ command: `template:greet ${JSON.stringify({ name: "it's $(id)" })}` })),
      fakeContext(),
    );
    expect(response.statusCode).toBe(200);
    expect((JSON.parse(response.body) as RunResult).stdout).toBe("echo hello 'it'\\''s $(id)'\n");
    expect(captured.audits[0]).toMatchObject({ template: "greet" });
  });

  it("records the command's hash, not the command, when configured", async () => {
    const { handler, captured } = setup({ settings: { remoteBound: false, auditCommand: "hash" } });
    await handler(v1Event(request()), fakeContext());
    expect(captured.audits[0]!.command).toBeUndefined();
    expect(captured.audits[0]!.commandSha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it("writes exactly one audit line and no key material, also for errors", async () => {
    const { handler, captured } = setup();
    await handler(v1Event(request()), fakeContext());
    await handler(v1Event("{"), fakeContext());
    await handler(v1Event(request({ port: hung.port, timeoutMs: 300 })), fakeContext());
    expect(captured.audits).toHaveLength(3);
    for (const line of captured.lines) {
      for (const marker of KEY_MARKERS) expect(line).not.toMatch(marker);
    }
  });
});
