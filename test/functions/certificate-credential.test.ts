/**
 * A certificate-authority credential through the handlers, end to end: a rule grants the CA
 * credential, the local credential store reads its key file, the engine mints a certificate
 * for the request, a real OpenSSH sshd (TrustedUserCAKeys) accepts it, and the audit line
 * carries the key id and serial sshd logs.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiHandler } from "../../functions/api.ts";
import { parseSecret } from "../../functions/credentials/credential-store.ts";
import { LocalCredentialStore } from "../../functions/credentials/local-store.ts";
import type { Runtime } from "../../functions/runtime/runtime.ts";
import { keyIdFor, serialFor } from "../../lib/session/certificate.ts";
import type { RunResult } from "../../lib/types.ts";
import { SSH_KEYGEN_PATH, type SshdServer, startSshd } from "../helpers/sshd.ts";
import {
  CALLER,
  type Captured,
  fakeContext,
  KEY_MARKERS,
  LOOPBACK_DENY,
  testRuntime,
  v1Event,
} from "./support.ts";

const execFileAsync = promisify(execFile);

let dir: string;
let sshd: SshdServer;
let runtime: Runtime;
let captured: Captured;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "bssh-ca-e2e-"));
  const caFile = path.join(dir, "user_ca");
  await execFileAsync(SSH_KEYGEN_PATH, ["-q", "-t", "ed25519", "-N", "", "-C", "ca", "-f", caFile]);
  const caPublic = (await readFile(`${caFile}.pub`, "utf8")).trim();
  sshd = await startSshd({ trustedUserCAKeys: [caPublic], authorizedPrincipals: [] });
  await writeFile(path.join(sshd.dir, "principals"), `${sshd.username}\n`);
  const made = testRuntime({
    policy: {
      denyCidrs: LOOPBACK_DENY,
      replaceDefaultDenyCidrs: true,
      rules: [
        {
          id: "certified",
          callers: [CALLER],
          targets: { cidrs: ["127.0.0.1/32"], ports: [sshd.port], usernames: [sshd.username] },
          credentials: ["user-ca"],
          // `$SSH_ORIGINAL_COMMAND` is shell syntax.
          allowShellSyntax: true,
          commands: { patterns: ["echo [a-z-]+", "printf [ -~]*"] },
        },
      ],
    },
    knownHosts: sshd.knownHostsLine,
  });
  runtime = made.runtime;
  captured = made.captured;
  runtime.credentials = new LocalCredentialStore(
    {
      "user-ca": { certificateAuthority: { privateKeyFile: "user_ca", expirySkewSeconds: 10 } },
      "missing-ca": { certificateAuthority: { privateKeyFile: "no_such_ca" } },
    },
    dir,
  );
}, 30_000);

afterAll(async () => {
  await sshd?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function api(body: unknown) {
  const response = await createApiHandler(runtime)(
    v1Event(JSON.stringify(body)),
    fakeContext({ timeoutMs: 20_000 }),
  );
  return {
    status: response.statusCode,
    body: JSON.parse(response.body) as Partial<RunResult> & {
      error?: { name: string; message: string };
    },
  };
}

const request = (command: string, credential = "user-ca") => ({
  host: "127.0.0.1",
  port: sshd.port,
  username: sshd.username,
  command,
  credential,
  timeoutMs: 8_000,
});

describe("a certificate-authority credential through the API handler", () => {
  it("runs the authorized command with a certificate; the audit line names it as sshd does", async () => {
    const { status, body } = await api(request("echo certified"));
    expect(status).toBe(200);
    expect(body.stdout).toBe("certified\n");
    const audit = captured.audits.at(-1)!;
    const requestId = body.requestId!;
    expect(audit.certificate).toEqual({
      keyId: keyIdFor(requestId),
      serial: serialFor(requestId).toString(),
    });
    expect(sshd.log()).toContain(
      `ID ${audit.certificate!.keyId} (serial ${audit.certificate!.serial})`,
    );
    for (const line of captured.lines) {
      for (const marker of KEY_MARKERS) expect(line).not.toMatch(marker);
    }
  });

  it("the command sshd runs is the one the policy authorized (force-command = the exec request)", async () => {
    const { body } = await api(request(`printf %s "$SSH_ORIGINAL_COMMAND"`));
    // The handlers wrap the command in the remote bound: the certificate forced that very string.
    expect(body.stdout).toMatch(
      /^exec timeout -k 2 [\d.]+ .* -c 'printf %s "\$SSH_ORIGINAL_COMMAND"'$/,
    );
  });

  it("a credential the rule does not grant is refused before anything is read", async () => {
    const { status, body } = await api(request("echo certified", "missing-ca"));
    expect(status).toBe(403);
    expect(body.error?.name).toBe("CredentialNotAllowed");
  });
});

describe("the local credential store's certificateAuthority", () => {
  it("a missing CA key file is CredentialInvalid naming the file and the field", async () => {
    await expect(
      runtime.credentials.get("missing-ca", { signal: AbortSignal.timeout(5_000) }),
    ).rejects.toMatchObject({
      name: "CredentialInvalid",
      message: expect.stringMatching(/no_such_ca.*ENOENT.*privateKeyFile/),
    });
  });
});

describe("parseSecret: the stored certificateAuthority", () => {
  const key = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n";

  it("reads the CA key and its options", () => {
    expect(
      parseSecret(
        "ca",
        JSON.stringify({
          certificateAuthority: {
            privateKey: key,
            sourceAddress: "10.0.0.0/8,192.0.2.7",
            expirySkewSeconds: 5,
          },
        }),
      ),
    ).toEqual({
      certificateAuthority: {
        privateKey: key,
        sourceAddress: "10.0.0.0/8,192.0.2.7",
        expirySkewSeconds: 5,
      },
    });
  });

  it.each([
    [{ certificateAuthority: "x" }, /not an object/],
    [{ certificateAuthority: {} }, /no certificateAuthority\.privateKey/],
    [
      { certificateAuthority: { privateKey: key, validity: 1 } },
      /unknown certificateAuthority field\(s\) validity/,
    ],
    [{ certificateAuthority: { privateKey: key, sourceAddress: "any; rm" } }, /sourceAddress/],
    [{ certificateAuthority: { privateKey: key, expirySkewSeconds: 3600 } }, /expirySkewSeconds/],
  ])("refuses %j with a CredentialInvalid naming the field", (value, message) => {
    let thrown: unknown;
    try {
      parseSecret("ca", JSON.stringify(value));
    } catch (err) {
      thrown = err;
    }
    expect((thrown as Error).name).toBe("CredentialInvalid");
    expect((thrown as Error).message).toMatch(message);
    expect((thrown as Error).message).not.toContain("AAAA");
  });
});
