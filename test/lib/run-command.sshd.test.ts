import { createHash, randomBytes } from "node:crypto";
import dgram from "node:dgram";
import { Resolver } from "node:dns/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCommand } from "../../lib/index.ts";
import type { RunOptions, RunRequest, RunResult, Secret } from "../../lib/types.ts";
import { closedPort } from "../helpers/adversaries.ts";
import { activeHandles, handleGrowth } from "../helpers/leaks.ts";
import { type SshdServer, startSshd } from "../helpers/sshd.ts";

// Engine against a real OpenSSH sshd on loopback: what a user sees (status, exit code,
// error name and phase, elapsed time against the budget, handles left alive).

let sshd: SshdServer;
const MARGIN_MS = 50;

beforeAll(async () => {
  sshd = await startSshd();
});
afterAll(async () => {
  await sshd?.stop();
});

const SESSION_TYPES = ["TCPSocketWrap", "TCPWrap", "TCPConnectWrap", "Timeout"] as const;

interface Run {
  result: RunResult;
  elapsedMs: number;
}

/** Runs one session and asserts the engine's guarantees: on time, nothing left alive. */
async function run(
  request: Partial<RunRequest> & { command: string },
  options: Partial<RunOptions> = {},
): Promise<Run> {
  const budgetMs = options.budgetMs ?? 10_000;
  const before = activeHandles();
  const start = performance.now();
  const result = await runCommand(
    { host: sshd.host, port: sshd.port, username: sshd.username, ...request },
    {
      secret: { privateKey: sshd.keys.ed25519.privateKey },
      knownHosts: sshd.knownHostsLine,
      ...options,
      budgetMs,
    },
  );
  const elapsedMs = performance.now() - start;
  // Checked at once, not after a turn of the loop: the engine destroys and awaits its socket.
  const grown = handleGrowth(before, activeHandles(), SESSION_TYPES);
  expect(grown, "no socket or timer of the session is alive").toEqual({});
  expect(elapsedMs).toBeLessThanOrEqual(budgetMs + MARGIN_MS);
  return { result, elapsedMs };
}

const sha256 = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");

describe("commands against a real sshd", () => {
  it("runs a command and reports exit 0 with stdout, timings and server identity", async () => {
    const { result } = await run({ command: "echo hello; echo oops >&2" });
    expect(result.status).toBe("succeeded");
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toBe("hello\n");
    expect(result.stderr).toBe("oops\n");
    expect(result.phase).toBe("exec");
    expect(result.error).toBeUndefined();
    expect(result.server?.ident).toMatch(/^SSH-2\.0-OpenSSH_/);
    expect(result.server?.hostKeySha256).toBe(sshd.hostKeyFingerprint);
    expect(result.target.address).toBe("127.0.0.1");
    expect(result.remoteCleanup).toBe("not_needed");
    for (const k of ["connectMs", "bannerMs", "handshakeMs", "authMs", "channelMs", "execMs"]) {
      expect(result.timings[k as keyof typeof result.timings]).toBeGreaterThanOrEqual(0);
    }
    expect(result.timings.resolveMs).toBeNull(); // IP literal: no lookup
  });

  it("reports a non-zero exit as failed, not as an error", async () => {
    const { result } = await run({ command: "exit 42" });
    expect(result.status).toBe("failed");
    expect(result.exitCode).toBe(42);
    expect(result.error).toBeUndefined();
  });

  it("reports death by signal with the signal name", async () => {
    const { result } = await run({ command: "kill -KILL $$" });
    expect(result.status).toBe("failed");
    expect(result.exitCode).toBeNull();
    expect(result.signal).toBe("KILL");
  });

  it("writes stdin then EOF", async () => {
    const { result } = await run({ command: "wc -c; cat", stdin: "line one\nline two\n" });
    expect(result.stdout).toBe("18\n");
  });

  it("runs the command in the user's login shell (bash syntax works)", async () => {
    const { result } = await run({ command: "echo {1..3}; [[ -n x ]] && echo ok" });
    expect(result.stdout).toBe("1 2 3\nok\n");
  });

  it("keeps UTF-8 output intact", async () => {
    const { result } = await run({ command: "printf 'grüße ✓ 日本\\n'" });
    expect(result.stdout).toBe("grüße ✓ 日本\n");
    expect(result.output.stdoutEncoding).toBe("utf8");
  });

  it("returns binary output as base64, byte-exact", async () => {
    const bytes = randomBytes(300);
    bytes[0] = 0xfe;
    const { result } = await run({
      command: `printf '${[...bytes].map((b) => `\\${b.toString(8).padStart(3, "0")}`).join("")}'`,
    });
    expect(result.output.stdoutEncoding).toBe("base64");
    expect(Buffer.from(result.stdout, "base64").equals(bytes)).toBe(true);
    expect(result.output.stdoutSha256).toBe(sha256(bytes));
  });

  it("keeps head and tail beyond the cap, with exact byte counts and hashes", async () => {
    // 200,000 bytes of numbered lines on stdout, 5,000 bytes on stderr; cap 1,000 per stream.
    const { result } = await run({
      command: "seq -w 1 40000 | head -c 200000; head -c 5000 /dev/zero | tr '\\0' e >&2",
      maxOutputBytes: 1000,
    });
    const full = Buffer.from(
      Array.from({ length: 40000 }, (_, i) => `${String(i + 1).padStart(5, "0")}\n`).join(""),
    ).subarray(0, 200_000);
    expect(result.status).toBe("succeeded");
    expect(result.output.truncated).toBe(true);
    expect(result.output.stdoutBytes).toBe(200_000);
    expect(result.output.stderrBytes).toBe(5000);
    expect(result.output.stdoutSha256).toBe(sha256(full));
    expect(result.output.stderrSha256).toBe(sha256("e".repeat(5000)));
    const [head, tail] = result.stdout.split("\n[bounded-ssh: 199000 bytes omitted]\n");
    expect(head).toBe(full.subarray(0, 500).toString());
    expect(tail).toBe(full.subarray(199_500).toString());
  });
});

describe("authentication", () => {
  const cases: [string, () => Secret][] = [
    ["ECDSA key", () => ({ privateKey: sshd.keys.ecdsa.privateKey })],
    ["RSA key", () => ({ privateKey: sshd.keys.rsa.privateKey })],
    [
      "passphrase-protected key",
      () => ({
        privateKey: sshd.keys.encrypted.privateKey,
        passphrase: sshd.keys.encrypted.passphrase,
      }),
    ],
  ];
  for (const [name, secret] of cases) {
    it(`logs in with an ${name}`, async () => {
      const { result } = await run({ command: "id -un" }, { secret: secret() });
      expect(result.status).toBe("succeeded");
      expect(result.stdout).toBe(`${sshd.username}\n`);
    });
  }

  it("logs in with a password", async () => {
    expect(
      sshd.password,
      "the suite runs as root and sets the test user's password",
    ).not.toBeNull();
    const { result } = await run({ command: "id -un" }, { secret: { password: sshd.password! } });
    expect(result.status).toBe("succeeded");
  });

  it("reports a key the server does not accept as AuthFailed (not retryable)", async () => {
    const { result } = await run(
      { command: "true" },
      { secret: { privateKey: sshd.keys.unauthorized.privateKey } },
    );
    expect(result.status).toBe("error");
    expect(result.error).toMatchObject({
      name: "AuthFailed",
      phase: "auth",
      retryable: false,
      commandStarted: false,
    });
  });

  it("reports a wrong passphrase as CredentialInvalid (not retryable) before connecting", async () => {
    const { result } = await run(
      { command: "true" },
      {
        secret: { privateKey: sshd.keys.encrypted.privateKey, passphrase: "wrong" },
        credentialName: "deploy",
      },
    );
    expect(result.error).toMatchObject({
      name: "CredentialInvalid",
      phase: "credentials",
      retryable: false,
      message:
        'credential "deploy": the passphrase does not decrypt the private key; store the right "passphrase"',
    });
    expect(result.timings.connectMs).toBeNull();
  });

  it("reports a missing passphrase as CredentialInvalid naming the fix", async () => {
    const { result } = await run(
      { command: "true" },
      { secret: { privateKey: sshd.keys.encrypted.privateKey }, credentialName: "deploy" },
    );
    expect(result.error).toMatchObject({ name: "CredentialInvalid", phase: "credentials" });
    expect(result.error?.message).toContain('add "passphrase" to the credential');
    expect(result.timings.connectMs).toBeNull();
  });
});

describe("host keys", () => {
  it("accepts a SHA256 fingerprint pin", async () => {
    const { result } = await run(
      { command: "true", hostKey: sshd.hostKeyFingerprint },
      { knownHosts: "" },
    );
    expect(result.status).toBe("succeeded");
  });

  it("accepts an OpenSSH public key line pin", async () => {
    const { result } = await run(
      { command: "true", hostKey: sshd.hostKeyLine },
      { knownHosts: "" },
    );
    expect(result.status).toBe("succeeded");
  });

  it("refuses an unknown host key with HostKeyUnknown and sends no credential", async () => {
    const logBefore = sshd.log().length;
    const { result } = await run({ command: "true" }, { knownHosts: "" });
    expect(result.error).toMatchObject({ name: "HostKeyUnknown", phase: "handshake" });
    expect(result.timings.authMs).toBeNull();
    expect(sshd.log().slice(logBefore)).not.toMatch(/Accepted|Failed publickey|Postponed/);
  });

  it("refuses a mismatched pin with HostKeyMismatch; sshd logs no auth attempt", async () => {
    const logBefore = sshd.log().length;
    const impostorPin = `SHA256:${createHash("sha256").update("not the key").digest("base64").replace(/=+$/, "")}`;
    const { result } = await run({ command: "true", hostKey: impostorPin });
    expect(result.status).toBe("error");
    expect(result.error).toMatchObject({
      name: "HostKeyMismatch",
      phase: "handshake",
      retryable: false,
    });
    // Give sshd a moment to write whatever it saw of this connection.
    await new Promise((r) => setTimeout(r, 200));
    const seen = sshd.log().slice(logBefore);
    expect(seen).toMatch(/Connection from 127\.0\.0\.1/);
    expect(seen).not.toMatch(/publickey|password|Accepted|Failed|Postponed/i);
  });

  it("refuses a known_hosts entry with a different key as HostKeyMismatch", async () => {
    const other = sshd.keys.ed25519.publicKey.split(" ").slice(0, 2).join(" ");
    const { result } = await run(
      { command: "true" },
      { knownHosts: `[127.0.0.1]:${sshd.port} ${other}\n` },
    );
    expect(result.error?.name).toBe("HostKeyMismatch");
  });
});

describe("deadlines", () => {
  it("stops a command that outlives its time: CommandTimeout, confirmed, and the remote process is gone", async () => {
    const marker = `bssh-sleep-${randomBytes(4).toString("hex")}`;
    const { result, elapsedMs } = await run(
      { command: `exec -a ${marker} sleep 300` },
      // Teardown cap 1 s (reserve 400 ms): room for the confirmation on a loaded machine.
      { budgetMs: 2000, phaseCaps: { teardown: 1000 } },
    );
    expect(result.status).toBe("timed_out");
    expect(result.error).toMatchObject({
      name: "CommandTimeout",
      phase: "exec",
      retryable: false,
      commandStarted: true,
    });
    // sshd reported the command's death (exit-signal TERM) inside the teardown reserve.
    expect(result.remoteCleanup).toBe("confirmed");
    expect(elapsedMs).toBeGreaterThan(1500);
    const deadline = Date.now() + 500;
    while (sshd.userProcesses().some((p) => p.args.includes(marker)) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(sshd.userProcesses().filter((p) => p.args.includes(marker))).toEqual([]);
  });

  it("remote bound alone stops a command that ignores TERM", async () => {
    const marker = `bssh-stubborn-${randomBytes(4).toString("hex")}`;
    const { result } = await run(
      { command: `trap '' TERM; exec -a ${marker} sleep 300` },
      { budgetMs: 1500 },
    );
    expect(result.error?.name).toBe("CommandTimeout");
    // TERM was delivered but nothing confirmed the end: say so.
    expect(result.remoteCleanup).toBe("signalled");
    // timeout(1) sends KILL after its grace, even though the client is long gone.
    const deadline = Date.now() + 8000;
    while (sshd.userProcesses().some((p) => p.args.includes(marker)) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(sshd.userProcesses().filter((p) => p.args.includes(marker))).toEqual([]);
  });

  it("reports a closed port as ConnectRefused (retryable)", async () => {
    const { port } = await closedPort();
    const { result } = await run({ command: "true", port });
    expect(result.error).toMatchObject({
      name: "ConnectRefused",
      phase: "connect",
      retryable: true,
    });
  });

  it("cancels through the caller's AbortSignal with DeadlineExceeded", async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 300);
    const { result, elapsedMs } = await run({ command: "sleep 30" }, { signal: ac.signal });
    expect(result.error).toMatchObject({ name: "DeadlineExceeded", phase: "exec" });
    expect(elapsedMs).toBeLessThan(1000);
  });

  it("refuses to start with no budget left", async () => {
    const { result } = await run({ command: "true" }, { budgetMs: 0 });
    expect(result.error?.name).toBe("DeadlineExceeded");
    expect(result.timings.connectMs).toBeNull();
  });
});

describe("name resolution (DNS answered on loopback by a scripted resolver)", () => {
  /** A UDP DNS server on 127.0.0.1: NXDOMAIN for everything, or silence. */
  async function fakeDns(mode: "nxdomain" | "silent") {
    const sock = dgram.createSocket("udp4");
    sock.on("message", (msg, rinfo) => {
      if (mode === "silent") return;
      const reply = Buffer.from(msg);
      reply[2] = 0x81; // QR=1, RD
      reply[3] = 0x83; // RA, RCODE=3 NXDOMAIN
      sock.send(reply, rinfo.port, rinfo.address);
    });
    await new Promise<void>((r) => sock.bind(0, "127.0.0.1", r));
    const resolver = new Resolver({ timeout: 5000, tries: 1 });
    resolver.setServers([`127.0.0.1:${sock.address().port}`]);
    const lookup = async (host: string) => ({
      address: (await resolver.resolve4(host))[0]!,
      family: 4 as const,
    });
    const close = () => {
      resolver.cancel();
      sock.close();
    };
    return { lookup, close };
  }

  it("reports a name that does not resolve as DnsLookupFailed", async () => {
    const dns = await fakeDns("nxdomain");
    try {
      const { result } = await run(
        { command: "true", host: "nope.invalid" },
        { lookup: dns.lookup },
      );
      expect(result.error).toMatchObject({
        name: "DnsLookupFailed",
        phase: "resolve",
        retryable: true,
      });
      expect(result.timings.resolveMs).not.toBeNull();
    } finally {
      dns.close();
    }
  });

  it("bounds a resolver that never answers with ResolveTimeout", async () => {
    const dns = await fakeDns("silent");
    try {
      const { result, elapsedMs } = await run(
        { command: "true", host: "slow.example" },
        { lookup: dns.lookup, phaseCaps: { resolve: 300 } },
      );
      expect(result.error).toMatchObject({ name: "ResolveTimeout", phase: "resolve" });
      expect(elapsedMs).toBeLessThan(300 + MARGIN_MS + 250);
    } finally {
      dns.close();
    }
  });

  it("resolves names through the system resolver (localhost via /etc/hosts)", async () => {
    const { result } = await run(
      { command: "true", host: "localhost" },
      { knownHosts: `[localhost]:${sshd.port} ${sshd.hostKeyLine}\n` },
    );
    expect(result.status).toBe("succeeded");
    expect(result.target.address).toBe("127.0.0.1");
  });

  it("lets policy refuse the resolved address (DNS cannot smuggle a target in)", async () => {
    const { TargetNotAllowed } = await import("../../lib/errors.ts");
    const { result } = await run(
      { command: "true", host: "localhost" },
      {
        checkAddress: (address) => {
          throw new TargetNotAllowed(`${address} is not an allowed target`, { phase: "policy" });
        },
      },
    );
    expect(result.error).toMatchObject({ name: "TargetNotAllowed", phase: "policy" });
    expect(result.timings.connectMs).toBeNull();
  });
});
