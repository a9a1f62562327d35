/**
 * OpenSSH certificates (PROTOCOL.certkeys) without ssh2: the wire format, the names that tie a
 * certificate to a request, and host certificates' parsing and checks, with signatures
 * verified by node:crypto. Split from certificate.ts (which mints, and needs ssh2's key
 * parser) so that host-key trust and the handlers' steps load no ssh2 at a Lambda's init.
 */
import { createHash, createPublicKey, verify } from "node:crypto";

export const ED25519 = "ssh-ed25519";
export const ED25519_CERT = "ssh-ed25519-cert-v01@openssh.com";
export const SSH_CERT_TYPE_USER = 1;
export const SSH_CERT_TYPE_HOST = 2;

/**
 * Seconds `valid_after` lies before the minting: a host whose clock is behind ours by up to
 * this much still accepts the certificate. Backdating opens no window: the key pair is new.
 */
export const VALID_AFTER_BACKDATE_S = 60;
/** Default seconds `valid_before` may lie beyond the session's deadline (host clocks ahead). */
export const DEFAULT_EXPIRY_SKEW_S = 30;
/** The most a credential may configure as `expirySkewSeconds`. */
export const MAX_EXPIRY_SKEW_S = 300;

// ---- SSH wire encoding (RFC 4251 §5) ---------------------------------------------------

export function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n, 0);
  return b;
}

export function u64(n: bigint): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeBigUInt64BE(n, 0);
  return b;
}

export function sshString(data: string | Buffer): Buffer {
  const b = typeof data === "string" ? Buffer.from(data, "utf8") : data;
  return Buffer.concat([u32(b.length), b]);
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
): string | undefined {
  if (cert.certType !== SSH_CERT_TYPE_HOST) return "it is not a host certificate";
  if (!caKeys.some((k) => k.equals(cert.signatureKey))) {
    return `its CA ${fingerprint(cert.signatureKey)} is not a @cert-authority for the host`;
  }
  if (!verifySshSignature(cert.signatureKey, cert.signed, cert.signature)) {
    return "its CA signature is invalid";
  }
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

/** An SSH mpint's magnitude, without sign padding, left-padded to `size` bytes. */
function unsigned(mpint: Buffer, size?: number): Buffer {
  let i = 0;
  while (i < mpint.length - 1 && mpint[i] === 0) i++;
  const bytes = mpint.subarray(i);
  if (size === undefined || bytes.length >= size) return bytes;
  return Buffer.concat([Buffer.alloc(size - bytes.length), bytes]);
}

const EC_CURVES: Record<string, { crv: string; hash: string; size: number }> = {
  "ecdsa-sha2-nistp256": { crv: "P-256", hash: "sha256", size: 32 },
  "ecdsa-sha2-nistp384": { crv: "P-384", hash: "sha384", size: 48 },
  "ecdsa-sha2-nistp521": { crv: "P-521", hash: "sha512", size: 66 },
};
const RSA_HASHES: Record<string, string> = {
  "rsa-sha2-256": "sha256",
  "rsa-sha2-512": "sha512",
  "ssh-rsa": "sha1",
};

/**
 * Verifies an SSH signature blob (`string algorithm, string signature`) over `data` with a
 * public key blob (ed25519, ECDSA or RSA, RFC 8709/5656/8332): a CA's signature on a
 * certificate. False for anything malformed or mismatched.
 */
export function verifySshSignature(keyBlob: Buffer, data: Buffer, signatureBlob: Buffer): boolean {
  try {
    const [[typeBuf], afterType] = readSshStrings(keyBlob, 1);
    const type = typeBuf!.toString("latin1");
    const [[algoBuf, sig], end] = readSshStrings(signatureBlob, 2);
    if (end !== signatureBlob.length) return false;
    const algo = algoBuf!.toString("latin1");
    const b64url = (b: Buffer) => b.toString("base64url");
    if (type === "ssh-ed25519") {
      const [[pub]] = readSshStrings(keyBlob, 1, afterType);
      if (algo !== type || pub!.length !== 32) return false;
      const key = createPublicKey({
        key: { kty: "OKP", crv: "Ed25519", x: b64url(pub!) },
        format: "jwk",
      });
      return verify(null, data, key, sig!);
    }
    const curve = EC_CURVES[type];
    if (curve !== undefined) {
      const [[, q]] = readSshStrings(keyBlob, 2, afterType);
      if (algo !== type || q![0] !== 4 || q!.length !== 1 + 2 * curve.size) return false;
      const key = createPublicKey({
        key: {
          kty: "EC",
          crv: curve.crv,
          x: b64url(q!.subarray(1, 1 + curve.size)),
          y: b64url(q!.subarray(1 + curve.size)),
        },
        format: "jwk",
      });
      const [[r, s2]] = readSshStrings(sig!, 2);
      const raw = Buffer.concat([unsigned(r!, curve.size), unsigned(s2!, curve.size)]);
      if (raw.length !== 2 * curve.size) return false;
      return verify(curve.hash, data, { key, dsaEncoding: "ieee-p1363" }, raw);
    }
    if (type === "ssh-rsa") {
      const hash = RSA_HASHES[algo];
      if (hash === undefined) return false;
      const [[e, n]] = readSshStrings(keyBlob, 2, afterType);
      const key = createPublicKey({
        key: { kty: "RSA", n: b64url(unsigned(n!)), e: b64url(unsigned(e!)) },
        format: "jwk",
      });
      return verify(hash, data, key, sig!);
    }
    return false;
  } catch {
    return false;
  }
}
