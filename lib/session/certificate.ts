/**
 * OpenSSH user certificates minted per session (OpenSSH PROTOCOL.certkeys): a fresh ed25519
 * key pair, signed by the credential's certificate authority for exactly one principal, one
 * command and one deadline. The private key exists only in this process's memory and only for
 * the session; nothing here is ever written anywhere. docs/security.md explains the model.
 */
import { createHash, generateKeyPairSync, type KeyObject, randomBytes, sign } from "node:crypto";
import type { ParsedKey } from "ssh2";
import { parseKey } from "./ssh2.ts";

export const ED25519 = "ssh-ed25519";
export const ED25519_CERT = "ssh-ed25519-cert-v01@openssh.com";
const SSH_CERT_TYPE_USER = 1;
const SSH_CERT_TYPE_HOST = 2;

/**
 * Seconds `valid_after` lies before the minting: a host whose clock is behind ours by up to
 * this much still accepts the certificate. Backdating opens no window: the key pair is new.
 */
export const VALID_AFTER_BACKDATE_S = 60;
/** Default seconds `valid_before` may lie beyond the session's deadline (host clocks ahead). */
export const DEFAULT_EXPIRY_SKEW_S = 30;
/** The most a credential may configure as `expirySkewSeconds`. */
export const MAX_EXPIRY_SKEW_S = 300;

/** What one certificate says; times are Unix seconds. */
export interface UserCertificateSpec {
  /** The one principal (the request's username). */
  principal: string;
  /** `force-command`: the exact command string the session sends in its exec request. */
  forceCommand: string;
  /** `source-address`: comma-separated CIDR list, when the credential sets one. */
  sourceAddress?: string;
  keyId: string;
  serial: bigint;
  validAfter: number;
  validBefore: number;
}

/** A minted certificate with its key pair, ready for ssh2's auth (credentials.ts). */
export interface MintedCertificate {
  /** The certificate blob (what the publickey request carries as the public key). */
  certificate: Buffer;
  /** Signs `data` with the certificate's ed25519 key: the raw 64-byte signature. */
  sign(data: Buffer): Buffer;
  /**
   * The same key pair as ssh2 parses it: only for ssh2's auth bookkeeping (its authHandler
   * accepts nothing else); the request itself is written by `sendCertificateAuth`.
   */
  key: ParsedKey;
  /** The key pair's private half (node:crypto), never exported by the engine. */
  privateKey: KeyObject;
  spec: UserCertificateSpec;
}

// ---- SSH wire encoding (RFC 4251 §5) ---------------------------------------------------

function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n, 0);
  return b;
}

function u64(n: bigint): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeBigUInt64BE(n, 0);
  return b;
}

export function sshString(data: string | Buffer): Buffer {
  const b = typeof data === "string" ? Buffer.from(data, "utf8") : data;
  return Buffer.concat([u32(b.length), b]);
}

/** A critical option or extension list: sorted by name, each value itself a string. */
function options(entries: [string, string][]): Buffer {
  const sorted = [...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return Buffer.concat(
    sorted.flatMap(([name, value]) => [sshString(name), sshString(sshString(value))]),
  );
}

/** Reads the SSH strings of a buffer in order (for tests and the audit: never the secret). */
export function readSshStrings(buf: Buffer, count: number, offset = 0): [Buffer[], number] {
  const out: Buffer[] = [];
  let p = offset;
  for (let i = 0; i < count; i++) {
    const len = buf.readUInt32BE(p);
    if (p + 4 + len > buf.length) throw new RangeError("SSH string runs past the end");
    out.push(buf.subarray(p + 4, p + 4 + len));
    p += 4 + len;
  }
  return [out, p];
}

// ---- keys ------------------------------------------------------------------------------

/** The raw 32-byte ed25519 public key and seed of a node:crypto key pair. */
function rawEd25519(privateKey: KeyObject): { pub: Buffer; seed: Buffer } {
  const jwk = privateKey.export({ format: "jwk" });
  return { pub: Buffer.from(jwk.x!, "base64url"), seed: Buffer.from(jwk.d!, "base64url") };
}

/**
 * An unencrypted `openssh-key-v1` private key file (PROTOCOL.key) for a node:crypto ed25519
 * key: what ssh2's parser and OpenSSH's tools read.
 */
export function opensshPrivateKeyText(privateKey: KeyObject): string {
  const { pub, seed } = rawEd25519(privateKey);
  return opensshPrivateKey(pub, seed);
}

function opensshPrivateKey(pub: Buffer, seed: Buffer): string {
  const pubBlob = Buffer.concat([sshString(ED25519), sshString(pub)]);
  const check = randomBytes(4);
  let priv = Buffer.concat([
    check,
    check,
    sshString(ED25519),
    sshString(pub),
    sshString(Buffer.concat([seed, pub])),
    sshString(""),
  ]);
  const pad = (8 - (priv.length % 8)) % 8;
  priv = Buffer.concat([priv, Buffer.from(Array.from({ length: pad }, (_, i) => i + 1))]);
  const body = Buffer.concat([
    Buffer.from("openssh-key-v1\0", "latin1"),
    sshString("none"),
    sshString("none"),
    sshString(""),
    u32(1),
    sshString(pubBlob),
    sshString(priv),
  ]);
  const lines = body.toString("base64").match(/.{1,70}/g) ?? [];
  return `-----BEGIN OPENSSH PRIVATE KEY-----\n${lines.join("\n")}\n-----END OPENSSH PRIVATE KEY-----\n`;
}

/**
 * The serial that ties a certificate to a request: the first 8 bytes of SHA-256 of the
 * request id, as an unsigned 64-bit integer (sshd logs it as `serial N`).
 */
export function serialFor(requestId: string): bigint {
  return createHash("sha256").update(requestId).digest().readBigUInt64BE(0);
}

/** The key id sshd logs (`ID …`): names the invocation. */
export function keyIdFor(requestId: string): string {
  return `bounded-ssh:${requestId}`;
}

/**
 * Creates a fresh ed25519 key pair (node:crypto: ssh2's generator returns an unparsable key
 * about once in 170 calls) and signs a user certificate for it with `ca` (an ed25519 private
 * key as ssh2 parses it). Extensions are empty on purpose: no pty, no forwarding, no agent.
 */
export function mintUserCertificate(ca: ParsedKey, spec: UserCertificateSpec): MintedCertificate {
  if (ca.type !== ED25519)
    throw new Error(`the certificate authority must be ed25519, not ${ca.type}`);
  const pair = generateKeyPairSync("ed25519");
  const { pub, seed } = rawEd25519(pair.privateKey);
  const critical: [string, string][] = [["force-command", spec.forceCommand]];
  if (spec.sourceAddress !== undefined) critical.push(["source-address", spec.sourceAddress]);
  const toSign = Buffer.concat([
    sshString(ED25519_CERT),
    sshString(randomBytes(32)), // nonce
    sshString(pub),
    u64(spec.serial),
    u32(SSH_CERT_TYPE_USER),
    sshString(spec.keyId),
    sshString(sshString(spec.principal)),
    u64(BigInt(spec.validAfter)),
    u64(BigInt(spec.validBefore)),
    sshString(options(critical)),
    sshString(Buffer.alloc(0)), // extensions: none
    sshString(Buffer.alloc(0)), // reserved
    sshString(ca.getPublicSSH()),
  ]);
  const caSignature = ca.sign(toSign);
  if (caSignature instanceof Error) throw caSignature;
  const certificate = Buffer.concat([
    toSign,
    sshString(Buffer.concat([sshString(ED25519), sshString(caSignature)])),
  ]);
  const key = parseKey(opensshPrivateKey(pub, seed));
  if (key instanceof Error) throw key;
  const privateKey = pair.privateKey;
  return {
    certificate,
    sign: (data) => sign(null, data, privateKey),
    key,
    privateKey,
    spec,
  };
}

/** What a host certificate says (`ssh-keygen -h`); times are Unix seconds. */
export interface HostCertificateSpec {
  /** The names the host is reached by (a certificate without principals vouches for none). */
  principals: string[];
  keyId: string;
  serial: bigint;
  validAfter: number;
  validBefore: number;
}

/**
 * Signs a host certificate for an ed25519 host public key blob with `ca` (ed25519), as
 * `ssh-keygen -s ca -h -n principals` does: no critical options, no extensions.
 */
export function signHostCertificate(
  ca: ParsedKey,
  hostKeyBlob: Buffer,
  spec: HostCertificateSpec,
): Buffer {
  if (ca.type !== ED25519)
    throw new Error(`the certificate authority must be ed25519, not ${ca.type}`);
  const [[type, pub]] = readSshStrings(hostKeyBlob, 2);
  if (type!.toString("latin1") !== ED25519 || pub!.length !== 32) {
    throw new Error("only ed25519 host keys can be certified here");
  }
  const toSign = Buffer.concat([
    sshString(ED25519_CERT),
    sshString(randomBytes(32)),
    sshString(pub!),
    u64(spec.serial),
    u32(SSH_CERT_TYPE_HOST),
    sshString(spec.keyId),
    sshString(Buffer.concat(spec.principals.map((p) => sshString(p)))),
    u64(BigInt(spec.validAfter)),
    u64(BigInt(spec.validBefore)),
    sshString(Buffer.alloc(0)),
    sshString(Buffer.alloc(0)),
    sshString(Buffer.alloc(0)),
    sshString(ca.getPublicSSH()),
  ]);
  const signature = ca.sign(toSign);
  if (signature instanceof Error) throw signature;
  return Buffer.concat([
    toSign,
    sshString(Buffer.concat([sshString(ED25519), sshString(signature)])),
  ]);
}

/** `ssh-ed25519-cert-v01@openssh.com AAAA… comment`: the certificate as a `-cert.pub` file. */
export function certificateLine(certificate: Buffer, comment = ""): string {
  return `${ED25519_CERT} ${certificate.toString("base64")}${comment ? ` ${comment}` : ""}`;
}

/** `ssh-ed25519 AAAA… comment`: the public key line of a node:crypto ed25519 key. */
export function ed25519PublicKeyLine(privateKey: KeyObject, comment = ""): string {
  const { pub } = rawEd25519(privateKey);
  const blob = Buffer.concat([sshString(ED25519), sshString(pub)]).toString("base64");
  return `${ED25519} ${blob}${comment ? ` ${comment}` : ""}`;
}

/** SHA256 fingerprint of a public key blob, as OpenSSH prints it. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}

// ---- host certificates (known_hosts `@cert-authority`) ---------------------------------

/** Host certificate types the engine accepts, with the type of the key each certifies. */
export const HOST_CERT_TYPES: Readonly<Record<string, string>> = {
  "ssh-ed25519-cert-v01@openssh.com": "ssh-ed25519",
  "ecdsa-sha2-nistp256-cert-v01@openssh.com": "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384-cert-v01@openssh.com": "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521-cert-v01@openssh.com": "ecdsa-sha2-nistp521",
};

/** An OpenSSH certificate, parsed (PROTOCOL.certkeys). */
export interface ParsedCertificate {
  type: string;
  /** The certified key as a plain public key blob (`string type, key fields`). */
  keyBlob: Buffer;
  serial: bigint;
  certType: number;
  keyId: string;
  principals: string[];
  validAfter: bigint;
  validBefore: bigint;
  criticalOptions: string[];
  /** The CA's public key blob. */
  signatureKey: Buffer;
  /** The CA's signature blob (`string algorithm, string signature`). */
  signature: Buffer;
  /** Everything the CA signed. */
  signed: Buffer;
}

/** Parses a host certificate blob of a type in {@link HOST_CERT_TYPES}; undefined if malformed. */
export function parseCertificate(blob: Buffer): ParsedCertificate | undefined {
  try {
    const [[typeBuf], afterType] = readSshStrings(blob, 1);
    const type = typeBuf!.toString("latin1");
    const base = HOST_CERT_TYPES[type];
    if (base === undefined) return undefined;
    // nonce, then the key's fields: ed25519 one string, ECDSA two (curve, point).
    const fieldCount = base === "ssh-ed25519" ? 1 : 2;
    const [[, ...fields], afterKey] = readSshStrings(blob, 1 + fieldCount, afterType);
    const serial = blob.readBigUInt64BE(afterKey);
    const certType = blob.readUInt32BE(afterKey + 8);
    const [[keyId, principalsBuf], afterPrincipals] = readSshStrings(blob, 2, afterKey + 12);
    const validAfter = blob.readBigUInt64BE(afterPrincipals);
    const validBefore = blob.readBigUInt64BE(afterPrincipals + 8);
    const [[critical, , , signatureKey], signedEnd] = readSshStrings(blob, 4, afterPrincipals + 16);
    const [[signature], end] = readSshStrings(blob, 1, signedEnd);
    if (end !== blob.length) return undefined;
    const list = (buf: Buffer) => {
      const out: string[] = [];
      let p = 0;
      while (p < buf.length) {
        const [[s], next] = readSshStrings(buf, 1, p);
        out.push(s!.toString("utf8"));
        p = next;
      }
      return out;
    };
    const criticalNames: string[] = [];
    for (let p = 0; p < critical!.length; ) {
      const [[optName], next] = readSshStrings(critical!, 2, p);
      criticalNames.push(optName!.toString("utf8"));
      p = next;
    }
    return {
      type,
      keyBlob: Buffer.concat([sshString(base), ...fields.map((f) => sshString(f))]),
      serial,
      certType,
      keyId: keyId!.toString("utf8"),
      principals: list(principalsBuf!),
      validAfter,
      validBefore,
      criticalOptions: criticalNames,
      signatureKey: signatureKey!,
      signature: signature!,
      signed: blob.subarray(0, signedEnd),
    };
  } catch {
    // A length running past the end: malformed.
    return undefined;
  }
}

/**
 * Why a host certificate does not vouch for `hostname` under `caKeys` at `nowS`, or
 * undefined when it does (OpenSSH's rules for known_hosts `@cert-authority`): a host
 * certificate, signed by one of the CAs (signature verified), valid now, naming the host among
 * its principals (a certificate without principals vouches for none), no critical options.
 */
export function hostCertificateProblem(
  cert: ParsedCertificate,
  caKeys: Buffer[],
  hostname: string,
  nowS: number,
  verify: (keyBlob: Buffer, data: Buffer, signature: Buffer) => boolean,
): string | undefined {
  if (cert.certType !== SSH_CERT_TYPE_HOST) return "it is not a host certificate";
  if (!caKeys.some((k) => k.equals(cert.signatureKey))) {
    return `its CA ${fingerprint(cert.signatureKey)} is not a @cert-authority for the host`;
  }
  if (!verify(cert.signatureKey, cert.signed, cert.signature)) return "its CA signature is invalid";
  const now = BigInt(nowS);
  if (now < cert.validAfter) return "it is not yet valid";
  if (now >= cert.validBefore) return "it has expired";
  if (!cert.principals.map((p) => p.toLowerCase()).includes(hostname.toLowerCase())) {
    return `${JSON.stringify(hostname)} is not among its principals`;
  }
  if (cert.criticalOptions.length > 0) {
    return `it has critical options (${cert.criticalOptions.join(", ")})`;
  }
  return undefined;
}
