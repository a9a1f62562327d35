import { readFile } from "node:fs/promises";
import { isAbsolute, resolve } from "node:path";
import type { Secret } from "../../lib/types.ts";
import {
  type CredentialStore,
  invalid,
  type KnownHostsSource,
  parseCertificateAuthority,
  unavailable,
} from "./credential-store.ts";

const PERMANENT_FILE_ERRORS: ReadonlySet<string> = new Set([
  "ENOENT",
  "EACCES",
  "EPERM",
  "EISDIR",
  "ENOTDIR",
  "ELOOP",
  "ENAMETOOLONG",
]);

/**
 * One local credential: a key file (with optional passphrase), a password, or a certificate
 * authority whose key file signs a certificate per session.
 */
export type LocalCredential =
  | { privateKeyFile: string; passphrase?: string }
  | { password: string }
  | {
      certificateAuthority: {
        privateKeyFile: string;
        passphrase?: string;
        sourceAddress?: string;
        expirySkewSeconds?: number;
      };
    };

/**
 * Local mode's credential store: names map to key files (read on each use, so a rotated file
 * is picked up) or passwords, from the config file. Relative paths are relative to `baseDir`.
 */
export class LocalCredentialStore implements CredentialStore {
  readonly #entries: Record<string, LocalCredential>;
  readonly #baseDir: string;

  constructor(entries: Record<string, LocalCredential>, baseDir: string) {
    this.#entries = entries;
    this.#baseDir = baseDir;
  }

  async get(name: string, options: { signal: AbortSignal }): Promise<Secret> {
    if (!Object.hasOwn(this.#entries, name)) {
      throw invalid(name, "is not configured; add it under credentials in the local config file");
    }
    const entry = this.#entries[name]!;
    if ("password" in entry && typeof entry.password === "string") {
      return { password: entry.password };
    }
    if ("certificateAuthority" in entry) {
      const ca = entry.certificateAuthority as Record<string, unknown> | null;
      if (ca === null || typeof ca !== "object" || typeof ca.privateKeyFile !== "string") {
        throw invalid(
          name,
          'has a certificateAuthority without privateKeyFile; set {"certificateAuthority": {"privateKeyFile": "user_ca"}} in the local config file',
        );
      }
      const { privateKeyFile, ...rest } = ca;
      const privateKey = await this.#readKey(name, privateKeyFile, options.signal);
      return { certificateAuthority: parseCertificateAuthority(name, { ...rest, privateKey }) };
    }
    if (!("privateKeyFile" in entry) || typeof entry.privateKeyFile !== "string") {
      throw invalid(
        name,
        "has neither privateKeyFile nor password; set one of them in the local config file",
      );
    }
    const privateKey = await this.#readKey(name, entry.privateKeyFile, options.signal);
    return entry.passphrase === undefined
      ? { privateKey }
      : { privateKey, passphrase: entry.passphrase };
  }

  async #readKey(name: string, file: string, signal: AbortSignal): Promise<string> {
    const path = isAbsolute(file) ? file : resolve(this.#baseDir, file);
    try {
      return await readFile(path, { encoding: "utf8", signal });
    } catch (err) {
      const options = { signal };
      if (options.signal.aborted) {
        throw unavailable(name, "key file could not be read before the deadline", err);
      }
      const code = (err as NodeJS.ErrnoException).code ?? "error";
      // Missing, forbidden or not a file: stays so until someone fixes the path or the mode.
      if (PERMANENT_FILE_ERRORS.has(code)) {
        throw invalid(
          name,
          `key file ${JSON.stringify(path)} cannot be read (${code}); fix privateKeyFile or the file's permissions`,
          err,
        );
      }
      throw unavailable(name, `key file cannot be read (${code})`, err);
    }
  }
}

/** known_hosts from a local file; re-read on each use. */
export class FileKnownHosts implements KnownHostsSource {
  readonly #path: string | undefined;

  constructor(path: string | undefined) {
    this.#path = path;
  }

  async get(options: { signal: AbortSignal }): Promise<string | undefined> {
    if (this.#path === undefined) return undefined;
    return readFile(this.#path, { encoding: "utf8", signal: options.signal });
  }
}
