/**
 * `npm run init -- user@host --ca`: a user certificate authority instead of a key pair, the
 * one sshd_config line the host needs, and a config whose sessions log in with certificates
 * against a real OpenSSH sshd once the host trusts the CA.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCommand } from "../../lib/index.ts";
import { SSH_KEYGEN_PATH, type SshdServer, startSshd } from "../helpers/sshd.ts";

const ROOT = process.cwd();
const TSX = join(ROOT, "node_modules", ".bin", "tsx");

let dir: string;
let sshd: SshdServer;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "bssh-init-ca-"));
  // The host trusts no CA yet: the file exists, empty; init prints what goes in it.
  sshd = await startSshd({ trustedUserCAKeys: [] });
});

afterAll(async () => {
  await sshd?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function run(name: string, args: string[], input = "") {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const key of Object.keys(env)) if (key.startsWith("BSSH_")) delete env[key];
    env.BSSH_CONFIG = ".bssh/config.json";
    const child = execFile(
      TSX,
      [join(ROOT, "local", `${name}.ts`), ...args],
      { env, cwd: dir },
      (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    child.stdin?.end(input);
  });
}

describe("npm run init -- --ca", () => {
  it("sets up a user CA, prints the sshd_config line, and its sessions run with certificates", async () => {
    const target = `${sshd.username}@127.0.0.1:${sshd.port}`;
    const init = await run("init", [target, "--yes", "--ca"]);
    expect(init.code).toBe(0);
    const caPublic = readFileSync(join(dir, ".bssh/user_ca.pub"), "utf8").trim();
    expect(caPublic).toMatch(/^ssh-ed25519 AAAA\S+ bounded-ssh-user-ca@/);
    expect(statSync(join(dir, ".bssh/user_ca")).mode & 0o777).toBe(0o600);
    expect(init.stdout).toContain("TrustedUserCAKeys /etc/ssh/bounded-ssh_user_ca.pub");
    expect(init.stdout).toContain(caPublic);
    const config = JSON.parse(readFileSync(join(dir, ".bssh/config.json"), "utf8")) as {
      credentials: Record<string, unknown>;
    };
    expect(config.credentials).toEqual({
      default: { certificateAuthority: { privateKeyFile: "user_ca" } },
    });

    const event = JSON.stringify({
      host: "127.0.0.1",
      port: sshd.port,
      username: sshd.username,
      command: "echo hi",
    });
    // Before the host trusts the CA: refused, by name.
    const before = await run("invoke", ["-"], event);
    // (invoke answers as the Step Functions task does: the error name, the result as cause)
    expect(JSON.parse(before.stdout)).toMatchObject({
      error: "AuthFailed",
      cause: {
        error: { name: "AuthFailed", message: expect.stringMatching(/refused the certificate/) },
      },
    });
    // The host trusts it (what the printed line and file do): the certificate logs in.
    writeFileSync(join(sshd.dir, "trusted_user_ca_keys"), `${caPublic}\n`);
    const after = await run("invoke", ["-"], event);
    expect(JSON.parse(after.stdout)).toMatchObject({ status: "succeeded", stdout: "hi\n" });
    expect(after.stderr).toContain('"certificate":{"keyId":"bounded-ssh:');
    expect(sshd.log()).toMatch(/Accepted publickey for \S+ from 127\.0\.0\.1 .*ED25519-CERT/);
  }, 60_000);
});

describe("npm run init -- --host-cert", () => {
  it("signs the local test sshd's host key; the host is then trusted by one @cert-authority line", async () => {
    const keyDir = mkdtempSync(join(dir, "hostkey-"));
    const hostKey = join(keyDir, "ssh_host_ed25519_key");
    await promisify(execFile)(SSH_KEYGEN_PATH, ["-q", "-t", "ed25519", "-N", "", "-f", hostKey]);
    const signed = await run("init", ["--host-cert", `${hostKey}.pub`]);
    expect(signed.code).toBe(0);
    expect(signed.stdout).toContain(`HostCertificate ${hostKey}-cert.pub`);
    // OpenSSH reads it as a host certificate for the default principals.
    const { stdout: shown } = await promisify(execFile)(SSH_KEYGEN_PATH, [
      "-L",
      "-f",
      `${hostKey}-cert.pub`,
    ]);
    expect(shown).toMatch(/ssh-ed25519-cert-v01@openssh\.com host certificate/);
    expect(shown).toMatch(/Principals:\s+127\.0\.0\.1\s+localhost/);
    const knownHosts = await readFile(join(dir, ".bssh/known_hosts"), "utf8");
    expect(knownHosts).toMatch(
      /^@cert-authority 127\.0\.0\.1,\[127\.0\.0\.1\]:\*,localhost,\[localhost\]:\* ssh-ed25519 /m,
    );
    // A host using the printed line: trusted through the CA line alone.
    const certified = await startSshd({
      extraConfig: [`HostKey ${hostKey}`, `HostCertificate ${hostKey}-cert.pub`],
    });
    try {
      const result = await runCommand(
        {
          host: "127.0.0.1",
          port: certified.port,
          username: certified.username,
          command: "echo certified-host",
        },
        {
          secret: { privateKey: certified.keys.ed25519.privateKey },
          knownHosts,
          budgetMs: 10_000,
        },
      );
      expect(result.error).toBeUndefined();
      expect(result.stdout).toBe("certified-host\n");
    } finally {
      await certified.stop();
    }
    const bad = await run("init", ["--host-cert", join(keyDir, "missing.pub")]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/cannot read .*missing\.pub/);
  }, 60_000);
});
