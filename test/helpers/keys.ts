import { generateKeyPairSync, randomBytes } from "node:crypto";

/** An ed25519 key pair in the formats ssh2 and OpenSSH read. */
export interface Ed25519KeyPair {
  /** OpenSSH private key file (`-----BEGIN OPENSSH PRIVATE KEY-----`, unencrypted). */
  private: string;
  /** OpenSSH public key line: `ssh-ed25519 AAAA… comment`. */
  public: string;
}

function sshString(data: Buffer | string): Buffer {
  const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(bytes.length);
  return Buffer.concat([len, bytes]);
}

/**
 * A fresh ed25519 key pair that always parses. ssh2 1.17's `utils.generateKeyPairSync('ed25519')`
 * drops a leading zero byte of the public key about once in 170 calls, producing a key nobody
 * can parse (a CI flake); node:crypto makes the key and this writes the OpenSSH format
 * (PROTOCOL.key: "openssh-key-v1", cipher/KDF "none", one key) itself, byte for byte.
 */
export function generateEd25519KeyPair(comment = "bssh-test"): Ed25519KeyPair {
  const { privateKey } = generateKeyPairSync("ed25519");
  const jwk = privateKey.export({ format: "jwk" });
  const seed = Buffer.from(jwk.d ?? "", "base64url");
  const pub = Buffer.from(jwk.x ?? "", "base64url");
  if (seed.length !== 32 || pub.length !== 32) throw new Error("unexpected ed25519 JWK");
  const publicBlob = Buffer.concat([sshString("ssh-ed25519"), sshString(pub)]);
  const check = randomBytes(4);
  let secret = Buffer.concat([
    check,
    check,
    sshString("ssh-ed25519"),
    sshString(pub),
    sshString(Buffer.concat([seed, pub])),
    sshString(comment),
  ]);
  // Pad to the cipher block size (8 for "none") with 1, 2, 3, …
  const padding = (8 - (secret.length % 8)) % 8;
  secret = Buffer.concat([secret, Buffer.from(Array.from({ length: padding }, (_, i) => i + 1))]);
  const body = Buffer.concat([
    Buffer.from("openssh-key-v1\0", "latin1"),
    sshString("none"),
    sshString("none"),
    sshString(""),
    Buffer.from([0, 0, 0, 1]),
    sshString(publicBlob),
    sshString(secret),
  ]);
  const lines = body.toString("base64").match(/.{1,70}/g) ?? [];
  return {
    private: `-----BEGIN OPENSSH PRIVATE KEY-----\n${lines.join("\n")}\n-----END OPENSSH PRIVATE KEY-----\n`,
    public: `ssh-ed25519 ${publicBlob.toString("base64")} ${comment}`,
  };
}
