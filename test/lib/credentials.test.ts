import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CredentialInvalid } from "../../lib/errors.ts";
import { isEncryptedKey, prepareAuth } from "../../lib/session/credentials.ts";
import type { Secret } from "../../lib/types.ts";
import { SSH_KEYGEN_PATH } from "../helpers/sshd.ts";

// Permanent credential faults are CredentialInvalid before any connection: the message names
// the credential and the fix, and never carries a byte of the key.

let dir: string;
const keys: Record<string, string> = {};

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), "bssh-cred-test-"));
  const gen = (name: string, args: string[]) => {
    const file = path.join(dir, name);
    execFileSync(SSH_KEYGEN_PATH, ["-q", "-C", name, "-f", file, ...args]);
    keys[name] = readFileSync(file, "utf8");
    keys[`${name}.pub`] = readFileSync(`${file}.pub`, "utf8");
  };
  gen("plain", ["-t", "ed25519", "-N", ""]);
  gen("encrypted", ["-t", "ed25519", "-N", "right passphrase"]);
  gen("pem-encrypted", ["-t", "ecdsa", "-b", "256", "-m", "PEM", "-N", "right passphrase"]);
  gen("pem-plain", ["-t", "ecdsa", "-b", "256", "-m", "PEM", "-N", ""]);
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function refusal(secret: Secret): CredentialInvalid {
  try {
    prepareAuth(secret, "deploy");
  } catch (err) {
    expect(err).toBeInstanceOf(CredentialInvalid);
    const e = err as CredentialInvalid;
    expect(e).toMatchObject({ phase: "credentials", retryable: false });
    expect(e.message.startsWith('credential "deploy": ')).toBe(true);
    // No line of the key (base64 body) appears in the message.
    for (const line of String(secret.privateKey ?? "").split("\n")) {
      if (line.length > 20) expect(e.message).not.toContain(line);
    }
    return e;
  }
  throw new Error("prepareAuth accepted an unusable credential");
}

describe("prepareAuth: credentials that cannot work are CredentialInvalid", () => {
  it("accepts a plain key, an encrypted key with its passphrase, and a password", () => {
    expect(prepareAuth({ privateKey: keys.plain! }).type).toBe("publickey");
    expect(prepareAuth({ privateKey: keys.encrypted!, passphrase: "right passphrase" }).type).toBe(
      "publickey",
    );
    expect(prepareAuth({ password: "pw" })).toEqual({ type: "password", password: "pw" });
  });

  it("missing passphrase: says to add it", () => {
    expect(refusal({ privateKey: keys.encrypted! }).message).toContain(
      'the private key is encrypted and no passphrase is stored; add "passphrase"',
    );
    expect(refusal({ privateKey: keys["pem-encrypted"]! }).message).toContain("no passphrase");
  });

  it("wrong passphrase: says the passphrase does not decrypt the key", () => {
    for (const k of ["encrypted", "pem-encrypted"]) {
      expect(refusal({ privateKey: keys[k]!, passphrase: "wrong" }).message).toContain(
        "the passphrase does not decrypt the private key",
      );
    }
  });

  it("bad format: garbage, a truncated key, a public key", () => {
    expect(refusal({ privateKey: "not a key at all" }).message).toContain(
      "not in a format ssh can read",
    );
    const truncated = keys.plain!.slice(0, 120);
    expect(refusal({ privateKey: truncated }).message).toContain("not in a format ssh can read");
    expect(refusal({ privateKey: keys["plain.pub"]! }).message).toContain("holds a public key");
  });

  it("neither key nor password", () => {
    expect(refusal({} as Secret).message).toContain("neither a private key nor a password");
  });
});

describe("isEncryptedKey reads the key's structure", () => {
  it("tells encrypted from plain in OpenSSH and PEM formats", () => {
    expect(isEncryptedKey(keys.plain!)).toBe(false);
    expect(isEncryptedKey(keys.encrypted!)).toBe(true);
    expect(isEncryptedKey(keys["pem-plain"]!)).toBe(false);
    expect(isEncryptedKey(keys["pem-encrypted"]!)).toBe(true);
    expect(isEncryptedKey("garbage")).toBe(false);
  });
});
