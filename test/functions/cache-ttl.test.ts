/**
 * Cache lifetimes of policy, known_hosts and credentials are configurable per store (issue 23):
 * each is how long a revocation can take to reach a warm container.
 */
import { describe, expect, it } from "vitest";
import {
  ConfigError,
  cacheTtlsFromEnv,
  configFromEnv,
  MAX_CACHE_TTL_MS,
} from "../../functions/config/config.ts";
import { ENV } from "../../operations/environment.ts";

const BASE = { [ENV.policy]: JSON.stringify({ rules: [] }) };

describe("cache lifetimes", () => {
  it("default to 5 minutes each", () => {
    expect(configFromEnv(BASE).cacheTtl).toEqual({
      policyMs: 300_000,
      knownHostsMs: 300_000,
      credentialsMs: 300_000,
    });
  });

  it("take BSSH_CACHE_TTL_MS for all, and each store's own variable over it", () => {
    expect(
      cacheTtlsFromEnv({
        [ENV.cacheTtlMs]: "60000",
        [ENV.knownHostsCacheTtlMs]: "0",
        [ENV.credentialsCacheTtlMs]: "900000",
      }),
    ).toEqual({ policyMs: 60_000, knownHostsMs: 0, credentialsMs: 900_000 });
    expect(cacheTtlsFromEnv({ [ENV.policyCacheTtlMs]: "1000" })).toEqual({
      policyMs: 1_000,
      knownHostsMs: 300_000,
      credentialsMs: 300_000,
    });
  });

  it("refuse more than one hour and non-numbers, naming the variable and the revocation", () => {
    for (const key of [
      ENV.cacheTtlMs,
      ENV.policyCacheTtlMs,
      ENV.knownHostsCacheTtlMs,
      ENV.credentialsCacheTtlMs,
    ]) {
      expect(() => cacheTtlsFromEnv({ [key]: String(MAX_CACHE_TTL_MS + 1) })).toThrow(ConfigError);
      expect(() => cacheTtlsFromEnv({ [key]: String(MAX_CACHE_TTL_MS + 1) })).toThrow(
        new RegExp(`${key}.*one hour.*@revoked`),
      );
      expect(() => cacheTtlsFromEnv({ [key]: "-1" })).toThrow(key);
      expect(() => cacheTtlsFromEnv({ [key]: "5m" })).toThrow(key);
    }
    expect(cacheTtlsFromEnv({ [ENV.cacheTtlMs]: String(MAX_CACHE_TTL_MS) }).policyMs).toBe(
      MAX_CACHE_TTL_MS,
    );
  });
});
