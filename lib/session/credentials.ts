import { createHash } from "node:crypto";
import type { ParsedKey } from "ssh2";
import { CredentialInvalid } from "../errors.ts";
import type { Secret } from "../types.ts";
import {
  DEFAULT_EXPIRY_SKEW_S,
  ED25519,
  ED25519_CERT,
  keyIdFor,
  MAX_EXPIRY_SKEW_S,
  type MintedCertificate,
  mintUserCertificate,
  serialFor,
  VALID_AFTER_BACKDATE_S,
} from "./certificate.ts";
import { parseKey } from "./ssh2.ts";

/**
 * What ssh2's auth handler sends: a parsed private key, a password, or a certificate minted
 * for this one session (`key` is its key pair for ssh2's bookkeeping; sign-first.ts sends it).
 */
export type PreparedAuth =
  | { type: "publickey"; key: ParsedKey }
  | { type: "password"; password: string }
  | {
      type: "certificate";
      key: ParsedKey;
      algorithm: typeof ED25519_CERT;
      signatureAlgorithm: typeof ED25519;
      minted: MintedCertificate;
    };

/** What a certificate is minted for: one session's principal, command and deadline. */
export interface CertificateSession {
  username: string;
  /** The exact string the exec request will carry (after any remote-bound wrapper). */
  command: string;
  requestId: string;
  /** Wall-clock end of the session's deadline, in ms since the epoch (Infinity: unbounded). */
  deadlineEpochMs: number;
  /** The wall clock (tests). @default Date.now */
  now?: () => number;
}

/** The audit's view of a minted certificate (never the key). */
export interface CertificateAudit {
  keyId: string;
  serial: string;
  validAfter: string;
  validBefore: string;
}

export function certificateAudit(auth: PreparedAuth): CertificateAudit | undefined {
  if (auth.type !== "certificate") return undefined;
  const { spec } = auth.minted;
  return {
    keyId: spec.keyId,
    serial: spec.serial.toString(),
    validAfter: new Date(spec.validAfter * 1000).toISOString(),
    validBefore: new Date(spec.validBefore * 1000).toISOString(),
  };
}

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
export function prepareAuth(
  secret: Secret,
  name?: string,
  session?: CertificateSession,
): PreparedAuth {
  const invalid = (problem: string) =>
    new CredentialInvalid(
      `${name === undefined ? "credential" : `credential ${JSON.stringify(name)}`}: ${problem}`,
      {
        phase: "credentials",
      },
    );
  if (typeof secret.password === "string") return { type: "password", password: secret.password };
  if (secret.certificateAuthority !== undefined) {
    return prepareCertificate(secret.certificateAuthority, session, invalid);
  }
  if (secret.privateKey === undefined) {
    throw invalid(
      'holds neither a private key nor a password; store {"privateKey": …} or {"password": …}',
    );
  }
  return { type: "publickey", key: parsePrivateKey(secret.privateKey, secret.passphrase, invalid) };
}

/**
 * Mints this session's certificate: valid from {@link VALID_AFTER_BACKDATE_S} before now
 * until the deadline plus the CA's `expirySkewSeconds` (never later), for the request's
 * username only, forcing the exact command.
 */
function prepareCertificate(
  ca: NonNullable<Secret["certificateAuthority"]>,
  session: CertificateSession | undefined,
  invalid: (problem: string) => CredentialInvalid,
): PreparedAuth {
  if (session === undefined) {
    throw invalid(
      "is a certificate authority, which signs certificates only for a command session, not for a jump host; give the jump host a key credential",
    );
  }
  if (ca === null || typeof ca !== "object" || ca.privateKey === undefined) {
    throw invalid(
      'holds no certificateAuthority.privateKey; store {"certificateAuthority": {"privateKey": …}}',
    );
  }
  const skew = ca.expirySkewSeconds ?? DEFAULT_EXPIRY_SKEW_S;
  if (!Number.isInteger(skew) || skew < 0 || skew > MAX_EXPIRY_SKEW_S) {
    throw invalid(
      `certificateAuthority.expirySkewSeconds must be an integer from 0 to ${MAX_EXPIRY_SKEW_S}`,
    );
  }
  if (!Number.isFinite(session.deadlineEpochMs)) {
    throw invalid(
      "is a certificate authority, and a certificate must expire: give the session a budget (budgetMs or request.timeoutMs)",
    );
  }
  const caKey = parsePrivateKey(ca.privateKey, ca.passphrase, invalid);
  if (caKey.type !== ED25519) {
    throw invalid(
      `the certificate authority key must be ed25519, not ${caKey.type}; create one with ssh-keygen -t ed25519`,
    );
  }
  const nowS = Math.floor((session.now ?? Date.now)() / 1000);
  const minted = mintUserCertificate(caKey, {
    principal: session.username,
    forceCommand: session.command,
    ...(ca.sourceAddress !== undefined ? { sourceAddress: ca.sourceAddress } : {}),
    keyId: keyIdFor(session.requestId),
    serial: serialFor(session.requestId),
    validAfter: Math.max(0, nowS - VALID_AFTER_BACKDATE_S),
    // Whole seconds, rounded down: never beyond the deadline plus the skew.
    validBefore: Math.floor(session.deadlineEpochMs / 1000) + skew,
  });
  return {
    type: "certificate",
    key: minted.key,
    algorithm: ED25519_CERT,
    signatureAlgorithm: ED25519,
    minted,
  };
}

/** Parses (and decrypts) a private key, once per container per key. */
function parsePrivateKey(
  privateKey: string | Buffer,
  passphrase: string | undefined,
  invalid: (problem: string) => CredentialInvalid,
): ParsedKey {
  const secret = { privateKey, passphrase };
  const cacheKey = createHash("sha256")
    .update(secret.privateKey)
    .update("\0")
    .update(secret.passphrase ?? "")
    .digest("hex");
  const cached = parsedKeys.get(cacheKey);
  if (cached) return cached;
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
  return key;
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
