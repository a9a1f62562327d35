import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import ssh2 from "ssh2";
import { describe, expect, it } from "vitest";
import { generateEd25519KeyPair } from "./keys.ts";
import { SSH_KEYGEN_PATH } from "./sshd.ts";

describe("generateEd25519KeyPair (replaces ssh2's flaky ed25519 generator)", () => {
  it("1,000 keys in a row: ssh2 parses both halves and they are one key", () => {
    // ssh2's own generator fails about once in 170: 1,000 would see ~6 failures.
    for (let i = 0; i < 1000; i++) {
      const pair = generateEd25519KeyPair();
      const priv = ssh2.utils.parseKey(pair.private);
      const pub = ssh2.utils.parseKey(pair.public);
      if (priv instanceof Error || pub instanceof Error) {
        throw new Error(`key ${i} does not parse: ${pair.public}`);
      }
      expect(priv.getPublicSSH().equals(pub.getPublicSSH())).toBe(true);
      const data = Buffer.from(`message ${i}`);
      expect(pub.verify(data, priv.sign(data) as Buffer)).toBe(true);
    }
  });

  it("is read by OpenSSH's ssh-keygen, which derives the same public key", () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "bssh-keys-test-"));
    try {
      for (let i = 0; i < 5; i++) {
        const pair = generateEd25519KeyPair(`c${i}`);
        const file = path.join(dir, `k${i}`);
        writeFileSync(file, pair.private, { mode: 0o600 });
        const derived = execFileSync(SSH_KEYGEN_PATH, ["-y", "-f", file], { encoding: "utf8" });
        expect(derived.trim()).toBe(pair.public);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
