import type { Duplex } from "node:stream";
import { Client as Ssh2Client } from "ssh2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Deadline } from "../../lib/deadline.ts";
import { type SessionProgress, SshConnection } from "../../lib/session/connection.ts";
import { prepareAuth } from "../../lib/session/credentials.ts";
import { hostKeyTrust } from "../../lib/session/host-keys.ts";
import { SessionOutput } from "../../lib/session/output-capture.ts";
import { activeHandles, expectNoSessionLeaks } from "../helpers/leaks.ts";
import { type SshdServer, startSshd } from "../helpers/sshd.ts";

// The connection adapter on its own: the milestones in phase order, one close() however often
// it is called, and its transport seam — the same session run over a stream handed to it
// (a direct-tcpip channel through a jump host, here sshd itself) instead of a dialled socket.

let sshd: SshdServer;
beforeAll(async () => {
  sshd = await startSshd();
});
afterAll(async () => {
  await sshd?.stop();
});

function connection(): { conn: SshConnection; output: SessionOutput; progress: SessionProgress } {
  const deadline = new Deadline({ budgetMs: 10_000 });
  const output = new SessionOutput(1024);
  const progress: SessionProgress = { phase: "request", commandStarted: false };
  const conn = new SshConnection({ deadline, progress, output, keepalive: false });
  return { conn, output, progress };
}

function ssh() {
  return {
    host: sshd.host,
    port: sshd.port,
    username: sshd.username,
    auth: prepareAuth({ privateKey: sshd.keys.ed25519.privateKey }),
    hostKeys: hostKeyTrust({
      knownHosts: sshd.knownHostsLine,
      host: sshd.host,
      port: sshd.port,
      allowPinOnly: false,
    }),
  };
}

/** The milestones of every phase after the transport, in order; returns what stdout kept. */
async function runSession(conn: SshConnection, output: SessionOutput): Promise<string> {
  await conn.startSsh(ssh());
  expect(conn.ident).toMatch(/^SSH-2\.0-OpenSSH/);
  await conn.handshake();
  expect(conn.hostKeySha256).toBe(sshd.hostKeyFingerprint);
  await conn.authenticated();
  await conn.openExec("cat; echo done");
  await conn.execute("through the stream\n");
  expect(conn.exit).toEqual({ code: 0, signal: null });
  return output.stdout.text().text;
}

describe("SshConnection", () => {
  it("dials TCP and reaches every milestone; close() is one promise, and leaves nothing alive", async () => {
    const before = activeHandles();
    const { conn, output } = connection();
    await conn.dial(sshd.host, sshd.port);
    expect(await runSession(conn, output)).toBe("through the stream\ndone\n");
    const first = conn.close();
    expect(conn.close()).toBe(first);
    expect(await first).toBe(false);
    await expectNoSessionLeaks(before);
  });

  it("runs the whole session over a given stream (a jump host's direct-tcpip channel)", async () => {
    const before = activeHandles();
    const jump = new Ssh2Client();
    await new Promise<void>((resolve, reject) => {
      jump.once("ready", () => resolve()).once("error", reject);
      jump.connect({
        host: sshd.host,
        port: sshd.port,
        username: sshd.username,
        privateKey: sshd.keys.ed25519.privateKey,
      });
    });
    try {
      const stream = await new Promise<Duplex>((resolve, reject) =>
        jump.forwardOut("127.0.0.1", 0, sshd.host, sshd.port, (err, channel) =>
          err ? reject(err) : resolve(channel),
        ),
      );
      let streamClosed = false;
      stream.once("close", () => {
        streamClosed = true;
      });
      const { conn, output } = connection();
      conn.useTransport(stream);
      expect(() => conn.useTransport(stream)).toThrow(/already set/);
      expect(await runSession(conn, output)).toBe("through the stream\ndone\n");
      await conn.close();
      // The stream the session ran on is closed; the jump connection is still the caller's.
      expect(streamClosed).toBe(true);
      const jumpStillUp = await new Promise<boolean>((resolve) =>
        jump.exec("true", (err, channel) => {
          if (err) resolve(false);
          else channel.resume().once("close", () => resolve(true));
        }),
      );
      expect(jumpStillUp).toBe(true);
    } finally {
      jump.end();
      await new Promise<void>((resolve) => jump.once("close", () => resolve()));
    }
    await expectNoSessionLeaks(before, { waitMs: 1000 });
  });

  it("a failure rejects every pending milestone with one classified error", async () => {
    const { conn, progress } = connection();
    await conn.dial(sshd.host, sshd.port);
    progress.phase = "banner";
    const banner = conn.startSsh({
      ...ssh(),
      hostKeys: hostKeyTrust({ host: "h", port: 22, allowPinOnly: false }),
    });
    await banner;
    await expect(conn.handshake()).rejects.toMatchObject({
      name: "HostKeyUnknown",
      phase: "handshake",
    });
    await expect(conn.authenticated()).rejects.toMatchObject({ name: "HostKeyUnknown" });
    await conn.close();
  });
});
