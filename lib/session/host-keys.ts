import { createHash, createHmac } from "node:crypto";

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

/** True when `pin` is a syntactically valid `SHA256:` fingerprint or public key line. */
export function isValidPin(pin: string): boolean {
  if (/^SHA256:[A-Za-z0-9+/]{43}=?$/.test(pin)) return true;
  return parsePublicKeyLine(pin) !== undefined;
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
 * A policy from OpenSSH known_hosts text: plain, `[host]:port`, wildcard and hashed (`|1|`)
 * entries; `@revoked` keys are refused; `@cert-authority` lines are ignored (no certificate
 * support). A host with entries but none matching the presented key is a mismatch.
 */
export function knownHostsPolicy(text: string, host: string, port: number): HostKeyPolicy {
  const name = knownHostsName(host, port);
  const entries = parseKnownHosts(text).filter(
    (e) => e.marker !== "@cert-authority" && patternsMatch(e.patterns, name),
  );
  const trusted = entries.filter((e) => e.marker === "");
  const revoked = entries.filter((e) => e.marker === "@revoked");
  const types = [...new Set(trusted.map((e) => e.key.type))];
  return {
    serverHostKeyAlgorithms: types.length > 0 ? types.flatMap(algorithmsForKeyType) : undefined,
    source: `known_hosts entry for ${name}`,
    verify: (blob) => {
      if (revoked.some((e) => e.key.blob.equals(blob))) return "mismatch";
      if (trusted.some((e) => e.key.blob.equals(blob))) return "trusted";
      return trusted.length > 0 ? "mismatch" : "unknown";
    },
  };
}
