import { createHash, randomBytes } from "node:crypto";
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCommand } from "../../lib/index.ts";
import { CIPHER_ORDER, Client, READS_IN_PLACE } from "../../lib/session/ssh2.ts";
import { activeHandles, expectNoSessionLeaks } from "../helpers/leaks.ts";
import { type SshdServer, startSshd } from "../helpers/sshd.ts";

// Drain throughput (issue 26 item 1): patches/ssh2+1.17.0.patch changes ssh2's pure-JS
// cipher classes (one KeyObject per AES-GCM key instead of one per packet; one socket write
// per outgoing packet instead of one per part; no view of a read kept past it), and the engine
// reads every dialled socket into one reused buffer. Per cipher the engine offers, against an
// sshd that offers only that cipher and re-keys every 1 MiB: multi-MiB output and stdin arrive
// whole (byte count and SHA-256), and every packet goes out in one write; sessions at once
// stay apart.

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const MiB = 1024 * 1024;

const CIPHERS: ReadonlyArray<{ name: string; cipher: string; mac?: string }> = [
  { name: "aes128-gcm", cipher: "aes128-gcm@openssh.com" },
  { name: "aes256-gcm", cipher: "aes256-gcm@openssh.com" },
  { name: "aes128-ctr + etm", cipher: "aes128-ctr", mac: "hmac-sha2-256-etm@openssh.com" },
  { name: "aes256-ctr + etm", cipher: "aes256-ctr", mac: "hmac-sha2-512-etm@openssh.com" },
  { name: "aes128-ctr + mac", cipher: "aes128-ctr", mac: "hmac-sha2-256" },
  { name: "chacha20-poly1305", cipher: "chacha20-poly1305@openssh.com" },
];

it("the installed ssh2 carries the drain patch (npm ci ran postinstall)", () => {
  const crypto = readFileSync(path.join(ROOT, "node_modules/ssh2/lib/protocol/crypto.js"), "utf8");
  expect(crypto).toContain("this._decipherKey = createSecretKey(dec.decipherKey)");
  expect(crypto).toContain("this._onWrite(Buffer.concat([lenData, encrypted, final, tag]))");
  expect(crypto).toContain("this._ct = Buffer.allocUnsafe(MAX_PACKET_SIZE)");
  expect(crypto).toContain("this._packet = Buffer.from(encrypted)");
});

it("reads reach ssh2 in place: its pure-JS deciphers, patched to keep no view of a read", () => {
  // Lambda bundles and this repo load no native binding (sshcrypto.node is never built).
  expect(READS_IN_PLACE).toBe(true);
});

it("the engine offers the fastest measured cipher first, and every cipher TinySSH needs", () => {
  expect(CIPHER_ORDER[0]).toBe("aes128-gcm@openssh.com");
  expect(CIPHER_ORDER).toContain("chacha20-poly1305@openssh.com");
  expect(CIPHER_ORDER).toContain("aes128-ctr");
});

describe("sessions draining at once", () => {
  let sshd: SshdServer;
  beforeAll(async () => {
    sshd = await startSshd({ passwordAuthentication: false, rekeyLimit: "1M" });
  });
  afterAll(async () => {
    await sshd?.stop();
  });

  it("4 sessions draining 4 MiB each at once: each output whole (bytes, SHA-256)", async () => {
    // A buffer shared between sessions (a reused read buffer, a cached key object) would show
    // up here as another session's bytes or a failed authentication tag. Sessions 0 and 2
    // read in place (the default), 1 and 3 into buffers of their own: both kinds at once.
    const files = [0, 1, 2, 3].map((i) => {
      const data = randomBytes(4 * MiB);
      const file = path.join(sshd.dir, `at-once-${i}.bin`);
      writeFileSync(file, data);
      chmodSync(file, 0o644);
      return { file, sha: sha256(data), bytes: data.length };
    });
    const baseline = activeHandles();
    const results = await Promise.all(
      files.map(({ file }, i) =>
        runCommand(
          {
            host: sshd.host,
            port: sshd.port,
            username: sshd.username,
            hostKey: sshd.hostKeyLine,
            command: `cat ${file}`,
            maxOutputBytes: 1024,
          },
          {
            budgetMs: 30_000,
            secret: { privateKey: sshd.keys.ed25519.privateKey },
            ...(i % 2 === 1 ? { readsInPlace: false } : {}),
          },
        ),
      ),
    );
    results.forEach((result, i) => {
      expect(result.status).toBe("succeeded");
      expect(result.output.stdoutBytes).toBe(files[i]!.bytes);
      expect(result.output.stdoutSha256).toBe(files[i]!.sha);
    });
    await expectNoSessionLeaks(baseline, { waitMs: 1000 });
  });
});

describe.each(CIPHERS)("sshd offering only $name, re-keying every 1 MiB", ({ cipher, mac }) => {
  let sshd: SshdServer;
  beforeAll(async () => {
    sshd = await startSshd({
      passwordAuthentication: false,
      rekeyLimit: "1M",
      extraConfig: [`Ciphers ${cipher}`, ...(mac ? [`MACs ${mac}`] : [])],
    });
  });
  afterAll(async () => {
    await sshd?.stop();
  });

  it("6 MiB of stdout and 512 KiB of stdin arrive whole: byte counts and SHA-256 equal", async () => {
    const data = randomBytes(6 * MiB);
    const file = path.join(sshd.dir, "payload.bin");
    writeFileSync(file, data);
    chmodSync(file, 0o644);
    const stdin = randomBytes(384 * 1024).toString("base64"); // 512 KiB of text
    const baseline = activeHandles();
    const result = await runCommand(
      {
        host: sshd.host,
        port: sshd.port,
        username: sshd.username,
        hostKey: sshd.hostKeyLine,
        // stdout: the file; stderr: the SHA-256 of what arrived on stdin (the send path).
        command: `cat ${file}; sha256sum >&2`,
        stdin,
        maxOutputBytes: 1024,
      },
      {
        budgetMs: 30_000,
        secret: { privateKey: sshd.keys.ed25519.privateKey }, // reads in place: the default
      },
    );
    expect(result.error).toBeUndefined();
    expect(result.status).toBe("succeeded");
    expect(result.output.complete).toBe(true);
    expect(result.output.stdoutBytes).toBe(data.length);
    expect(result.output.stdoutSha256).toBe(sha256(data));
    expect(result.stderr.split(" ")[0]).toBe(sha256(Buffer.from(stdin)));
    await expectNoSessionLeaks(baseline, { waitMs: 1000 });
  });

  it("every encrypted packet ssh2 sends goes out in one socket write", async () => {
    const sizes: number[] = [];
    let encrypted = false;
    const sock = net.connect({ host: sshd.host, port: sshd.port, noDelay: true });
    const write = sock.write.bind(sock) as (chunk: Buffer) => boolean;
    sock.write = ((chunk: Buffer) => {
      if (encrypted) sizes.push(chunk.length);
      return write(chunk);
    }) as typeof sock.write;
    const error = await new Promise<Error | undefined>((resolve) => {
      const client = new Client();
      let failed: Error | undefined;
      client.on("error", (err) => {
        failed = err;
      });
      client.on("close", () => resolve(failed));
      client.on("handshake", () => {
        encrypted = true; // NEWKEYS done: from here every packet is encrypted
      });
      client.on("ready", () => {
        // 3 MiB of stdout: ssh2 sends window adjusts (every 1 MiB) besides the requests.
        client.exec("head -c 3145728 /dev/zero", (err, channel) => {
          if (err) return client.end();
          channel.on("data", () => {});
          channel.stderr.on("data", () => {});
          channel.on("close", () => client.end());
        });
      });
      client.connect({
        sock,
        username: sshd.username,
        privateKey: sshd.keys.ed25519.privateKey,
        algorithms: { cipher: CIPHER_ORDER as never },
        hostVerifier: () => true,
      });
    });
    expect(error).toBeUndefined();
    expect(sizes.length).toBeGreaterThan(3);
    // Unpatched: the 4-byte length and the 16-byte tag (AES-GCM, ChaCha20-Poly1305) or MAC
    // were separate writes. The smallest whole packet: length 4 + one 8-byte block + tag 16.
    expect(Math.min(...sizes)).toBeGreaterThanOrEqual(28);
  });
});
