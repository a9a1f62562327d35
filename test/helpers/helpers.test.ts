import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import net from "node:net";
import ssh2, { type ConnectConfig } from "ssh2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  acceptThenFin,
  acceptThenReset,
  bannerByteByByte,
  bannerInSegments,
  bannerThenSilence,
  closedPort,
  endlessJunk,
  fullAcceptQueue,
  junkThenProxy,
  splitBannerProxy,
  ssh1Banner,
  startProxy,
  tarpit,
} from "./adversaries.ts";
import { activeHandles, expectNoSessionLeaks, handleGrowth } from "./leaks.ts";
import { execBehaviours, startSsh2Server } from "./ssh2-server.ts";
import { SSH_PATH, type SshdServer, startSshd } from "./sshd.ts";

const { Client } = ssh2;

interface ExecResult {
  stdout: string;
  stderr: string;
  code: number | null;
  signal: string | null;
  hostKeySha256: string | null;
}

/**
 * Minimal raw-ssh2 session for checking the helpers (not the engine): connect, exec, collect,
 * always destroy. Rejects on the first error or after `timeoutMs`.
 */
function ssh2Exec(
  config: ConnectConfig,
  command: string,
  timeoutMs = 10_000,
  onReady?: (client: InstanceType<typeof Client>) => void,
): Promise<ExecResult> {
  return new Promise<ExecResult>((resolve, reject) => {
    const client = new Client();
    let hostKeySha256: string | null = null;
    let settled = false;
    const timer = setTimeout(
      () => done(new Error(`ssh2Exec timed out after ${timeoutMs} ms`)),
      timeoutMs,
    );
    const done = (err: Error | null, result?: ExecResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      client.destroy();
      if (err) reject(err);
      else resolve(result!);
    };
    client.on("error", (err) => done(err));
    client.on("ready", () => {
      onReady?.(client);
      client.exec(command, (err, stream) => {
        if (err) return done(err);
        let stdout = "";
        let stderr = "";
        let code: number | null = null;
        let signal: string | null = null;
        stream.on("data", (d: Buffer) => {
          stdout += d.toString();
        });
        stream.stderr.on("data", (d: Buffer) => {
          stderr += d.toString();
        });
        stream.on("exit", (c: number | null, s?: string) => {
          code = c;
          signal = s ?? null;
        });
        stream.on("close", () => done(null, { stdout, stderr, code, signal, hostKeySha256 }));
      });
    });
    client.connect({
      host: "127.0.0.1",
      readyTimeout: timeoutMs,
      hostVerifier: (key: Buffer) => {
        hostKeySha256 = `SHA256:${createHash("sha256").update(key).digest("base64").replace(/=+$/, "")}`;
        return true;
      },
      ...config,
    });
  });
}

/** Runs /usr/bin/ssh; resolves with exit code and output (never rejects). */
function opensshExec(
  args: string[],
  command: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(SSH_PATH, [...args, command], { timeout: 20_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : -1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

/** Connects a raw socket; collects data chunks; resolves when `until` says so or on timeout. */
function rawConnect(port: number) {
  const sock = net.connect({ host: "127.0.0.1", port });
  const chunks: Buffer[] = [];
  const state = { connected: false, ended: false, error: null as NodeJS.ErrnoException | null };
  sock.on("connect", () => {
    state.connected = true;
  });
  sock.on("data", (d: Buffer) => chunks.push(d));
  sock.on("end", () => {
    state.ended = true;
  });
  sock.on("error", (err: NodeJS.ErrnoException) => {
    state.error = err;
  });
  return {
    sock,
    chunks,
    state,
    text: () => Buffer.concat(chunks).toString("latin1"),
    bytes: () => chunks.reduce((n, c) => n + c.length, 0),
  };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function waitFor(cond: () => boolean, timeoutMs = 5_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error("condition not met in time");
    await sleep(10);
  }
}

describe("startSshd (real OpenSSH)", () => {
  let sshd: SshdServer;
  beforeAll(async () => {
    sshd = await startSshd();
  });
  afterAll(async () => {
    await sshd?.stop();
  });

  it("runs `echo hi` as the test user via the OpenSSH client, for every key type", async () => {
    for (const key of [sshd.keys.ed25519, sshd.keys.ecdsa, sshd.keys.rsa]) {
      const r = await opensshExec(sshd.sshArgs(key), "echo hi; id -un");
      expect(r, r.stderr).toMatchObject({ code: 0, stdout: `hi\n${sshd.username}\n` });
    }
    expect(sshd.log()).toMatch(/Accepted publickey for bsshtest/);
  });

  it("refuses the unauthorized key and an unknown host key", async () => {
    const r = await opensshExec(sshd.sshArgs(sshd.keys.unauthorized), "echo hi");
    expect(r.code).toBe(255);
    expect(r.stderr).toMatch(/Permission denied/);
    const strict = sshd.sshArgs(sshd.keys.ed25519, ["-o", "UserKnownHostsFile=/dev/null"]);
    const unknown = await opensshExec(strict, "echo hi");
    expect(unknown.code).toBe(255);
    expect(unknown.stderr).toMatch(/Host key verification failed/);
  });

  it("serves raw ssh2: the host key matches, password and encrypted-key auth work", async () => {
    const viaPassword = await ssh2Exec(
      {
        port: sshd.port,
        username: sshd.username,
        password: sshd.password!,
        authHandler: ["password"],
      },
      "echo pw",
    );
    expect(viaPassword).toMatchObject({ stdout: "pw\n", code: 0 });
    expect(viaPassword.hostKeySha256).toBe(sshd.hostKeyFingerprint);
    expect(sshd.hostKeyLine).toMatch(/^ssh-ed25519 AAAA\S+$/);
    expect(sshd.knownHostsLine).toBe(`[127.0.0.1]:${sshd.port} ${sshd.hostKeyLine}`);

    const viaEncrypted = await ssh2Exec(
      {
        port: sshd.port,
        username: sshd.username,
        privateKey: sshd.keys.encrypted.privateKey,
        passphrase: sshd.keys.encrypted.passphrase,
      },
      "echo enc",
    );
    expect(viaEncrypted).toMatchObject({ stdout: "enc\n", code: 0 });

    await expect(
      ssh2Exec(
        { port: sshd.port, username: sshd.username, password: "wrong", authHandler: ["password"] },
        "echo no",
      ),
    ).rejects.toThrow(/authentication methods failed/);
  });

  it("lists the test user's processes, including orphans, and stop() kills them", async () => {
    const extra = await startSshd({ maxSessions: 2 });
    try {
      // A command left running by a session that ended (reparented to init).
      const r = await opensshExec(extra.sshArgs(), "setsid sleep 300 </dev/null >/dev/null 2>&1 &");
      expect(r.code).toBe(0);
      await waitFor(() => extra.userProcesses().some((p) => p.args === "sleep 300"));
      // Processes of the other server are not this one's.
      expect(sshd.userProcesses().some((p) => p.args === "sleep 300")).toBe(false);
      const orphan = extra.userProcesses().find((p) => p.args === "sleep 300")!;
      await extra.stop();
      await waitFor(() => {
        try {
          process.kill(orphan.pid, 0);
          return false;
        } catch {
          return true;
        }
      });
    } finally {
      await extra.stop();
    }
  });
});

describe("startSsh2Server", () => {
  it("echoes by default and reports its host key", async () => {
    const srv = await startSsh2Server();
    try {
      const r = await ssh2Exec({ port: srv.port, username: "u", password: "p" }, "hello");
      expect(r).toMatchObject({
        stdout: "hello\n",
        code: 0,
        hostKeySha256: srv.hostKeyFingerprint,
      });
      expect(srv.hostKeyLine).toMatch(/^ssh-ed25519 AAAA/);
      expect(srv.events.map((e) => e.type)).toEqual(
        expect.arrayContaining(["connection", "auth", "ready", "session", "exec"]),
      );
    } finally {
      await srv.close();
    }
  });

  it("scripts auth: reject, never, partial", async () => {
    const rejecting = await startSsh2Server({ auth: "reject" });
    const silent = await startSsh2Server({ auth: "never" });
    const partial = await startSsh2Server({ auth: "partial" });
    try {
      await expect(
        ssh2Exec({ port: rejecting.port, username: "u", password: "p" }, "x"),
      ).rejects.toThrow(/authentication methods failed/);
      await expect(
        ssh2Exec(
          { port: silent.port, username: "u", password: "p", readyTimeout: 300 },
          "x",
          2_000,
        ),
      ).rejects.toThrow(/Timed out while waiting for handshake/);
      await expect(
        ssh2Exec({ port: partial.port, username: "u", password: "p" }, "x", 2_000),
      ).rejects.toThrow();
      expect(partial.events.filter((e) => e.type === "auth").length).toBeGreaterThan(0);
    } finally {
      await Promise.all([rejecting.close(), silent.close(), partial.close()]);
    }
  });

  it("scripts channel open and exec replies", async () => {
    const rejectSession = await startSsh2Server({ session: "reject" });
    const rejectExec = await startSsh2Server({ execRequest: "reject" });
    const neverExec = await startSsh2Server({ execRequest: "never" });
    try {
      const cfg = { username: "u", password: "p" };
      await expect(ssh2Exec({ ...cfg, port: rejectSession.port }, "x")).rejects.toThrow(
        /open failure|rejected|Unable/i,
      );
      await expect(ssh2Exec({ ...cfg, port: rejectExec.port }, "x")).rejects.toThrow(
        /Unable to exec/,
      );
      await expect(ssh2Exec({ ...cfg, port: neverExec.port }, "x", 500)).rejects.toThrow(
        /timed out/,
      );
    } finally {
      await Promise.all([rejectSession.close(), rejectExec.close(), neverExec.close()]);
    }
  });

  it("scripts exec behaviours: codes, signals, stderr, flood, exit without close", async () => {
    const cfg = { username: "u", password: "p" };
    const cases = [
      {
        exec: execBehaviours.exitWith(3, { stdout: "o", stderr: "e" }),
        want: { code: 3, stdout: "o", stderr: "e" },
      },
      { exec: execBehaviours.exitWithSignal("KILL"), want: { code: null, signal: "SIGKILL" } },
      {
        exec: execBehaviours.closeWithoutExit("x"),
        want: { code: null, signal: null, stdout: "x" },
      },
    ];
    for (const c of cases) {
      const srv = await startSsh2Server({ exec: c.exec });
      try {
        expect(await ssh2Exec({ ...cfg, port: srv.port }, "cmd")).toMatchObject(c.want);
      } finally {
        await srv.close();
      }
    }
    const flood = await startSsh2Server({ exec: execBehaviours.flood(3_000_000) });
    const neverClose = await startSsh2Server({ exec: execBehaviours.exitWithoutClose(0, "done") });
    const never = await startSsh2Server({ exec: execBehaviours.neverExit() });
    try {
      const r = await ssh2Exec({ ...cfg, port: flood.port }, "cmd");
      expect(r.stdout.length).toBe(3_000_000);
      await expect(ssh2Exec({ ...cfg, port: neverClose.port }, "cmd", 500)).rejects.toThrow(
        /timed out/,
      );
      await expect(ssh2Exec({ ...cfg, port: never.port }, "cmd", 500)).rejects.toThrow(/timed out/);
    } finally {
      await Promise.all([flood.close(), neverClose.close(), never.close()]);
    }
  });

  it("stopReading makes the client's stdin writes back up", async () => {
    const srv = await startSsh2Server({ exec: execBehaviours.stopReading() });
    const client = new Client();
    client.on("error", () => {});
    try {
      const backedUp = await new Promise<boolean>((resolve, reject) => {
        client.on("ready", () => {
          client.exec("cat", (err, stream) => {
            if (err) return reject(err);
            stream.on("data", () => {});
            const chunk = Buffer.alloc(64 * 1024);
            // ssh2 buffers up to the channel window (2 MiB) plus the stream's own buffer.
            for (let i = 0; i < 256; i++) {
              if (!stream.write(chunk)) {
                let drained = false;
                stream.once("drain", () => {
                  drained = true;
                });
                setTimeout(() => resolve(!drained), 300);
                return;
              }
            }
            resolve(false);
          });
        });
        client.connect({ host: "127.0.0.1", port: srv.port, username: "u", password: "p" });
      });
      expect(backedUp).toBe(true);
    } finally {
      client.destroy();
      await srv.close();
    }
  });

  it("records signals and close() destroys accepted sockets", async () => {
    const srv = await startSsh2Server({ exec: execBehaviours.neverExit() });
    const client = new Client();
    const closed = new Promise<void>((r) => client.on("close", () => r()));
    client.on("error", () => {});
    await new Promise<void>((resolve, reject) => {
      client.on("ready", () => {
        client.exec("sleep", (err, stream) => {
          if (err) return reject(err);
          stream.on("data", () => {});
          stream.signal("TERM");
          resolve();
        });
      });
      client.connect({ host: "127.0.0.1", port: srv.port, username: "u", password: "p" });
    });
    await waitFor(() => srv.events.some((e) => e.type === "signal" && e.name === "TERM"));
    expect(srv.openSockets()).toBe(1);
    await srv.close();
    await closed;
    await waitFor(() => srv.openSockets() === 0);
  });
});

describe("adversaries", () => {
  it("tarpit accepts and sends nothing", async () => {
    const a = await tarpit();
    const c = rawConnect(a.port);
    await sleep(200);
    expect(c.state.connected).toBe(true);
    expect(c.bytes()).toBe(0);
    await a.close();
    await waitFor(() => c.sock.destroyed || c.state.ended);
    c.sock.destroy();
  });

  it("banner in segments and byte by byte arrive as separate chunks", async () => {
    const seg = await bannerInSegments(3, 30);
    const byByte = await bannerByteByByte(5, "SSH-2.0-x\r\n");
    try {
      const c = rawConnect(seg.port);
      await waitFor(() => c.text().includes("\n"));
      expect(c.text()).toMatch(/^SSH-2\.0-OpenSSH/);
      expect(c.chunks.length).toBe(3);
      const b = rawConnect(byByte.port);
      await waitFor(() => b.text().includes("\n"));
      expect(b.text()).toBe("SSH-2.0-x\r\n");
      expect(b.chunks.length).toBe(11);
      c.sock.destroy();
      b.sock.destroy();
    } finally {
      await Promise.all([seg.close(), byByte.close()]);
    }
  });

  it("endless junk, SSH-1.5 and banner-then-silence", async () => {
    const junk = await endlessJunk();
    const v1 = await ssh1Banner();
    const silent = await bannerThenSilence();
    try {
      const j = rawConnect(junk.port);
      await waitFor(() => j.bytes() > 100_000);
      expect(j.text().includes("\n")).toBe(false);
      j.sock.destroy();
      const o = rawConnect(v1.port);
      await waitFor(() => o.text().includes("\n"));
      expect(o.text()).toMatch(/^SSH-1\.5-/);
      o.sock.destroy();
      const s = rawConnect(silent.port);
      await waitFor(() => s.text().includes("\n"));
      s.sock.write("SSH-2.0-client\r\n");
      await sleep(150);
      expect(s.text()).toMatch(/^SSH-2\.0-[^\n]*\r\n$/);
      s.sock.destroy();
    } finally {
      await Promise.all([junk.close(), v1.close(), silent.close()]);
    }
  });

  it("accept-then-RST, accept-then-FIN and a closed port", async () => {
    const rst = await acceptThenReset();
    const fin = await acceptThenFin();
    const closed = await closedPort();
    try {
      const r = rawConnect(rst.port);
      await waitFor(() => r.state.error !== null);
      expect(r.state.error?.code).toBe("ECONNRESET");
      const f = rawConnect(fin.port);
      await waitFor(() => f.state.ended);
      expect(f.state.error).toBeNull();
      f.sock.destroy();
      const c = rawConnect(closed.port);
      await waitFor(() => c.state.error !== null);
      expect(c.state.error?.code).toBe("ECONNREFUSED");
    } finally {
      await Promise.all([rst.close(), fin.close(), closed.close()]);
    }
  });

  it("a full accept queue makes a new connect hang", async () => {
    const q = await fullAcceptQueue();
    try {
      expect(q.fillers).toBeGreaterThan(0);
      const c = rawConnect(q.port);
      await sleep(1_000);
      expect(c.state.connected).toBe(false);
      expect(c.state.error).toBeNull();
      c.sock.destroy();
    } finally {
      await q.close();
    }
  });
});

describe("proxies in front of a real sshd", () => {
  let sshd: SshdServer;
  let base: ConnectConfig;
  beforeAll(async () => {
    sshd = await startSshd();
    base = { username: sshd.username, privateKey: sshd.keys.ed25519.privateKey };
  });
  afterAll(async () => {
    await sshd?.stop();
  });

  it("junkThenProxy: junk lines, then the real session succeeds", async () => {
    const p = await junkThenProxy(sshd.port, 5);
    try {
      const raw = rawConnect(p.port);
      await waitFor(() => raw.text().includes("SSH-2.0-"));
      expect(raw.text()).toMatch(/^junk line 1[^\n]*\r\n(junk[^\n]*\r\n){4}SSH-2\.0-OpenSSH/);
      raw.sock.destroy();
      const r = await ssh2Exec({ ...base, port: p.port }, "echo via-junk");
      expect(r).toMatchObject({ stdout: "via-junk\n", code: 0 });
    } finally {
      await p.close();
    }
  });

  it("splitBannerProxy: the banner arrives in N segments, then the session proceeds", async () => {
    const p3 = await splitBannerProxy(sshd.port, 3, 40);
    const p2 = await splitBannerProxy(sshd.port, 2, 40);
    try {
      const raw = rawConnect(p3.port);
      await waitFor(() => raw.text().includes("\n"));
      expect(raw.chunks.length).toBe(3);
      expect(raw.text()).toMatch(/^SSH-2\.0-OpenSSH[^\n]*\r\n$/);
      raw.sock.destroy();
      // The OpenSSH client reassembles a banner in any number of segments.
      const viaOpenssh = await opensshExec(
        sshd.sshArgs(sshd.keys.ed25519, [], p3.port),
        "echo split3",
      );
      expect(viaOpenssh, viaOpenssh.stderr).toMatchObject({ code: 0, stdout: "split3\n" });
      // Raw ssh2 copes with two segments (it breaks on three or more: see field notes).
      const r = await ssh2Exec({ ...base, port: p2.port }, "echo split2");
      expect(r).toMatchObject({ stdout: "split2\n", code: 0 });
    } finally {
      await Promise.all([p3.close(), p2.close()]);
    }
  });

  it("startProxy forwards, goes silent, resets, swallows FIN", async () => {
    const p = await startProxy(sshd.port);
    try {
      expect(await ssh2Exec({ ...base, port: p.port }, "echo proxied")).toMatchObject({
        stdout: "proxied\n",
      });

      // goSilent after ready: the exec never gets an answer.
      await expect(
        ssh2Exec({ ...base, port: p.port }, "echo x", 800, () => p.goSilent()),
      ).rejects.toThrow(/timed out/);
      p.resume();

      // resetAll mid-session: the client sees a reset.
      await expect(
        ssh2Exec({ ...base, port: p.port }, "sleep 5", 5_000, () =>
          setTimeout(() => p.resetAll(), 100),
        ),
      ).rejects.toThrow(/ECONNRESET|Connection lost|closed/i);

      // swallowClientFin: after the client ends, the connection toward it never closes.
      p.swallowClientFin();
      const client = new Client();
      client.on("error", () => {});
      let closed = false;
      client.on("close", () => {
        closed = true;
      });
      await new Promise<void>((resolve) => {
        client.on("ready", () => resolve());
        client.connect({ host: "127.0.0.1", ...base, port: p.port });
      });
      client.end();
      await sleep(400);
      expect(closed).toBe(false);
      expect(p.open()).toBe(1);
      p.resetAll();
      await waitFor(() => closed);
    } finally {
      await p.close();
    }
  });
});

describe("leaks", () => {
  it("sees a socket left open and is quiet once it is destroyed", async () => {
    const srv = await tarpit();
    try {
      const baseline = activeHandles();
      const sock = net.connect({ host: "127.0.0.1", port: srv.port });
      await new Promise<void>((r) => sock.once("connect", () => r()));
      expect(handleGrowth(baseline)).toMatchObject({ TCPSocketWrap: expect.any(Number) });
      await expect(expectNoSessionLeaks(baseline)).rejects.toThrow(/TCPSocketWrap/);
      sock.destroy();
      // The tarpit's accepted end closes a moment later: allow for it.
      await srv.close();
      await expectNoSessionLeaks(baseline, { waitMs: 1_000 });
    } finally {
      await srv.close();
    }
  });
});
