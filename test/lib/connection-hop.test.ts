import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Deadline } from "../../lib/deadline.ts";
import { type SessionProgress, SshConnection } from "../../lib/session/connection.ts";
import { prepareAuth } from "../../lib/session/credentials.ts";
import { hostKeyTrust } from "../../lib/session/host-keys.ts";
import { SessionOutput } from "../../lib/session/output-capture.ts";
import { activeHandles, expectNoSessionLeaks } from "../helpers/leaks.ts";
import { freePort, type SshdServer, startSshd } from "../helpers/sshd.ts";

// SshConnection as a jump host's connection (hop "via"): the same setup as a target's, its
// errors tagged and worded for the hop, a direct-tcpip forward that carries a second
// SshConnection, `down`, `failure`, and a close that skips the goodbye. The jump host here
// is sshd forwarding to itself; test/lib/run-command.jump.test.ts runs the real two-hop lab.

let sshd: SshdServer;
beforeAll(async () => {
  sshd = await startSshd();
});
afterAll(async () => {
  await sshd?.stop();
});

function ssh(knownHosts = sshd.knownHostsLine) {
  return {
    host: sshd.host,
    port: sshd.port,
    username: sshd.username,
    auth: prepareAuth({ privateKey: sshd.keys.ed25519.privateKey }),
    hostKeys: hostKeyTrust({ knownHosts, host: sshd.host, port: sshd.port, allowPinOnly: false }),
  };
}

function jumpConnection(): { conn: SshConnection; progress: SessionProgress } {
  const progress: SessionProgress = { phase: "connect", commandStarted: false };
  const conn = new SshConnection({
    deadline: new Deadline({ budgetMs: 10_000 }),
    progress,
    keepalive: { intervalMs: 1_000, countMax: 2 },
    keepaliveAtAuth: false,
    hop: "via",
  });
  return { conn, progress };
}

/** Dial, banner, handshake and auth: a jump host's phases before its forward. */
async function logIn(conn: SshConnection, progress: SessionProgress): Promise<void> {
  await conn.dial(sshd.host, sshd.port);
  progress.phase = "banner";
  await conn.startSsh(ssh());
  await conn.handshake();
  progress.phase = "auth";
  await conn.authenticated();
}

describe("SshConnection as a jump host (hop via)", () => {
  it("forwards to a target that runs a whole session over the channel; close(false) releases everything", async () => {
    const before = activeHandles();
    const { conn: jump, progress } = jumpConnection();
    await logIn(jump, progress);
    progress.phase = "channel";
    const channel = await jump.forwardOut(sshd.host, sshd.port);
    jump.startKeepalive();

    const output = new SessionOutput(1024);
    const targetProgress: SessionProgress = { phase: "banner", commandStarted: false };
    const target = new SshConnection({
      deadline: new Deadline({ budgetMs: 10_000 }),
      progress: targetProgress,
      output,
      keepalive: false,
    });
    target.useTransport(channel);
    await target.startSsh(ssh());
    await target.handshake();
    await target.authenticated();
    await target.openExec("echo through-the-forward");
    targetProgress.commandStarted = true;
    await target.execute(undefined);
    expect(target.exit).toEqual({ code: 0, signal: null });
    expect(output.stdout.text().text).toBe("through-the-forward\n");
    // Its keepalive is answered (sshd answers global requests): two probes later it is not
    // "silent" (unanswered for 1.5 intervals), with half an interval of margin for a loaded host.
    await new Promise((r) => setTimeout(r, 2_200));
    expect(jump.down).toBe(false);

    await target.close();
    const closing = jump.close(false);
    expect(jump.close()).toBe(closing);
    await closing;
    expect(jump.down).toBe(true);
    await expectNoSessionLeaks(before, { waitMs: 1000 });
  });

  it("names and tags the jump host's host key refusal: nothing sent, hop via", async () => {
    const { conn, progress } = jumpConnection();
    await conn.dial(sshd.host, sshd.port);
    progress.phase = "banner";
    const strange = `[127.0.0.1]:${sshd.port} ${sshd.keys.ed25519.publicKey}`;
    await conn.startSsh(ssh(strange));
    const err = await conn.handshake().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ name: "HostKeyMismatch", phase: "handshake", hop: "via" });
    expect((err as Error).message).toContain(`of jump host ${sshd.host}:${sshd.port} differs`);
    expect(conn.down).toBe(true);
    await conn.close();
  });

  it("a forward the server cannot connect: ssh2's refusal as is (reason 2), the connection stays up", async () => {
    const { conn, progress } = jumpConnection();
    await logIn(conn, progress);
    const closedPort = await freePort();
    const err = await conn.forwardOut("127.0.0.1", closedPort).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(Error);
    expect((err as { reason?: unknown }).reason).toBe(2);
    expect(conn.down).toBe(false);
    // Still usable: a second forward, to sshd itself, opens.
    const channel = await conn.forwardOut(sshd.host, sshd.port);
    channel.destroy();
    await conn.close();
  });

  it("a failure after the forward reaches whoever waits on `failure`, classified and tagged", async () => {
    const { conn, progress } = jumpConnection();
    await logIn(conn, progress);
    progress.phase = "channel";
    const channel = await conn.forwardOut(sshd.host, sshd.port);
    const failed = conn.failure.then(
      () => undefined,
      (e: unknown) => e,
    );
    conn.fail(
      Object.assign(new Error("no answer to 3 keepalive requests"), { level: "client-timeout" }),
    );
    expect(await failed).toMatchObject({ name: "ConnectionLost", phase: "channel", hop: "via" });
    expect(conn.down).toBe(true);
    channel.destroy();
    await conn.close(false);
  });
});
