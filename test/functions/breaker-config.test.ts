/** The breaker's settings from the environment (deploy config → env → handler settings). */
import { describe, expect, it } from "vitest";
import { ConfigError, configFromEnv } from "../../functions/config/config.ts";
import { BREAKER_ERRORS } from "../../lib/names.ts";

const BASE = { BSSH_POLICY: '{"rules":[]}', BSSH_BREAKER_TABLE: "breaker" };

describe("breaker settings", () => {
  it("defaults: the documented names, threshold, window, quarantine and probe lease", () => {
    expect(configFromEnv(BASE).breaker).toEqual({
      table: "breaker",
      threshold: 3,
      windowSeconds: 600,
      quarantineSeconds: 900,
      probeSeconds: 120,
      errors: BREAKER_ERRORS,
    });
    expect(BREAKER_ERRORS).toEqual(
      expect.arrayContaining(["ConnectRefused", "DnsLookupFailed", "BannerTimeout"]),
    );
  });

  it("reads the counted names and the probe lease, and refuses an unknown name naming it", () => {
    const env = {
      ...BASE,
      BSSH_BREAKER_ERRORS: "BannerTimeout, ConnectTimeout",
      BSSH_BREAKER_PROBE_S: "30",
    };
    expect(configFromEnv(env).breaker).toMatchObject({
      errors: ["BannerTimeout", "ConnectTimeout"],
      probeSeconds: 30,
    });
    expect(() => configFromEnv({ ...BASE, BSSH_BREAKER_ERRORS: "BannerTimeout,Bogus" })).toThrow(
      ConfigError,
    );
    expect(() => configFromEnv({ ...BASE, BSSH_BREAKER_ERRORS: "BannerTimeout,Bogus" })).toThrow(
      /BSSH_BREAKER_ERRORS names "Bogus"/,
    );
  });
});
