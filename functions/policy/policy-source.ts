import type { SSMClient } from "@aws-sdk/client-ssm";
import { TtlCache } from "../credentials/credential-store.ts";
import { raceSignal, send } from "../runtime/aws-clients.ts";
import { once } from "../runtime/lazy.ts";
import { Policy, type PolicyDocument } from "./policy.ts";

/** Where the policy comes from; loaded within the invocation's deadline. */
export interface PolicySource {
  get(options: { signal: AbortSignal }): Promise<Policy>;
}

/** A policy that never changes (inline JSON, local config). */
export function staticPolicy(document: PolicyDocument): PolicySource {
  const policy = new Policy(document);
  return { get: async () => policy };
}

/** The policy document in an SSM parameter, re-read after the cache TTL. */
export function ssmPolicy(
  loadClient: () => Promise<SSMClient>,
  name: string,
  ttlMs: number,
): PolicySource {
  const cache = new TtlCache<Policy>(ttlMs);
  return {
    get: ({ signal }) =>
      cache.get("", async () => {
        // Loading the SDK (cold start) counts against the same signal.
        const [client, { GetParameterCommand }] = await raceSignal(
          Promise.all([loadClient(), ssmSdk()]),
          signal,
        );
        const out = await send(
          client,
          new GetParameterCommand({ Name: name, WithDecryption: true }),
          signal,
        );
        return new Policy(JSON.parse(out.Parameter?.Value ?? "null") as PolicyDocument);
      }),
  };
}

const ssmSdk = once(() => import("@aws-sdk/client-ssm"));
