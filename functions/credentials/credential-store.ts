import { CredentialInvalid, CredentialUnavailable } from "../../lib/errors.ts";
import { MAX_EXPIRY_SKEW_S } from "../../lib/session/certificate-format.ts";
import type { CertificateAuthority, Secret } from "../../lib/types.ts";

/** Where credentials are read by name. One interface, so local mode runs the same handler. */
export interface CredentialStore {
  /**
   * The secret stored under `name`. Honours `signal` (the invocation's remaining budget).
   * Rejects (phase `credentials`) with `CredentialUnavailable` when the store could not answer
   * in time (throttled, unreachable, timed out: retryable), and with `CredentialInvalid` when
   * the credential itself is wrong (not configured, unreadable, bad format: fix, don't retry).
   */
  get(name: string, options: { signal: AbortSignal }): Promise<Secret>;
}

/** Where the known_hosts text comes from (SSM parameter or secret in AWS, a file locally). */
export interface KnownHostsSource {
  /** OpenSSH known_hosts text, or undefined when none is configured. */
  get(options: { signal: AbortSignal }): Promise<string | undefined>;
}

/**
 * Parses the stored JSON `{privateKey, passphrase?}`, `{password}` or
 * `{certificateAuthority: {privateKey, passphrase?, sourceAddress?, expirySkewSeconds?}}`.
 * Error messages name the credential and the problem, never any part of the value.
 */
export function parseSecret(name: string, text: string): Secret {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw invalid(name, `is not JSON; ${SECRET_FORMAT}`);
  }
  if (value === null || typeof value !== "object") {
    throw invalid(name, `is not a JSON object; ${SECRET_FORMAT}`);
  }
  const { privateKey, passphrase, password, certificateAuthority } = value as Record<
    string,
    unknown
  >;
  if (certificateAuthority !== undefined) {
    return { certificateAuthority: parseCertificateAuthority(name, certificateAuthority) };
  }
  if (typeof privateKey === "string" && privateKey !== "") {
    if (passphrase !== undefined && typeof passphrase !== "string") {
      throw invalid(name, `has a non-string passphrase; ${SECRET_FORMAT}`);
    }
    return passphrase === undefined ? { privateKey } : { privateKey, passphrase };
  }
  if (typeof password === "string") return { password };
  throw invalid(name, `holds neither privateKey nor password; ${SECRET_FORMAT}`);
}

/** The fix for a malformed secret, quoted in every such message. */
const SECRET_FORMAT =
  'store {"privateKey": "…", "passphrase": "…"}, {"password": "…"} or {"certificateAuthority": {"privateKey": "…"}}';

const CA_FORMAT =
  'store {"certificateAuthority": {"privateKey": "…", "passphrase"?: "…", "sourceAddress"?: "10.0.0.0/8,…", "expirySkewSeconds"?: 30}}';

/**
 * The `certificateAuthority` of a credential (a stored secret or a local config entry whose
 * key file has been read): checked field by field, so a typo is a `CredentialInvalid` that
 * names the field, not a certificate no host accepts.
 */
export function parseCertificateAuthority(name: string, value: unknown): CertificateAuthority {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw invalid(name, `has a certificateAuthority that is not an object; ${CA_FORMAT}`);
  }
  const { privateKey, passphrase, sourceAddress, expirySkewSeconds, ...rest } = value as Record<
    string,
    unknown
  >;
  const unknown = Object.keys(rest);
  if (unknown.length > 0) {
    throw invalid(
      name,
      `has unknown certificateAuthority field(s) ${unknown.join(", ")}; ${CA_FORMAT}`,
    );
  }
  if (typeof privateKey !== "string" || privateKey === "") {
    throw invalid(name, `has no certificateAuthority.privateKey; ${CA_FORMAT}`);
  }
  if (passphrase !== undefined && typeof passphrase !== "string") {
    throw invalid(name, `has a non-string certificateAuthority.passphrase; ${CA_FORMAT}`);
  }
  if (
    sourceAddress !== undefined &&
    (typeof sourceAddress !== "string" ||
      !/^[0-9A-Fa-f.:/]+(,[0-9A-Fa-f.:/]+)*$/.test(sourceAddress))
  ) {
    throw invalid(
      name,
      'has a certificateAuthority.sourceAddress that is not a comma-separated list of addresses or CIDRs (e.g. "10.0.0.0/8,192.0.2.7")',
    );
  }
  if (
    expirySkewSeconds !== undefined &&
    (!Number.isInteger(expirySkewSeconds) ||
      (expirySkewSeconds as number) < 0 ||
      (expirySkewSeconds as number) > MAX_EXPIRY_SKEW_S)
  ) {
    throw invalid(
      name,
      `has a certificateAuthority.expirySkewSeconds that is not an integer from 0 to ${MAX_EXPIRY_SKEW_S}`,
    );
  }
  return {
    privateKey,
    ...(passphrase !== undefined ? { passphrase } : {}),
    ...(sourceAddress !== undefined ? { sourceAddress: sourceAddress as string } : {}),
    ...(expirySkewSeconds !== undefined ? { expirySkewSeconds: expirySkewSeconds as number } : {}),
  };
}

/** A `CredentialInvalid` (permanent: fix the credential) that names it and the problem. */
export function invalid(name: string, problem: string, cause?: unknown): CredentialInvalid {
  return new CredentialInvalid(`credential ${JSON.stringify(name)} ${problem}`, {
    phase: "credentials",
    cause,
  });
}

/** A `CredentialUnavailable` (transient: the store did not answer) that names the credential. */
export function unavailable(name: string, problem: string, cause?: unknown): CredentialUnavailable {
  return new CredentialUnavailable(`credential ${JSON.stringify(name)} ${problem}`, {
    phase: "credentials",
    cause,
  });
}

/**
 * A per-container cache with a TTL. Concurrent misses share one fetch; failures are not
 * cached, so the next invocation tries again.
 */
export class TtlCache<T> {
  readonly #ttlMs: number;
  readonly #now: () => number;
  readonly #entries = new Map<string, { value: T; expires: number }>();

  constructor(ttlMs: number, now: () => number = Date.now) {
    this.#ttlMs = ttlMs;
    this.#now = now;
  }

  async get(key: string, load: () => Promise<T>): Promise<T> {
    const hit = this.#entries.get(key);
    if (hit && hit.expires > this.#now()) return hit.value;
    const value = await load();
    if (this.#ttlMs > 0) this.#entries.set(key, { value, expires: this.#now() + this.#ttlMs });
    return value;
  }

  clear(): void {
    this.#entries.clear();
  }
}
