import { randomBytes, randomInt } from "node:crypto";
import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";

// ssh2's pure-JS AES-GCM decipher as patched (patches/ssh2+1.17.0.patch, issue 26 item 1): a
// packet split across TCP reads is gathered as ciphertext in a buffer the decipher reuses and
// decrypted once whole, instead of decrypting each part into a new buffer and copying the
// parts into another. Here the cipher's own output is cut at random points (down to single
// bytes) and fed back: every payload must come out whole and in order, and a changed byte
// must still fail the tag.

const require = createRequire(import.meta.url);
interface Ssh2Crypto {
  CIPHER_INFO: Record<string, { keyLen: number; ivLen: number }>;
  createCipher(config: unknown): {
    allocPacket(payloadLen: number): Buffer;
    encrypt(packet: Buffer): void;
  };
  createDecipher(config: unknown): { decrypt(data: Buffer, p: number, len: number): unknown };
}
const ssh2Crypto = require("ssh2/lib/protocol/crypto.js") as Ssh2Crypto;

function pair(name: string) {
  const info = ssh2Crypto.CIPHER_INFO[name]!;
  const key = randomBytes(info.keyLen);
  const iv = randomBytes(info.ivLen);
  const wire: Buffer[] = [];
  const payloads: Buffer[] = [];
  const cipher = ssh2Crypto.createCipher({
    outbound: {
      onWrite: (b: Buffer) => wire.push(Buffer.from(b)),
      cipherInfo: info,
      cipherKey: Buffer.from(key),
      cipherIV: Buffer.from(iv),
      seqno: 0,
      forceNative: true,
    },
  });
  const decipher = ssh2Crypto.createDecipher({
    inbound: {
      onPayload: (p: Buffer) => {
        payloads.push(Buffer.from(p));
      },
      decipherInfo: info,
      decipherKey: Buffer.from(key),
      decipherIV: Buffer.from(iv),
      seqno: 0,
      forceNative: true,
    },
  });
  const send = (payload: Buffer) => {
    const packet = cipher.allocPacket(payload.length);
    packet.set(payload, 5);
    cipher.encrypt(packet);
  };
  return { wire, payloads, send, decipher };
}

/** Cuts `data` at random points: pieces of 1 byte up to `max`. */
function cut(data: Buffer, max: number): Buffer[] {
  const pieces: Buffer[] = [];
  for (let i = 0; i < data.length; ) {
    const n = Math.min(data.length - i, randomInt(1, max + 1));
    // A copy in a larger buffer at an offset: views must honour byteOffset.
    const backing = Buffer.alloc(n + 7);
    data.copy(backing, 3, i, i + n);
    pieces.push(backing.subarray(3, 3 + n));
    i += n;
  }
  return pieces;
}

describe.each(["aes128-gcm@openssh.com", "aes256-gcm@openssh.com"])("%s", (name) => {
  it("payloads of 1 byte to 32 KiB arrive whole and in order, however the wire is cut", () => {
    for (const max of [1, 7, 4096, 40_000, 70_000]) {
      const { wire, payloads, send, decipher } = pair(name);
      const sent = [1, 16, 100, 32_768, 32_777, 5, 32_000, 17].map((n) => randomBytes(n));
      for (const p of sent) send(p);
      for (const piece of cut(Buffer.concat(wire), max)) {
        decipher.decrypt(piece, 0, piece.length);
      }
      expect(payloads.map((p) => p.toString("hex"))).toEqual(sent.map((p) => p.toString("hex")));
    }
  });

  it("a changed ciphertext byte of a split packet fails the tag", () => {
    const { wire, send, decipher } = pair(name);
    send(randomBytes(32_768));
    const data = Buffer.concat(wire);
    data[1000] = data[1000]! ^ 1;
    expect(() => {
      for (const piece of cut(data, 4096)) decipher.decrypt(piece, 0, piece.length);
    }).toThrow();
  });
});
