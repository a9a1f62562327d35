import { randomBytes, randomInt } from "node:crypto";
import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";

// ssh2's pure-JS deciphers as patched (patches/ssh2+1.17.0.patch, issue 26 item 1), fed the
// way the engine's dialled socket feeds them: every read lands in ONE reused buffer
// (connection.ts READ_BUFFER), valid only until the decrypt call returns. The cipher's own
// output is cut at random points (down to single bytes), each piece copied into that shared
// buffer, decrypted, and the buffer then overwritten: every payload must come out whole and
// in order, and a changed byte must still fail the tag or MAC.
//
// Unpatched, ChaCha20-Poly1305 kept a view of a packet whose MAC had not arrived yet ("Invalid
// MAC" once the buffer was reused); AES-GCM now gathers a split packet's ciphertext in a buffer
// of its own and decrypts it once.

const require = createRequire(import.meta.url);
interface Info {
  keyLen: number;
  ivLen: number;
}
interface Ssh2Crypto {
  CIPHER_INFO: Record<string, Info>;
  MAC_INFO: Record<string, { len: number }>;
  init: Promise<void>;
  createCipher(config: unknown): {
    allocPacket(payloadLen: number): Buffer;
    encrypt(packet: Buffer): void;
  };
  createDecipher(config: unknown): { decrypt(data: Buffer, p: number, len: number): unknown };
}
const ssh2Crypto = require("ssh2/lib/protocol/crypto.js") as Ssh2Crypto;

const CASES: ReadonlyArray<{ cipher: string; mac?: string }> = [
  { cipher: "aes128-gcm@openssh.com" },
  { cipher: "aes256-gcm@openssh.com" },
  { cipher: "chacha20-poly1305@openssh.com" },
  { cipher: "aes128-ctr", mac: "hmac-sha2-256-etm@openssh.com" },
  { cipher: "aes128-ctr", mac: "hmac-sha2-256" },
];

function pair(cipherName: string, macName?: string) {
  const info = ssh2Crypto.CIPHER_INFO[cipherName]!;
  const macInfo = macName ? ssh2Crypto.MAC_INFO[macName] : undefined;
  const key = randomBytes(info.keyLen);
  const iv = randomBytes(info.ivLen);
  const macKey = macInfo ? randomBytes(macInfo.len) : undefined;
  const mac = macInfo ? { macInfo, macKey } : {};
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
      ...mac,
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
      ...mac,
    },
  });
  const send = (payload: Buffer) => {
    const packet = cipher.allocPacket(payload.length);
    packet.set(payload, 5);
    cipher.encrypt(packet);
  };
  return { wire, payloads, send, decipher };
}

/** Feeds `data` in random pieces of 1 to `max` bytes through one reused, then clobbered, buffer. */
function feed(
  decipher: { decrypt(d: Buffer, p: number, l: number): unknown },
  data: Buffer,
  max: number,
) {
  const shared = Buffer.alloc(Math.max(max, 1));
  for (let i = 0; i < data.length; ) {
    const n = Math.min(data.length - i, randomInt(1, max + 1));
    data.copy(shared, 0, i, i + n);
    decipher.decrypt(shared.subarray(0, n), 0, n);
    shared.fill(0xaa); // the next read overwrites it
    i += n;
  }
}

describe.each(CASES)("$cipher $mac", ({ cipher, mac }) => {
  it("payloads of 1 byte to 32 KiB arrive whole and in order through one reused read buffer", async () => {
    await ssh2Crypto.init;
    const sizes = [1, 16, 100, 32_768, 32_777, 5, 32_000, 17];
    for (const max of [1, 7, 4096, 32_820, 40_000, 65_536]) {
      const { wire, payloads, send, decipher } = pair(cipher, mac);
      const sent = sizes.map((n) => randomBytes(n));
      for (const p of sent) send(p);
      feed(decipher, Buffer.concat(wire), max);
      expect(payloads.map((p) => p.toString("hex"))).toEqual(sent.map((p) => p.toString("hex")));
    }
  });

  it.each([10, 16])(
    "a packet whose MAC or tag starts %i bytes before a read's end",
    async (back) => {
      await ssh2Crypto.init;
      const { wire, payloads, send, decipher } = pair(cipher, mac);
      const sent = [randomBytes(32_768), randomBytes(1000)];
      for (const p of sent) send(p);
      const first = wire[0]!; // one write per packet (the patch): [length | body | tag or MAC]
      const data = Buffer.concat(wire);
      // 16 bytes before the first packet's end: the body ends the read, the MAC is all in the
      // next; 10: the MAC straddles the two reads. The buffer is reused between them.
      const cutAt = first.length - back;
      const shared = Buffer.alloc(data.length);
      for (const [from, to] of [
        [0, cutAt],
        [cutAt, data.length],
      ] as const) {
        data.copy(shared, 0, from, to);
        decipher.decrypt(shared.subarray(0, to - from), 0, to - from);
        shared.fill(0xaa);
      }
      expect(payloads.map((p) => p.toString("hex"))).toEqual(sent.map((p) => p.toString("hex")));
    },
  );

  it("a changed ciphertext byte of a split packet fails the tag or MAC", async () => {
    await ssh2Crypto.init;
    const { wire, send, decipher } = pair(cipher, mac);
    send(randomBytes(32_768));
    const data = Buffer.concat(wire);
    data[1000] = data[1000]! ^ 1;
    expect(() => feed(decipher, data, 4096)).toThrow();
  });
});
