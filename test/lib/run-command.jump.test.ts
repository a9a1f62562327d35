import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCommand } from "../../lib/index.ts";
import type { RunOptions, RunRequest, RunResult } from "../../lib/types.ts";
import { type JumpLab, type JumpServer, startJumpLab } from "../helpers/jump-lab.ts";
import { activeHandles, expectNoSessionLeaks } from "../helpers/leaks.ts";
import { allProcesses, descendantsOf, killPid, TEST_PASSWORD } from "../helpers/sshd.ts";

// Jump host (request `via`) against real OpenSSH on both hops: the target listens inside a
// network namespace this process cannot reach; the jump sshd runs in that namespace
// (inetd-style) and forwards to it. Root and iproute2 are required: without them the lab
// throws and these tests fail, never skip.

let lab: JumpLab;
let jump: JumpServer;
let noForwardJump: JumpServer;
let permitOpenJump: JumpServer;

beforeAll(async () => {
  lab = await startJumpLab();
  jump = await lab.jump();
  noForwardJump = await lab.jump(["AllowTcpForwarding no"]);
  permitOpenJump = await lab.jump(["PermitOpen 127.0.0.1:1"]);
});

afterAll(async () => {
  await lab?.stop();
  // The namespace is gone with the lab.
  const { execFileSync } = await import("node:child_process");
  expect(execFileSync("/usr/sbin/ip", ["netns", "list"]).toString()).not.toContain(lab.ns);
});

function request(over: Partial<RunRequest> = {}, via: Partial<RunRequest["via"]> = {}): RunRequest {
  return {
    host: "127.0.0.1",
    port: lab.target.port,
    username: lab.target.username,
    command: "echo hello-from-target; hostname >/dev/null; exit 3",
    hostKey: lab.target.hostKeyFingerprint,
    via: {
      host: jump.host,
      port: jump.port,
      username: lab.target.username,
      hostKey: jump.hostKeyFingerprint,
      ...via,
    },
    ...over,
  };
}

function options(over: Partial<RunOptions> = {}): RunOptions {
  const secret = { privateKey: lab.target.keys.ed25519.privateKey };
  return { secret, via: { secret }, budgetMs: 5_000, ...over };
}

interface Timed {
  result: RunResult;
  elapsedMs: number;
}

/**
 * One session; asserts nothing of it is alive when runCommand has resolved. `settled`: the
 * test's own fault machinery (a kill it started mid-session) to finish first, so only the
 * session's handles are counted.
 */
async function timed(
  req: RunRequest,
  opts: RunOptions,
  leakWaitMs = 0,
  settled?: () => Promise<unknown>,
): Promise<Timed> {
  const baseline = activeHandles();
  const start = performance.now();
  const result = await runCommand(req, opts);
  const elapsedMs = performance.now() - start;
  await settled?.();
  await expectNoSessionLeaks(baseline, { waitMs: leakWaitMs });
  return { result, elapsedMs };
}

describe("jump host (via) — lab sanity", () => {
  it("the target is unreachable directly from this namespace", async () => {
    const { result } = await timed(
      { ...request(), via: undefined },
      { secret: { privateKey: lab.target.keys.ed25519.privateKey }, budgetMs: 2_000 },
    );
    expect(result.error?.name, JSON.stringify(result.error)).toBe("ConnectRefused");
    expect(result.error?.hop).toBeUndefined();
    expect(result.via).toBeUndefined();
    await expect(
      new Promise((resolve, reject) => {
        const s = net.connect(lab.target.port, "127.0.0.1");
        s.once("connect", () => {
          s.destroy();
          resolve("connected");
        });
        s.once("error", reject);
      }),
    ).rejects.toMatchObject({ code: "ECONNREFUSED" });
  });
});

describe("jump host (via) — success", () => {
  it("runs the command on the target through the jump host, with both hops' timings", async () => {
    const { result, elapsedMs } = await timed(request(), options());
    expect(result.error, JSON.stringify(result.error)).toBeUndefined();
    expect(result.status).toBe("failed");
    expect(result.exitCode).toBe(3);
    expect(result.stdout).toBe("hello-from-target\n");
    expect(result.target).toMatchObject({ host: "127.0.0.1", port: lab.target.port });
    expect(result.server?.hostKeySha256).toBe(lab.target.hostKeyFingerprint);
    const via = result.via!;
    expect(via).toMatchObject({
      host: "127.0.0.1",
      port: jump.port,
      address: "127.0.0.1",
      username: lab.target.username,
    });
    expect(via.server?.hostKeySha256).toBe(jump.hostKeyFingerprint);
    expect(via.server?.ident).toMatch(/^SSH-2\.0-OpenSSH_/);
    const t = via.timings;
    // An IP literal skips resolve; every other phase ran and took a plausible time.
    expect(t.resolveMs).toBeNull();
    for (const key of ["connectMs", "bannerMs", "handshakeMs", "authMs", "forwardMs"] as const) {
      expect(t[key], key).not.toBeNull();
      expect(t[key]!, key).toBeGreaterThanOrEqual(0);
      expect(t[key]!, key).toBeLessThan(elapsedMs);
    }
    // The target session ran over the forward: no TCP connect and no DNS of its own.
    expect(result.timings.resolveMs).toBeNull();
    expect(result.timings.connectMs).toBeNull();
    for (const key of ["bannerMs", "handshakeMs", "authMs", "channelMs", "execMs"] as const) {
      expect(result.timings[key], key).not.toBeNull();
    }
    const hopSum =
      (t.connectMs ?? 0) +
      (t.bannerMs ?? 0) +
      (t.handshakeMs ?? 0) +
      (t.authMs ?? 0) +
      (t.forwardMs ?? 0);
    expect(hopSum).toBeLessThan(result.timings.totalMs);
    console.log(
      `jump: via ${JSON.stringify(t)}; target ${JSON.stringify(result.timings)}; elapsed ${Math.round(elapsedMs)} ms`,
    );
  });

  it("trusts the jump host through known_hosts (no pin), like a target", async () => {
    const req = request({}, { hostKey: undefined });
    const { result } = await timed(
      req,
      options({ knownHosts: `${jump.knownHostsLine}\n${lab.target.knownHostsLine}\n` }),
    );
    expect(result.error, JSON.stringify(result.error)).toBeUndefined();
    expect(result.exitCode).toBe(3);
  });
});

describe("jump host (via) — faults at the jump host", () => {
  const budgetMs = 1_500;

  async function expectFault(
    req: RunRequest,
    opts: RunOptions,
    name: string,
    hop: "via" | "target",
    phase: string,
    leakWaitMs = 0,
  ): Promise<RunResult> {
    const { result, elapsedMs } = await timed(req, { ...opts, budgetMs }, leakWaitMs);
    expect(result.error?.name, JSON.stringify(result.error)).toBe(name);
    expect(result.error?.hop).toBe(hop);
    expect(result.error?.phase).toBe(phase);
    expect(result.phase).toBe(phase);
    expect(result.via).toBeDefined();
    expect(elapsedMs).toBeLessThanOrEqual(budgetMs + 50);
    return result;
  }

  it("a jump host that never sends its banner → BannerTimeout at hop via", async () => {
    const tarpit = await lab.tarpit();
    try {
      const result = await expectFault(
        request({}, { port: tarpit.port }),
        options(),
        "BannerTimeout",
        "via",
        "banner",
        // The tarpit's own accepted socket lives in this process: give it time to see the FIN.
        1_000,
      );
      expect(result.via?.timings.bannerMs).toBeGreaterThan(budgetMs / 2);
      expect(result.timings.bannerMs).toBeNull();
    } finally {
      await tarpit.stop();
    }
  });

  it("AllowTcpForwarding no → ChannelRejected at hop via", async () => {
    const result = await expectFault(
      request({}, { port: noForwardJump.port, hostKey: noForwardJump.hostKeyFingerprint }),
      options(),
      "ChannelRejected",
      "via",
      "channel",
    );
    expect(result.via?.timings.authMs).not.toBeNull();
    expect(result.error?.retryable).toBe(true);
  });

  it("PermitOpen that does not cover the target → ChannelRejected at hop via", async () => {
    await expectFault(
      request({}, { port: permitOpenJump.port, hostKey: permitOpenJump.hostKeyFingerprint }),
      options(),
      "ChannelRejected",
      "via",
      "channel",
    );
  });

  it("a key the jump host does not accept → AuthFailed at hop via", async () => {
    const secret = { privateKey: lab.target.keys.ed25519.privateKey };
    const result = await expectFault(
      request(),
      options({ secret, via: { secret: { privateKey: lab.target.keys.unauthorized.privateKey } } }),
      "AuthFailed",
      "via",
      "auth",
    );
    expect(result.timings.bannerMs).toBeNull();
  });

  it("a jump host key that differs from the pin → HostKeyMismatch at hop via, no credential sent", async () => {
    const result = await expectFault(
      request({}, { hostKey: lab.target.hostKeyFingerprint }),
      options(),
      "HostKeyMismatch",
      "via",
      "handshake",
    );
    expect(result.error?.message).toMatch(/jump host/);
    expect(result.via?.timings.authMs).toBeNull();
    expect(result.via?.server?.hostKeySha256).toBe(jump.hostKeyFingerprint);
  });

  it("an unknown jump host key (no pin, not in known_hosts) → HostKeyUnknown at hop via; the jump host saw no auth", async () => {
    const fresh = await lab.jump();
    try {
      await expectFault(
        request({}, { port: fresh.port, hostKey: undefined }),
        options({ knownHosts: `${lab.target.knownHostsLine}\n` }),
        "HostKeyUnknown",
        "via",
        "handshake",
      );
      // sshd writes its log as the connection ends: wait for that line, then look for auth.
      const until = Date.now() + 2_000;
      const ended = /Received disconnect|Connection (closed|reset)/;
      while (!ended.test(fresh.log()) && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(fresh.log()).toMatch(ended);
      // Ended before authentication ("[preauth]"), and no auth method was ever tried.
      expect(fresh.log()).toMatch(/\[preauth\]/);
      expect(fresh.log()).not.toMatch(/publickey|password/i);
    } finally {
      await fresh.stop();
    }
  });

  it("a jump host key revoked in known_hosts → HostKeyMismatch at hop via, pin or not", async () => {
    await expectFault(
      request(),
      options({ knownHosts: `@revoked * ${jump.hostKeyLine}\n` }),
      "HostKeyMismatch",
      "via",
      "handshake",
    );
  });
});

describe("jump host (via) — password credential and cancellation", () => {
  it("a password for the jump host: trusted through known_hosts, never through a pin alone", async () => {
    const pw = await lab.jump(["PasswordAuthentication yes"]);
    try {
      const viaSecret = { password: TEST_PASSWORD };
      const listed = await timed(
        request({}, { port: pw.port, hostKey: undefined }),
        options({
          via: { secret: viaSecret },
          knownHosts: `${pw.knownHostsLine}\n${lab.target.knownHostsLine}\n`,
        }),
      );
      expect(listed.result.error, JSON.stringify(listed.result.error)).toBeUndefined();
      expect(listed.result.exitCode).toBe(3);
      // The same jump host vouched for only by the request's pin: refused, nothing sent.
      const pinned = await timed(
        request({}, { port: pw.port, hostKey: pw.hostKeyFingerprint }),
        options({ via: { secret: viaSecret } }),
      );
      expect(pinned.result.error?.name, JSON.stringify(pinned.result.error)).toBe("HostKeyUnknown");
      expect(pinned.result.error?.hop).toBe("via");
    } finally {
      await pw.stop();
    }
  });

  it("the caller's signal during the jump host's banner → DeadlineExceeded at hop via", async () => {
    const tarpit = await lab.tarpit();
    try {
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 300);
      const { result, elapsedMs } = await timed(
        request({}, { port: tarpit.port }),
        options({ budgetMs: undefined, signal: controller.signal }),
        1_000,
      );
      expect(result.error?.name, JSON.stringify(result.error)).toBe("DeadlineExceeded");
      expect(result.error?.hop).toBe("via");
      expect(result.error?.phase).toBe("banner");
      expect(elapsedMs).toBeLessThan(300 + 300);
    } finally {
      await tarpit.stop();
    }
  });
});

describe("jump host (via) — faults behind the jump host", () => {
  const budgetMs = 1_500;

  it("a target that never sends its banner → BannerTimeout at hop target", async () => {
    const { result, elapsedMs } = await timed(
      request({ port: lab.silentTargetPort }),
      options({ budgetMs }),
    );
    expect(result.error?.name, JSON.stringify(result.error)).toBe("BannerTimeout");
    expect(result.error?.hop).toBe("target");
    expect(result.error?.phase).toBe("banner");
    expect(result.via?.timings.forwardMs).not.toBeNull();
    expect(elapsedMs).toBeLessThanOrEqual(budgetMs + 50);
  });

  it("nothing listens at the target's port → ConnectRefused at hop target", async () => {
    const { result, elapsedMs } = await timed(
      request({ port: lab.closedTargetPort }),
      options({ budgetMs }),
    );
    expect(result.error?.name, JSON.stringify(result.error)).toBe("ConnectRefused");
    expect(result.error?.hop).toBe("target");
    expect(result.error?.phase).toBe("connect");
    expect(elapsedMs).toBeLessThanOrEqual(budgetMs + 50);
  });

  it("a target key that differs from its pin → HostKeyMismatch at hop target", async () => {
    const { result } = await timed(
      request({ hostKey: jump.hostKeyFingerprint }),
      options({ budgetMs }),
    );
    expect(result.error?.name, JSON.stringify(result.error)).toBe("HostKeyMismatch");
    expect(result.error?.hop).toBe("target");
  });
});

describe("jump host (via) — the jump host dies mid-command", () => {
  it("→ ConnectionLost at hop via, command started, nothing left alive", async () => {
    const budgetMs = 3_000;
    const dying = await lab.jump();
    let killed: Promise<void> | undefined;
    const { result, elapsedMs } = await timed(
      request({ command: "sleep 5" }, { port: dying.port, hostKey: dying.hostKeyFingerprint }),
      options({
        budgetMs,
        onPhase: (phase) => {
          if (phase === "exec") {
            killed = new Promise<void>((r) => setTimeout(r, 100)).then(() => dying.killSessions());
          }
        },
      }),
      0,
      async () => killed,
    );
    await dying.stop();
    const seen = JSON.stringify({ error: result.error, via: result.via, elapsedMs });
    expect(result.error?.name, seen).toBe("ConnectionLost");
    expect(result.error?.hop, seen).toBe("via");
    expect(result.error?.phase, seen).toBe("exec");
    expect(result.error?.commandStarted, seen).toBe(true);
    expect(elapsedMs).toBeLessThan(budgetMs);
  });
});

describe("jump host (via) — the jump host hangs mid-command", () => {
  it("→ its keepalive finds it: ConnectionLost at hop via, well before the budget", async () => {
    const budgetMs = 6_000;
    const hanging = await lab.jump();
    let frozenAt: number | undefined;
    const start = performance.now();
    try {
      const { result, elapsedMs } = await timed(
        request(
          { command: "sleep 5" },
          { port: hanging.port, hostKey: hanging.hostKeyFingerprint },
        ),
        options({
          budgetMs,
          keepalive: { intervalMs: 300, countMax: 2 },
          onPhase: (phase) => {
            if (phase === "exec") {
              setTimeout(() => {
                hanging.freezeSessions();
                frozenAt = performance.now() - start;
              }, 100);
            }
          },
        }),
      );
      const seen = JSON.stringify({ error: result.error, elapsedMs, frozenAt });
      expect(frozenAt, seen).toBeDefined();
      expect(result.error?.name, seen).toBe("ConnectionLost");
      expect(result.error?.hop, seen).toBe("via");
      expect(result.error?.phase, seen).toBe("exec");
      expect(result.error?.message, seen).toMatch(/keepalive/);
      // interval × (countMax + 1) after the freeze, plus teardown and a margin.
      expect(elapsedMs - frozenAt!, seen).toBeLessThan(300 * 3 + 300 + 300);
    } finally {
      await hanging.stop();
    }
  });
});

describe("jump host (via) — the target hangs behind a healthy jump host", () => {
  it("→ the target's keepalive finds it: ConnectionLost at hop target", async () => {
    const budgetMs = 6_000;
    let frozen: number[] = [];
    try {
      const { result } = await timed(
        request({ command: "sleep 5" }),
        options({
          budgetMs,
          keepalive: { intervalMs: 300, countMax: 2 },
          onPhase: (phase) => {
            if (phase === "exec") {
              setTimeout(() => {
                // The target sshd's per-connection processes (not the listener): by PID.
                frozen = [...descendantsOf(lab.target.pid, allProcesses())];
                for (const pid of frozen) killPid(pid, "SIGSTOP");
              }, 100);
            }
          },
        }),
      );
      const seen = JSON.stringify({ error: result.error, frozen: frozen.length });
      expect(frozen.length, seen).toBeGreaterThan(0);
      expect(result.error?.name, seen).toBe("ConnectionLost");
      expect(result.error?.hop, seen).toBe("target");
      expect(result.error?.message, seen).toMatch(/keepalive/);
    } finally {
      for (const pid of frozen) killPid(pid, "SIGKILL");
    }
  });
});

describe("jump host (via) — request checks", () => {
  it("refuses a malformed via field naming it, before any connection", async () => {
    const { result } = await timed(request({}, { hostKey: "not-a-key" }), options());
    expect(result.error?.name).toBe("ValidationError");
    expect(result.error?.message).toMatch(/"via\.hostKey"/);
    expect(result.error?.hop).toBe("via");
  });

  it("an unusable jump host credential → CredentialInvalid at hop via, before any connection", async () => {
    const { result, elapsedMs } = await timed(
      request(),
      options({
        via: { secret: { privateKey: "not a key" }, credentialName: "bastion" },
      }),
    );
    expect(result.error?.name, JSON.stringify(result.error)).toBe("CredentialInvalid");
    expect(result.error?.hop).toBe("via");
    expect(result.error?.phase).toBe("credentials");
    expect(result.error?.message).toContain('credential "bastion"');
    expect(result.via?.timings.connectMs).toBeNull();
    expect(elapsedMs).toBeLessThan(1_000);
  });

  it("requires the jump host's secret", async () => {
    await expect(
      runCommand(request(), { secret: { password: "x" }, budgetMs: 1_000 }),
    ).rejects.toThrow(/options\.via\.secret/);
  });
});
