import { GetSecretValueCommand, type SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { GetParameterCommand, type SSMClient } from "@aws-sdk/client-ssm";
import { send } from "../runtime/aws-clients.ts";
import { type KnownHostsSource, TtlCache } from "./credential-store.ts";

/** known_hosts text stored in an SSM parameter (String/SecureString), cached with a TTL. */
export class SsmKnownHosts implements KnownHostsSource {
  readonly #client: SSMClient;
  readonly #name: string;
  readonly #cache: TtlCache<string | undefined>;

  constructor(options: { client: SSMClient; parameterName: string; ttlMs?: number }) {
    this.#client = options.client;
    this.#name = options.parameterName;
    this.#cache = new TtlCache(options.ttlMs ?? 300_000);
  }

  get(options: { signal: AbortSignal }): Promise<string | undefined> {
    return this.#cache.get("", async () => {
      const out = await send(
        this.#client,
        new GetParameterCommand({ Name: this.#name, WithDecryption: true }),
        options.signal,
      );
      return out.Parameter?.Value;
    });
  }
}

/** known_hosts text stored as a Secrets Manager secret string, cached with a TTL. */
export class SecretKnownHosts implements KnownHostsSource {
  readonly #client: SecretsManagerClient;
  readonly #id: string;
  readonly #cache: TtlCache<string | undefined>;

  constructor(options: { client: SecretsManagerClient; secretId: string; ttlMs?: number }) {
    this.#client = options.client;
    this.#id = options.secretId;
    this.#cache = new TtlCache(options.ttlMs ?? 300_000);
  }

  get(options: { signal: AbortSignal }): Promise<string | undefined> {
    return this.#cache.get("", async () => {
      const out = await send(
        this.#client,
        new GetSecretValueCommand({ SecretId: this.#id }),
        options.signal,
      );
      return out.SecretString;
    });
  }
}
