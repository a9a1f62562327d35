import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCommand } from "../../lib/index.ts";
import {
  certificateLine,
  keyIdFor,
  type MintedCertificate,
  mintUserCertificate,
  opensshPrivateKeyText,
  serialFor,
} from "../../lib/session/certificate.ts";
import { prepareAuth } from "../../lib/session/credentials.ts";
import { parseKey } from "../../lib/session/ssh2.ts";
import type { RunOptions, RunRequest, RunResult } from "../../lib/types.ts";
import { startDropbear } from "../helpers/dropbear.ts";
import type { LabServer } from "../helpers/lab-server.ts";
import { SSH_KEYGEN_PATH, type SshdServer, startSshd } from "../helpers/sshd.ts";
import { startTinysshd } from "../helpers/tinysshd.ts";

const execFileAsync = promisify(execFile);

// User certificates minted per session, against real OpenSSH sshd (TrustedUserCAKeys +
// AuthorizedPrincipalsFile), and against Dropbear and TinySSH, which have no certificate
// support and must refuse with a clear error, not hang.

interface Ca {
  privateKey: string;
  publicKey: string;
}

let caDir: string;
let ca: Ca;
let otherCa: Ca;
let sshd: SshdServer;
let dropbear: LabServer;
let tinyssh: LabServer;

async function makeCa(name: string): Promise<Ca> {
  const file = path.join(caDir, name);
  await execFileAsync(SSH_KEYGEN_PATH, ["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", file]);
  return {
    privateKey: await readFile(file, "utf8"),
    publicKey: (await readFile(`${file}.pub`, "utf8")).trim(),
  };
}

beforeAll(async () => {
  caDir = await mkdtemp(path.join(os.tmpdir(), "bssh-ca-"));
  [ca, otherCa] = await Promise.all([makeCa("user_ca"), makeCa("other_ca")]);
  [sshd, dropbear, tinyssh] = await Promise.all([
    startSshd({
      trustedUserCAKeys: [ca.publicKey],
      authorizedPrincipals: [],
    }),
    startDropbear(),
    startTinysshd(),
  ]);
  await writePrincipals([sshd.username]);
}, 60_000);

afterAll(async () => {
  await Promise.all([sshd?.stop(), dropbear?.stop(), tinyssh?.stop()]);
  await rm(caDir, { recursive: true, force: true });
});

async function writePrincipals(names: string[]): Promise<void> {
  await writeFile(path.join(sshd.dir, "principals"), `${names.join("\n")}\n`);
}

/** Runs OpenSSH's own client with a minted key and certificate: the reference behaviour. */
async function sshWith(minted: MintedCertificate, command: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "bssh-cert-"));
  try {
    const keyPath = path.join(dir, "id_ed25519");
    await writeFile(keyPath, opensshPrivateKeyText(minted.privateKey), { mode: 0o600 });
    await writeFile(`${keyPath}-cert.pub`, `${certificateLine(minted.certificate)}\n`);
    const { stdout } = await execFileAsync("/usr/bin/ssh", [
      "-o",
      `CertificateFile=${keyPath}-cert.pub`,
      ...sshd.sshArgs({ ...sshd.keys.ed25519, path: keyPath }),
      command,
    ]);
    return stdout;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function caSecret(key: Ca = ca, extra: Record<string, unknown> = {}) {
  return { certificateAuthority: { privateKey: key.privateKey, ...extra } };
}

async function run(
  server: { host: string; port: number; username: string; hostKeyLine: string },
  command: string,
  options: Partial<RunOptions> = {},
  request: Partial<RunRequest> = {},
): Promise<RunResult> {
  return await runCommand(
    { host: server.host, port: server.port, username: server.username, command, ...request },
    {
      secret: caSecret(),
      knownHosts: `[${server.host}]:${server.port} ${server.hostKeyLine}`,
      budgetMs: 10_000,
      ...options,
    },
  );
}

describe("user certificates on OpenSSH sshd", () => {
  it("a certificate minted for the session runs the command; sshd logs its key id and serial", async () => {
    const requestId = `req-${Date.now()}`;
    const result = await run(sshd, "echo certified; id -un", { requestId });
    expect(result.error).toBeUndefined();
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toBe(`certified\n${sshd.username}\n`);
    // sshd names the invocation: "… ED25519-CERT SHA256:… ID bounded-ssh:req-… (serial N) CA …"
    const log = sshd.log();
    expect(log).toContain(`ID ${keyIdFor(requestId)} (serial ${serialFor(requestId)})`);
  });

  it("the certificate forces the exact command: a different exec request runs the authorized one", async () => {
    // The session sends `hostname`, but its certificate was minted for `echo authorized`:
    // sshd runs force-command and ignores the request.
    const caKey = parseKey(ca.privateKey);
    if (caKey instanceof Error) throw caKey;
    const now = Math.floor(Date.now() / 1000);
    const minted = mintUserCertificate(caKey, {
      principal: sshd.username,
      forceCommand: "echo authorized",
      keyId: "force-test",
      serial: 7n,
      validAfter: now - 60,
      validBefore: now + 60,
    });
    // OpenSSH's own client with the minted key and certificate asks for another command.
    expect(await sshWith(minted, "echo not-authorized")).toBe("authorized\n");
    // And the engine: its exec request always equals force-command, remote bound included.
    // Under a forced command sshd puts the request's command in SSH_ORIGINAL_COMMAND: the
    // wrapper that ran is the very string the request carried.
    const result = await run(sshd, `printf %s "$SSH_ORIGINAL_COMMAND"`, { remoteBound: true });
    expect(result.error).toBeUndefined();
    expect(result.stdout).toMatch(/^exec timeout -k 2 [\d.]+ "\$\{SHELL:-\/bin\/sh\}" -c /);
    expect(result.stdout).toContain(`'printf %s "$SSH_ORIGINAL_COMMAND"'`);
    const noBound = await run(sshd, "echo exactly-this", { remoteBound: false });
    expect(noBound.stdout).toBe("exactly-this\n");
  });

  it("the certificate dies with the deadline: valid until it, refused after it", async () => {
    // Minted exactly as the engine mints it, for a session whose deadline is 1 s away, no skew.
    const auth = prepareAuth(caSecret(ca, { expirySkewSeconds: 0 }), "ca", {
      username: sshd.username,
      command: "echo in-time",
      requestId: "expiry-test",
      deadlineEpochMs: Date.now() + 1_000,
    });
    if (auth.type !== "certificate") throw new Error("expected a certificate");
    const { spec } = auth.minted;
    expect(spec.validBefore).toBeLessThanOrEqual(Math.floor(Date.now() / 1000) + 1);
    expect(spec.validAfter).toBeLessThan(Math.floor(Date.now() / 1000));
    // Wait until the deadline (and the certificate's last valid second) has passed.
    await new Promise((r) => setTimeout(r, 2_500));
    await expect(sshWith(auth.minted, "true")).rejects.toThrow(/Permission denied/);
    expect(sshd.log()).toContain("Certificate invalid: expired");
    // A fresh certificate for a future deadline is accepted by the same server.
    const fresh = prepareAuth(caSecret(ca, { expirySkewSeconds: 0 }), "ca", {
      username: sshd.username,
      command: "echo in-time",
      requestId: "expiry-test-2",
      deadlineEpochMs: Date.now() + 10_000,
    });
    if (fresh.type !== "certificate") throw new Error("expected a certificate");
    expect(await sshWith(fresh.minted, "true")).toBe("in-time\n");
  }, 20_000);

  it("a wrong principal is AuthFailed, and so is a CA the host does not trust", async () => {
    await writePrincipals(["someone-else"]);
    try {
      const wrong = await run(sshd, "echo should-not-run");
      expect(wrong.error?.name).toBe("AuthFailed");
      expect(wrong.error?.message).toMatch(/refused the certificate/);
      expect(wrong.stdout).toBe("");
    } finally {
      await writePrincipals([sshd.username]);
    }
    const untrusted = await run(sshd, "echo should-not-run", { secret: caSecret(otherCa) });
    expect(untrusted.error?.name).toBe("AuthFailed");
  });

  it("source-address: a certificate bound to another network is refused, ours is accepted", async () => {
    const elsewhere = await run(sshd, "echo should-not-run", {
      secret: caSecret(ca, { sourceAddress: "10.99.0.0/16" }),
    });
    expect(elsewhere.error?.name).toBe("AuthFailed");
    const here = await run(sshd, "echo from-loopback", {
      secret: caSecret(ca, { sourceAddress: "127.0.0.0/8,::1/128" }),
    });
    expect(here.stdout).toBe("from-loopback\n");
  });

  it("a CA credential needs a deadline and an ed25519 key: CredentialInvalid before dialling", async () => {
    // The suite's RSA client key stands in for an RSA CA.
    const rsaCa = { privateKey: sshd.keys.rsa.privateKey, publicKey: "" };
    const rsa = await run(sshd, "true", { secret: caSecret(rsaCa) });
    expect(rsa.error?.name).toBe("CredentialInvalid");
    expect(rsa.error?.message).toMatch(/must be ed25519/);
    const skew = await run(sshd, "true", { secret: caSecret(ca, { expirySkewSeconds: 3600 }) });
    expect(skew.error?.name).toBe("CredentialInvalid");
    expect(skew.error?.message).toMatch(/expirySkewSeconds/);
    // No deadline, no certificate: it must expire.
    const session = { username: "u", command: "true", requestId: "r" };
    expect(() =>
      prepareAuth(caSecret(), "ca", { ...session, deadlineEpochMs: Number.POSITIVE_INFINITY }),
    ).toThrow(/a certificate must expire/);
    // A jump host (no command session): never a certificate.
    expect(() => prepareAuth(caSecret(), "ca")).toThrow(/not for a jump host/);
  });
});

describe("servers without certificate support refuse with a clear error, not a hang", () => {
  it.each([
    ["dropbear", () => dropbear],
    ["tinyssh", () => tinyssh],
  ])("%s: AuthFailed naming the certificate", async (_kind, server) => {
    const start = performance.now();
    const result = await run(server(), "echo should-not-run");
    expect(result.error?.name).toBe("AuthFailed");
    expect(result.error?.message).toMatch(/no certificate support/);
    expect(performance.now() - start).toBeLessThan(10_000);
  });
});
