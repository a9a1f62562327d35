import { GetSecretValueCommand, type SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import type { Secret } from "../../lib/types.ts";
import { send } from "../runtime/aws-clients.ts";
import {
  type CredentialStore,
  invalid,
  parseSecret,
  TtlCache,
  unavailable,
} from "./credential-store.ts";

/**
 * Secrets Manager errors that retrying cannot fix: the secret is missing, deleted, or this
 * function may not read or decrypt it. Everything else (throttling, 5xx, network, timeouts)
 * may pass and stays `CredentialUnavailable`.
 */
const PERMANENT_ERRORS: Readonly<Record<string, string>> = {
  ResourceNotFoundException: "does not exist in Secrets Manager; create the secret",
  InvalidRequestException:
    "cannot be read (InvalidRequestException: deleted or scheduled for deletion); restore or recreate the secret",
  InvalidParameterException:
    "cannot be read (InvalidParameterException); check the credential name",
  AccessDeniedException:
    "cannot be read (AccessDeniedException); grant the function secretsmanager:GetSecretValue on it",
  DecryptionFailure:
    "cannot be decrypted (DecryptionFailure); grant the function kms:Decrypt on the secret's KMS key",
};

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
 * the deadline. A secret that is missing, unreadable by this function or malformed is
 * `CredentialInvalid`.
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
        const out = await send(
          this.#client,
          new GetSecretValueCommand({ SecretId: `${this.#prefix}${name}` }),
          options.signal,
        );
        text =
          out.SecretString ?? (out.SecretBinary && Buffer.from(out.SecretBinary).toString("utf8"));
      } catch (err) {
        const code = (err as { name?: unknown }).name;
        const permanent = typeof code === "string" ? PERMANENT_ERRORS[code] : undefined;
        if (permanent !== undefined && !options.signal.aborted) throw invalid(name, permanent, err);
        const why = options.signal.aborted
          ? "could not be read before the deadline"
          : `could not be read (${typeof code === "string" ? code : "error"})`;
        throw unavailable(name, why, err);
      }
      if (text === undefined) throw invalid(name, "is empty; store the credential's JSON in it");
      return parseSecret(name, text);
    });
  }
}
