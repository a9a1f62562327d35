import { createHash, createHmac } from "node:crypto";
import { isIP } from "node:net";
// Never ssh2 here: the handlers build host trust at init, before ssh2 is loaded.
import { HOST_CERT_TYPES, hostCertificateProblem, parseCertificate } from "./certificate-format.ts";

/** The outcome of checking a server's host key. */
export type HostKeyVerdict = "trusted" | "unknown" | "mismatch";

/** A host-key policy for one target, built once before connecting. */
export interface HostKeyPolicy {
  /** Key types to offer in `algorithms.serverHostKey`, or undefined to keep ssh2's list. */
  readonly serverHostKeyAlgorithms: string[] | undefined;
  /** Decide on the raw public-key blob the server presented. */
  verify(keyBlob: Buffer): HostKeyVerdict;
  /** Human-readable description for error messages ("pinned SHA256:…", "known_hosts"). */
  readonly source: string;
}

/** `SHA256:<base64 without padding>` of a public-key blob, as OpenSSH prints it. */
export function fingerprintSha256(keyBlob: Buffer): string {
  return `SHA256:${createHash("sha256").update(keyBlob).digest("base64").replace(/=+$/, "")}`;
}

/** Key type named inside a public-key blob (its first SSH string). */
export function keyTypeOfBlob(blob: Buffer): string | undefined {
  if (blob.length < 4) return undefined;
  const len = blob.readUInt32BE(0);
  if (len === 0 || len > 64 || 4 + len > blob.length) return undefined;
  return blob.subarray(4, 4 + len).toString("latin1");
}

/** Algorithms ssh2 negotiates for a stored key type (RSA keys sign with SHA-2 variants). */
function algorithmsForKeyType(type: string): string[] {
  if (type === "ssh-rsa") return ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"];
  return [type];
}

interface PublicKeyLine {
  type: string;
  blob: Buffer;
}

/** Parses `type base64 [comment]`; undefined when it is not a well-formed key line. */
export function parsePublicKeyLine(text: string): PublicKeyLine | undefined {
  const [type, b64] = text.trim().split(/\s+/);
  if (!type || !b64 || !/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) return undefined;
  const blob = Buffer.from(b64, "base64");
  if (keyTypeOfBlob(blob) !== type) return undefined;
  return { type, blob };
}

/** ssh2's default host key algorithms (its order), offered after certificate types. */
const PLAIN_HOST_KEY_ALGORITHMS = [
  "ssh-ed25519",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "rsa-sha2-512",
  "rsa-sha2-256",
  "ssh-rsa",
];

/** Host key types a pin may name: what ssh2's client negotiates. */
const PIN_KEY_TYPES: ReadonlySet<string> = new Set([
  "ssh-ed25519",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "ssh-rsa",
  "ssh-dss",
]);

/** True when `pin` is a syntactically valid `SHA256:` fingerprint or public key line. */
export function isValidPin(pin: string): boolean {
  if (/^SHA256:[A-Za-z0-9+/]{43}=?$/.test(pin)) return true;
  const line = parsePublicKeyLine(pin);
  return line !== undefined && PIN_KEY_TYPES.has(line.type);
}

/** A policy from a request's `hostKey` pin: a `SHA256:` fingerprint or a public key line. */
export function pinnedPolicy(pin: string): HostKeyPolicy {
  const trimmed = pin.trim();
  if (trimmed.startsWith("SHA256:")) {
    const want = trimmed.replace(/=+$/, "");
    return {
      serverHostKeyAlgorithms: undefined,
      source: `pinned ${want}`,
      verify: (blob) => (fingerprintSha256(blob) === want ? "trusted" : "mismatch"),
    };
  }
  const line = parsePublicKeyLine(trimmed);
  if (!line) throw new TypeError("hostKey pin is neither a SHA256 fingerprint nor a key line");
  return {
    // Offer only the pinned type, so a server holding several keys presents the pinned one.
    serverHostKeyAlgorithms: algorithmsForKeyType(line.type),
    source: `pinned ${line.type} key ${fingerprintSha256(line.blob)}`,
    verify: (blob) => (blob.equals(line.blob) ? "trusted" : "mismatch"),
  };
}

interface KnownHostsEntry {
  marker: "" | "@revoked" | "@cert-authority";
  patterns: string;
  key: PublicKeyLine;
}

function parseKnownHosts(text: string): KnownHostsEntry[] {
  const entries: KnownHostsEntry[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const fields = line.split(/\s+/);
    let marker: KnownHostsEntry["marker"] = "";
    if (fields[0] === "@revoked" || fields[0] === "@cert-authority") {
      marker = fields.shift() as KnownHostsEntry["marker"];
    }
    const [patterns, type, b64] = fields;
    if (!patterns || !type || !b64) continue;
    const key = parsePublicKeyLine(`${type} ${b64}`);
    if (key) entries.push({ marker, patterns, key });
  }
  return entries;
}

/**
 * The spelling known_hosts is searched under: lower case, no trailing dot, and IP literals in
 * Node's canonical form (IPv4-mapped IPv6 as the IPv4 address).
 */
export function canonicalHost(host: string): string {
  const lower = host.toLowerCase().replace(/\.$/, "");
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
  if (mapped) return mapped[1]!;
  if (isIP(lower) === 6) {
    try {
      return new URL(`http://[${lower}]/`).hostname.slice(1, -1);
    } catch {
      return lower;
    }
  }
  return lower;
}

/** The name known_hosts stores for a target: `host`, or `[host]:port` off port 22. */
function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

function globToRegExp(glob: string): RegExp {
  const escaped = glob
    .replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, ".*")
    .replace(/\?/g, ".");
  return new RegExp(`^${escaped}$`, "i");
}

function hashedMatches(pattern: string, name: string): boolean {
  // |1|base64(salt)|base64(HMAC-SHA1(salt, name))
  const [, magic, salt, hash] = pattern.split("|");
  if (magic !== "1" || !salt || !hash) return false;
  const mac = createHmac("sha1", Buffer.from(salt, "base64")).update(name).digest("base64");
  return mac === hash;
}

/** OpenSSH pattern-list semantics: any negated match excludes, else any positive match. */
function patternsMatch(patterns: string, name: string): boolean {
  if (patterns.startsWith("|")) return hashedMatches(patterns, name);
  let matched = false;
  for (const p of patterns.split(",")) {
    const negated = p.startsWith("!");
    const glob = negated ? p.slice(1) : p;
    if (globToRegExp(glob).test(name)) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

/**
 * Where the trust in a host key comes from (recorded in the audit line as `hostKeySource`):
 * the operator's known_hosts entry for the name, a request pin narrowing it, a request pin
 * alone, or `none` — nothing vouches for the name, so no key is trusted.
 */
export type HostKeySource = "known_hosts" | "pin+known_hosts" | "pin" | "cert-authority" | "none";

/** A {@link HostKeyPolicy} with what it rests on; `none` trusts no key. */
export interface HostKeyTrust extends HostKeyPolicy {
  readonly kind: HostKeySource;
}

/** Options of {@link hostKeyTrust}. */
export interface HostKeyTrustOptions {
  /** The operator's OpenSSH known_hosts text: authoritative. */
  knownHosts?: string | undefined;
  /** The request's `hostKey` pin. */
  pin?: string | undefined;
  host: string;
  port: number;
  /**
   * The address the host resolved to, once known. As OpenSSH's `CheckHostIP` (with strict
   * checking), known_hosts entries for the address only add a check: a presented key of a
   * type they list must be one of theirs, else `mismatch` ("the host key differs from the
   * key for the IP address"). They never vouch for the name: a name resolving to a listed
   * address is as unlisted as any other.
   */
  address?: string | undefined;
  /**
   * Whether a pin alone may vouch for a host the known hosts do not list. A pin for a listed
   * host only narrows and needs no permission. @default true
   */
  allowPinOnly?: boolean;
  /** The wall clock in ms, for host certificates' validity (tests). @default Date.now */
  now?: () => number;
}

/**
 * The one trust rule for host keys, OpenSSH's (`StrictHostKeyChecking yes`, `CheckHostIP
 * yes`). A key is trusted for a name only by an entry for that name: the operator's known
 * hosts are authoritative, and when they list the name the key must be one of theirs and match
 * the pin as well (a pin only narrows). An entry for the resolved address adds a check, never
 * vouches: a key of a type listed for the address that is not listed there is a `mismatch`.
 * `@revoked` keys are refused whatever vouches for them. A pin for a name they do not list is
 * honoured only with `allowPinOnly`, and never for a key they list for another host (that key
 * is that host's: a pin cannot rename it); otherwise nothing vouches (`unknown`).
 *
 * `@cert-authority` lines for the name vouch for a host certificate (OpenSSH's rules): a host
 * certificate signed by one of those CAs, valid now, with the host name among its principals
 * (lib/session/certificate.ts). `@revoked` still wins, for the certificate, the key it
 * certifies and its CA alike. A plain key for a host under a CA is refused unless listed: for
 * a name only a CA vouches for (`cert-authority`) a plain key is `unknown`.
 */
export function hostKeyTrust(options: HostKeyTrustOptions): HostKeyTrust {
  const name = knownHostsName(canonicalHost(options.host), options.port);
  const all = parseKnownHosts(options.knownHosts ?? "");
  const entries = all.filter((e) => patternsMatch(e.patterns, name));
  const trusted = entries.filter((e) => e.marker === "");
  // A revoked key is refused for every host, whatever name the revocation was written for.
  const revoked = all.filter((e) => e.marker === "@revoked");
  const isRevoked = (blob: Buffer) => revoked.some((e) => e.key.blob.equals(blob));
  // CheckHostIP: the address's own entries, when the address is not the name itself.
  const addressName =
    options.address === undefined
      ? undefined
      : knownHostsName(canonicalHost(options.address), options.port);
  const atAddress =
    addressName === undefined || addressName === name
      ? []
      : all.filter((e) => e.marker === "" && patternsMatch(e.patterns, addressName));
  const differsAtAddress = (blob: Buffer) => {
    const type = keyTypeOfBlob(blob);
    const sameType = atAddress.filter((e) => e.key.type === type);
    return sameType.length > 0 && !sameType.some((e) => e.key.blob.equals(blob));
  };
  // Never the address itself: a refusal does not reveal what a name resolved to.
  const addressNote = atAddress.length > 0 ? " and the entry for its address" : "";
  const caKeys = entries.filter((e) => e.marker === "@cert-authority").map((e) => e.key.blob);
  const underCa = caKeys.length > 0;
  const pin = options.pin === undefined ? undefined : pinnedPolicy(options.pin);
  const listedTypes = [...new Set(trusted.map((e) => e.key.type))];
  // Offered first, as OpenSSH's client does for a host under a CA (the connection drops
  // those its ssh2 cannot negotiate: all of them without the project's ssh2 patch).
  const certAlgorithms = underCa ? Object.keys(HOST_CERT_TYPES) : [];
  const hostname = canonicalHost(options.host);
  const now = options.now ?? Date.now;
  /** The verdict on a host certificate; undefined when `blob` is no certificate. */
  const certificateVerdict = (blob: Buffer): HostKeyVerdict | undefined => {
    const type = keyTypeOfBlob(blob);
    if (type === undefined || HOST_CERT_TYPES[type] === undefined) return undefined;
    const cert = parseCertificate(blob);
    if (!cert || !underCa) return "mismatch";
    if (isRevoked(blob) || isRevoked(cert.keyBlob) || isRevoked(cert.signatureKey)) {
      return "mismatch";
    }
    if (pin && pin.verify(cert.keyBlob) !== "trusted") return "mismatch";
    const problem = hostCertificateProblem(cert, caKeys, hostname, Math.floor(now() / 1000));
    return problem === undefined ? "trusted" : "mismatch";
  };

  if (trusted.length > 0) {
    const inKnownHosts = (blob: Buffer) => trusted.some((e) => e.key.blob.equals(blob));
    return {
      kind: pin ? "pin+known_hosts" : "known_hosts",
      serverHostKeyAlgorithms: pin?.serverHostKeyAlgorithms ?? [
        ...certAlgorithms,
        ...listedTypes.flatMap(algorithmsForKeyType),
      ],
      source: pin
        ? `${pin.source} and the known_hosts entry for ${name}${addressNote}`
        : `known_hosts entry for ${name}${addressNote}`,
      verify: (blob) => {
        const certified = certificateVerdict(blob);
        if (certified !== undefined) return certified;
        if (isRevoked(blob) || !inKnownHosts(blob) || differsAtAddress(blob)) return "mismatch";
        if (pin && pin.verify(blob) !== "trusted") return "mismatch";
        return "trusted";
      },
    };
  }
  if (underCa) {
    return {
      kind: "cert-authority",
      // Plain key types after the certificates, as OpenSSH does: a host that presents a
      // plain key is then refused by name (`HostKeyUnknown`), not by a failed negotiation.
      serverHostKeyAlgorithms: [...certAlgorithms, ...PLAIN_HOST_KEY_ALGORITHMS],
      source: `@cert-authority entry for ${name} (a host certificate it signed, valid now, naming ${hostname})`,
      verify: (blob) => certificateVerdict(blob) ?? (isRevoked(blob) ? "mismatch" : "unknown"),
    };
  }
  if (pin && options.allowPinOnly !== false) {
    const listedForAnother = (blob: Buffer) =>
      all.some((e) => e.marker === "" && e.key.blob.equals(blob));
    return {
      kind: "pin",
      serverHostKeyAlgorithms: pin.serverHostKeyAlgorithms,
      source: `${pin.source} (a key known_hosts does not list for another host)${addressNote}`,
      verify: (blob) =>
        isRevoked(blob) || differsAtAddress(blob) || listedForAnother(blob)
          ? "mismatch"
          : pin.verify(blob),
    };
  }
  return {
    kind: "none",
    serverHostKeyAlgorithms: undefined,
    source: pin
      ? `known_hosts entry for ${name} (a request pin alone is not honoured for it)`
      : `known_hosts entry for ${name}`,
    verify: (blob) => (isRevoked(blob) ? "mismatch" : "unknown"),
  };
}

/**
 * A policy from OpenSSH known_hosts text alone: plain, `[host]:port`, wildcard and hashed
 * (`|1|`) entries; `@revoked` keys are refused. A host with entries but none matching the
 * presented key is a mismatch.
 */
export function knownHostsPolicy(text: string, host: string, port: number): HostKeyPolicy {
  return hostKeyTrust({ knownHosts: text, host, port });
}
