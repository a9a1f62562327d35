import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCommand } from "../../lib/index.ts";
import { fingerprintSha256, hostKeyTrust } from "../../lib/session/host-keys.ts";
import type { RunResult } from "../../lib/types.ts";
import { startDropbear } from "../helpers/dropbear.ts";
import type { LabServer } from "../helpers/lab-server.ts";
import { SSH_KEYGEN_PATH, type SshdServer, startSshd } from "../helpers/sshd.ts";
import { startTinysshd } from "../helpers/tinysshd.ts";

const execFileAsync = promisify(execFile);

// Host certificates: one known_hosts `@cert-authority` line vouches for every host whose
// certificate that CA signed (sshd `HostCertificate`), with no per-host line.

let dir: string;
let hostCaPublic: string;
/** A host certified by the fleet's CA. */
let fleet: SshdServer;
/** An impostor on another port: a host certificate from its own (self-made) CA. */
let impostor: SshdServer;
/** A host with no certificate at all. */
let plain: SshdServer;
/** A host whose ECDSA key is certified (its ed25519 key is not). */
let ecdsaFleet: SshdServer;
let dropbear: LabServer;
let tinyssh: LabServer;

async function makeCa(name: string): Promise<string> {
  const file = path.join(dir, name);
  await execFileAsync(SSH_KEYGEN_PATH, ["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", file]);
  return file;
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "bssh-host-ca-"));
  const [hostCa, impostorCa] = await Promise.all([makeCa("host_ca"), makeCa("impostor_ca")]);
  hostCaPublic = (await readFile(`${hostCa}.pub`, "utf8")).trim();
  const ecdsaKey = path.join(dir, "ecdsa_host_key");
  await execFileAsync(SSH_KEYGEN_PATH, [
    "-q",
    "-t",
    "ecdsa",
    "-b",
    "256",
    "-N",
    "",
    "-f",
    ecdsaKey,
  ]);
  await execFileAsync(SSH_KEYGEN_PATH, [
    "-q",
    "-s",
    hostCa,
    "-I",
    "ecdsa-host",
    "-h",
    "-n",
    "127.0.0.1",
    "-V",
    "-5m:+1h",
    `${ecdsaKey}.pub`,
  ]);
  [fleet, impostor, plain, ecdsaFleet, dropbear, tinyssh] = await Promise.all([
    startSshd({ hostCertificate: { caKeyFile: hostCa } }),
    startSshd({ hostCertificate: { caKeyFile: impostorCa } }),
    startSshd(),
    startSshd({ extraConfig: [`HostKey ${ecdsaKey}`, `HostCertificate ${ecdsaKey}-cert.pub`] }),
    startDropbear(),
    startTinysshd(),
  ]);
}, 60_000);

afterAll(async () => {
  await Promise.all([
    ecdsaFleet?.stop(),
    fleet?.stop(),
    impostor?.stop(),
    plain?.stop(),
    dropbear?.stop(),
    tinyssh?.stop(),
  ]);
  await rm(dir, { recursive: true, force: true });
});

/** The fleet's known_hosts: one CA line for every host, nothing per host. */
const caLine = () => `@cert-authority * ${hostCaPublic}\n`;

async function run(
  server: { host: string; port: number; username: string; keys: SshdServer["keys"] },
  knownHosts: string,
): Promise<RunResult> {
  return await runCommand(
    { host: server.host, port: server.port, username: server.username, command: "echo trusted" },
    { secret: { privateKey: server.keys.ed25519.privateKey }, knownHosts, budgetMs: 10_000 },
  );
}

describe("host certificates (known_hosts @cert-authority) on OpenSSH sshd", () => {
  it("a host with a valid host certificate and no known_hosts line is trusted", async () => {
    const result = await run(fleet, caLine());
    expect(result.error).toBeUndefined();
    // What it presented was the certificate (its fingerprint is the certificate blob's).
    const certLine = await readFile(path.join(fleet.dir, "ssh_host_ed25519_key-cert.pub"), "utf8");
    const certBlob = Buffer.from(certLine.trim().split(/\s+/)[1]!, "base64");
    expect(result.server?.hostKeySha256).toBe(fingerprintSha256(certBlob));
    expect(result.stdout).toBe("trusted\n");
  });

  it("an ECDSA host certificate is negotiated and trusted too", async () => {
    const result = await run(ecdsaFleet, caLine());
    expect(result.error).toBeUndefined();
    expect(result.stdout).toBe("trusted\n");
    const certLine = await readFile(path.join(dir, "ecdsa_host_key-cert.pub"), "utf8");
    expect(certLine).toMatch(/^ecdsa-sha2-nistp256-cert-v01@openssh\.com /);
    const certBlob = Buffer.from(certLine.trim().split(/\s+/)[1]!, "base64");
    expect(result.server?.hostKeySha256).toBe(fingerprintSha256(certBlob));
  });

  it("an impostor with a host certificate from another CA gets HostKeyMismatch and 0 auth attempts", async () => {
    const logBefore = impostor.log().length;
    const result = await run(impostor, caLine());
    expect(result.error).toMatchObject({ name: "HostKeyMismatch", phase: "handshake" });
    await new Promise((r) => setTimeout(r, 200));
    const seen = impostor.log().slice(logBefore);
    expect(seen).toMatch(/Connection from 127\.0\.0\.1/);
    expect(seen).not.toMatch(/publickey|password|Accepted|Failed|Postponed/i);
  });

  it("@revoked still wins: a revoked host key is refused even with a valid certificate", async () => {
    const result = await run(fleet, `${caLine()}@revoked * ${fleet.hostKeyLine}\n`);
    expect(result.error?.name).toBe("HostKeyMismatch");
    // And a revoked CA vouches for nobody.
    const caRevoked = await run(fleet, `${caLine()}@revoked * ${hostCaPublic}\n`);
    expect(caRevoked.error?.name).toBe("HostKeyMismatch");
  });

  it("a plain key for a host under a CA stays refused unless listed", async () => {
    // Refused by name before any credential is sent, as OpenSSH does.
    const logBefore = plain.log().length;
    const refused = await run(plain, caLine());
    expect(refused.error).toMatchObject({ name: "HostKeyUnknown", phase: "handshake" });
    expect(refused.error?.message).toMatch(/@cert-authority/);
    await new Promise((r) => setTimeout(r, 200));
    expect(plain.log().slice(logBefore)).not.toMatch(/publickey|Accepted|Failed|Postponed/i);
    // Listed next to the CA line, the plain key is trusted (and the CA still offered first).
    const listed = await run(plain, `${caLine()}${plain.knownHostsLine}\n`);
    expect(listed.stdout).toBe("trusted\n");
    // A certified host also listed by its plain key: the certificate is offered and verified.
    const both = await run(fleet, `${caLine()}${fleet.knownHostsLine}\n`);
    expect(both.stdout).toBe("trusted\n");
  });

  it("the certificate must name the host, be valid now and be a host certificate (verifier)", async () => {
    const certLine = await readFile(path.join(fleet.dir, "ssh_host_ed25519_key-cert.pub"), "utf8");
    const blob = Buffer.from(certLine.trim().split(/\s+/)[1]!, "base64");
    const trust = (host: string, now = Date.now()) =>
      hostKeyTrust({ knownHosts: caLine(), host, port: fleet.port, now: () => now });
    expect(trust("127.0.0.1").kind).toBe("cert-authority");
    expect(trust("127.0.0.1").verify(blob)).toBe("trusted");
    // Another name: not among the principals.
    expect(trust("db1.example").verify(blob)).toBe("mismatch");
    // Outside its validity (-5m:+1h).
    expect(trust("127.0.0.1", Date.now() + 2 * 3_600_000).verify(blob)).toBe("mismatch");
    expect(trust("127.0.0.1", Date.now() - 3_600_000).verify(blob)).toBe("mismatch");
    // A tampered certificate (one principal byte changed) fails the CA signature.
    const tampered = Buffer.from(blob);
    const at = tampered.indexOf(Buffer.from("127.0.0.1"));
    tampered[at] = "2".charCodeAt(0);
    expect(trust("227.0.0.1").verify(tampered)).toBe("mismatch");
    // The plain host key is not vouched for by the CA line.
    const plainBlob = Buffer.from(fleet.hostKeyLine.split(" ")[1]!, "base64");
    expect(trust("127.0.0.1").verify(plainBlob)).toBe("unknown");
  });
});

describe("CA signatures of every key type OpenSSH signs with (node:crypto verifier)", () => {
  it.each([
    ["ed25519", ["-t", "ed25519"], undefined],
    ["ecdsa P-256", ["-t", "ecdsa", "-b", "256"], undefined],
    ["ecdsa P-384", ["-t", "ecdsa", "-b", "384"], undefined],
    ["ecdsa P-521", ["-t", "ecdsa", "-b", "521"], undefined],
    ["rsa (rsa-sha2-512)", ["-t", "rsa", "-b", "2048"], undefined],
    ["rsa (rsa-sha2-256)", ["-t", "rsa", "-b", "2048"], "rsa-sha2-256"],
  ])(
    "a host certificate signed by an %s CA vouches; another CA of its type does not",
    async (name, type, alg) => {
      const base = path.join(dir, `ca-${name.replace(/\W+/g, "-")}`);
      const hostKey = `${base}-host`;
      const keygen = (args: string[]) => execFileAsync(SSH_KEYGEN_PATH, ["-q", ...args]);
      await Promise.all([
        keygen([...type, "-N", "", "-f", base]),
        keygen([...type, "-N", "", "-f", `${base}-other`]),
        keygen(["-t", "ed25519", "-N", "", "-f", hostKey]),
      ]);
      await keygen([
        "-s",
        base,
        ...(alg ? ["-t", alg] : []),
        "-I",
        "h",
        "-h",
        "-n",
        "db1.example",
        `${hostKey}.pub`,
      ]);
      const cert = (await readFile(`${hostKey}-cert.pub`, "utf8")).trim().split(/\s+/)[1]!;
      const blob = Buffer.from(cert, "base64");
      const caPub = (await readFile(`${base}.pub`, "utf8")).trim();
      const otherPub = (await readFile(`${base}-other.pub`, "utf8")).trim();
      const verdict = (ca: string) =>
        hostKeyTrust({
          knownHosts: `@cert-authority *.example ${ca}\n`,
          host: "db1.example",
          port: 22,
        }).verify(blob);
      expect(verdict(caPub)).toBe("trusted");
      expect(verdict(otherPub)).toBe("mismatch");
    },
  );
});

describe("a hostile host certificate never crashes the verifier", () => {
  it("every truncation and every single-byte change of a valid certificate is refused", async () => {
    const certLine = await readFile(path.join(fleet.dir, "ssh_host_ed25519_key-cert.pub"), "utf8");
    const blob = Buffer.from(certLine.trim().split(/\s+/)[1]!, "base64");
    const trust = hostKeyTrust({ knownHosts: caLine(), host: "127.0.0.1", port: fleet.port });
    expect(trust.verify(blob)).toBe("trusted");
    const verdicts = new Set<string>();
    for (let n = 0; n < blob.length; n++) verdicts.add(trust.verify(blob.subarray(0, n)));
    for (let i = 0; i < blob.length; i++) {
      const changed = Buffer.from(blob);
      changed[i] = changed[i]! ^ 0x41;
      verdicts.add(trust.verify(changed));
    }
    expect(verdicts.has("trusted")).toBe(false);
  });
});

describe("servers without host certificates under a CA-only known_hosts", () => {
  it.each([
    ["dropbear", () => dropbear],
    ["tinyssh", () => tinyssh],
  ])("%s: refused at the handshake with a clear error name, not a hang", async (_kind, server) => {
    const start = performance.now();
    const result = await run(server() as unknown as SshdServer, caLine());
    expect(result.error).toMatchObject({ name: "HostKeyUnknown", phase: "handshake" });
    expect(performance.now() - start).toBeLessThan(10_000);
  });
});
