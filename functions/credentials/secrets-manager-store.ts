import { GetSecretValueCommand, type SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import type { Secret } from "../../lib/types.ts";
import { type CredentialStore, parseSecret, TtlCache, unavailable } from "./credential-store.ts";

/** Options of {@link SecretsManagerStore}. */
export interface SecretsManagerStoreOptions {
  client: SecretsManagerClient;
  /** Secret id = prefix + credential name. @default "bounded-ssh/" */
  prefix?: string;
  /** How long a warm container reuses a secret. @default 300000 */
  ttlMs?: number;
}

/**
 * Credentials from AWS Secrets Manager: secret `prefix + name`, a JSON string
 * `{privateKey, passphrase?}` or `{password}`. The call is bounded by the caller's signal (the
 * invocation's remaining budget), so a slow endpoint costs a `CredentialUnavailable`, never
 * the deadline.
 */
export class SecretsManagerStore implements CredentialStore {
  readonly #client: SecretsManagerClient;
  readonly #prefix: string;
  readonly #cache: TtlCache<Secret>;

  constructor(options: SecretsManagerStoreOptions) {
    this.#client = options.client;
    this.#prefix = options.prefix ?? "bounded-ssh/";
    this.#cache = new TtlCache(options.ttlMs ?? 300_000);
  }

  get(name: string, options: { signal: AbortSignal }): Promise<Secret> {
    return this.#cache.get(name, async () => {
      let text: string | undefined;
      try {
        const out = await this.#client.send(
          new GetSecretValueCommand({ SecretId: `${this.#prefix}${name}` }),
          { abortSignal: options.signal },
        );
        text =
          out.SecretString ?? (out.SecretBinary && Buffer.from(out.SecretBinary).toString("utf8"));
      } catch (err) {
        const code = (err as { name?: unknown }).name;
        const why = options.signal.aborted
          ? "could not be read before the deadline"
          : `could not be read (${typeof code === "string" ? code : "error"})`;
        throw unavailable(name, why, err);
      }
      if (text === undefined) throw unavailable(name, "is empty");
      return parseSecret(name, text);
    });
  }
}
