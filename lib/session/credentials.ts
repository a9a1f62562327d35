import { createHash } from "node:crypto";
import type { ParsedKey } from "ssh2";
import { CredentialUnavailable } from "../errors.ts";
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
 * cannot be used (unparsable key, wrong passphrase, public key only) is `CredentialUnavailable`
 * before any connection is made — never an opaque failure during auth.
 */
export function prepareAuth(secret: Secret): PreparedAuth {
  if (typeof secret.password === "string") return { type: "password", password: secret.password };
  if (secret.privateKey === undefined) {
    throw new CredentialUnavailable("credential holds neither a private key nor a password", {
      phase: "credentials",
    });
  }
  const cacheKey = createHash("sha256")
    .update(secret.privateKey)
    .update("\0")
    .update(secret.passphrase ?? "")
    .digest("hex");
  const cached = parsedKeys.get(cacheKey);
  if (cached) return { type: "publickey", key: cached };
  const parsed = parseKey(secret.privateKey, secret.passphrase);
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key || key instanceof Error) {
    // Fixed messages only: ssh2's parse errors can quote the key text they choked on.
    throw new CredentialUnavailable(keyParseMessage(key, secret.passphrase !== undefined), {
      phase: "credentials",
    });
  }
  if (!key.isPrivateKey()) {
    throw new CredentialUnavailable("credential holds a public key, not a private key", {
      phase: "credentials",
    });
  }
  if (parsedKeys.size >= MAX_CACHED_KEYS) parsedKeys.clear();
  parsedKeys.set(cacheKey, key);
  return { type: "publickey", key };
}

/** A fixed description of why a private key did not parse; never ssh2's own text. */
function keyParseMessage(error: Error | undefined, hadPassphrase: boolean): string {
  if (/passphrase|decrypt|encrypted/i.test(error?.message ?? "")) {
    return hadPassphrase
      ? "private key cannot be used: the passphrase does not decrypt it"
      : "private key cannot be used: it is encrypted and no passphrase is stored with it";
  }
  return "private key cannot be used: not a private key in a format ssh2 reads (OpenSSH, PEM PKCS#1/PKCS#8)";
}
