/**
 * OpenSSH user certificates minted per session (OpenSSH PROTOCOL.certkeys): a fresh ed25519
 * key pair, signed by the credential's certificate authority for exactly one principal, one
 * command and one deadline. The private key exists only in this process's memory and only for
 * the session; nothing here is ever written anywhere. docs/security.md explains the model.
 */
import { generateKeyPairSync, type KeyObject, randomBytes, sign } from "node:crypto";
import type { ParsedKey } from "ssh2";
import {
  ED25519,
  ED25519_CERT,
  readSshStrings,
  SSH_CERT_TYPE_HOST,
  SSH_CERT_TYPE_USER,
  sshString,
  u32,
  u64,
} from "./certificate-format.ts";
import { parseKey } from "./ssh2.ts";

// The ssh2-free part, for callers that import from here.
export * from "./certificate-format.ts";

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

/** A critical option or extension list: sorted by name, each value itself a string. */
function options(entries: [string, string][]): Buffer {
  const sorted = [...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return Buffer.concat(
    sorted.flatMap(([name, value]) => [sshString(name), sshString(sshString(value))]),
  );
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
