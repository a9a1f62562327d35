import { createHash } from "node:crypto";
import type { ParsedKey } from "ssh2";
import { CredentialInvalid } from "../errors.ts";
import type { Secret } from "../types.ts";
import { parseKey } from "./ssh2.ts";

/** What ssh2's auth handler sends: a parsed private key, or a password. */
export type PreparedAuth =
  | { type: "publickey"; key: ParsedKey }
  | { type: "password"; password: string };

// Parsing (and decrypting) a key costs far more than a loopback handshake; a warm container
// reuses the parsed key. Keyed by a hash, so the map never holds the secret text as a key.
const parsedKeys = new Map<string, ParsedKey>();
const MAX_CACHED_KEYS = 32;

/**
 * Turns a secret into what the auth handler sends, once per container per key. A secret that
 * cannot be used is `CredentialInvalid` (not retryable: retrying cannot fix it) before any
 * connection is made — never an opaque failure during auth. Messages name the credential
 * (`name`, when known) and the fix; never any part of the key.
 */
export function prepareAuth(secret: Secret, name?: string): PreparedAuth {
  const invalid = (problem: string) =>
    new CredentialInvalid(
      `${name === undefined ? "credential" : `credential ${JSON.stringify(name)}`}: ${problem}`,
      {
        phase: "credentials",
      },
    );
  if (typeof secret.password === "string") return { type: "password", password: secret.password };
  if (secret.privateKey === undefined) {
    throw invalid(
      'holds neither a private key nor a password; store {"privateKey": …} or {"password": …}',
    );
  }
  const cacheKey = createHash("sha256")
    .update(secret.privateKey)
    .update("\0")
    .update(secret.passphrase ?? "")
    .digest("hex");
  const cached = parsedKeys.get(cacheKey);
  if (cached) return { type: "publickey", key: cached };
  const encrypted = isEncryptedKey(secret.privateKey);
  if (encrypted && (secret.passphrase === undefined || secret.passphrase === "")) {
    throw invalid(
      'the private key is encrypted and no passphrase is stored; add "passphrase" to the credential',
    );
  }
  const parsed = parseKey(secret.privateKey, secret.passphrase);
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key || key instanceof Error) {
    throw invalid(
      encrypted
        ? 'the passphrase does not decrypt the private key; store the right "passphrase"'
        : "the private key is not in a format ssh can read (OpenSSH, PEM or PuTTY); store the whole private key file",
    );
  }
  if (!key.isPrivateKey()) {
    throw invalid("holds a public key, not a private key; store the private key file");
  }
  if (parsedKeys.size >= MAX_CACHED_KEYS) parsedKeys.clear();
  parsedKeys.set(cacheKey, key);
  return { type: "publickey", key };
}

/**
 * Whether a private key file is passphrase-protected, read from its structure (never from
 * a parser's error text): the OpenSSH format's cipher name, PEM's `Proc-Type: 4,ENCRYPTED`
 * or `ENCRYPTED PRIVATE KEY`, PuTTY's `Encryption:` header.
 */
export function isEncryptedKey(privateKey: string | Buffer): boolean {
  const text = privateKey.toString();
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----/.test(text)) return true;
  if (/^Proc-Type:\s*4,\s*ENCRYPTED/m.test(text)) return true;
  const putty = /^Encryption:\s*(\S+)/m.exec(text);
  if (putty) return putty[1] !== "none";
  const openssh =
    /-----BEGIN OPENSSH PRIVATE KEY-----([\s\S]*?)-----END OPENSSH PRIVATE KEY-----/.exec(text);
  if (!openssh) return false;
  // "openssh-key-v1\0", then string ciphername ("none" when not encrypted).
  const body = Buffer.from(openssh[1]!.replace(/\s+/g, ""), "base64");
  const magic = "openssh-key-v1\0";
  if (body.subarray(0, magic.length).toString("latin1") !== magic) return false;
  if (body.length < magic.length + 4) return false;
  const len = body.readUInt32BE(magic.length);
  const cipher = body.subarray(magic.length + 4, magic.length + 4 + len).toString("latin1");
  return cipher !== "none";
}
