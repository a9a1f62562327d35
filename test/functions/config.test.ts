/**
 * The one configuration module: every BSSH_* variable of the deployed handlers parsed in one
 * place, once per container, with errors that name the variable, its value and the fix.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  ConfigError,
  configFromEnv,
  ENV,
  enrichmentConfigFromEnv,
} from "../../functions/config/config.ts";
import { BREAKER_ERRORS } from "../../lib/names.ts";

const POLICY = { [ENV.policy]: '{"rules":[]}' };

describe("configFromEnv", () => {
  it("parses the whole configuration, with the documented defaults", () => {
    // Act
    const config = configFromEnv({
      ...POLICY,
      BSSH_KNOWN_HOSTS_PARAMETER: "/bssh/known-hosts",
      BSSH_BREAKER_TABLE: "breaker",
      BSSH_BREAKER_THRESHOLD: "5",
      BSSH_METRICS_MODE: "emf",
    });
    // Assess
    expect(config.policy).toEqual({ document: { rules: [] } });
    expect(config.knownHosts).toEqual({ parameter: "/bssh/known-hosts" });
    expect(config.cacheTtl).toEqual({
      policyMs: 300_000,
      knownHostsMs: 300_000,
      credentialsMs: 300_000,
    });
    expect(config.secretPrefix).toBe("bounded-ssh/");
    expect(config.idempotency).toBeUndefined();
    expect(config.breaker).toEqual({
      table: "breaker",
      threshold: 5,
      windowSeconds: 600,
      quarantineSeconds: 900,
      probeSeconds: 120,
      errors: BREAKER_ERRORS,
    });
    expect(config.metrics).toEqual({ mode: "emf" });
    expect(config.settings.reserveMs).toBe(1_500);
  });

  it.each([
    [{ BSSH_CACHE_TTL_MS: "soon" }, "BSSH_CACHE_TTL_MS", '"soon"', "a number >= 0"],
    [{ BSSH_POLICY: "{rules" }, "BSSH_POLICY", '"{rules"', "the policy document as JSON"],
    [
      { BSSH_BREAKER_TABLE: "t", BSSH_BREAKER_TTL_S: "0" },
      "BSSH_BREAKER_TTL_S",
      '"0"',
      "an integer >= 1",
    ],
    [
      { BSSH_METRICS_MODE: "cloudwatch" },
      "BSSH_METRICS_MODE",
      '"cloudwatch"',
      '"api" or "emf" or "both"',
    ],
    [{ BSSH_REMOTE_BOUND: "no" }, "BSSH_REMOTE_BOUND", '"no"', '"true" or "false"'],
    [{ BSSH_PHASE_CAPS: '{"bannr":1}' }, "BSSH_PHASE_CAPS", "bannr", "per-phase caps"],
    [{ BSSH_AUDIT_COMMAND: "sha" }, "BSSH_AUDIT_COMMAND", '"sha"', '"plain" or "hash"'],
  ])("names the variable, its value and the fix: %j", (env, name, value, expected) => {
    // Act
    const error = (() => {
      try {
        configFromEnv({ ...POLICY, ...env });
      } catch (err) {
        return err as Error;
      }
      return undefined;
    })();
    // Assess
    expect(error).toBeInstanceOf(ConfigError);
    expect(error?.message).toContain(name);
    expect(error?.message).toContain(value);
    expect(error?.message).toContain(expected);
    expect(error?.message).toMatch(/fix the function's environment|unset it/);
  });

  it("refuses a deployment without a policy, and local mode's config file", () => {
    expect(() => configFromEnv({})).toThrow(/set BSSH_POLICY .* or BSSH_POLICY_PARAMETER/);
    expect(() => configFromEnv({ ...POLICY, BSSH_CONFIG: "/tmp/c.json" })).toThrow(
      /BSSH_CONFIG is set: .*local-mode config file.*never read/,
    );
  });
});

describe("enrichmentConfigFromEnv", () => {
  const ENRICHMENT = {
    BSSH_STAGE: "prod",
    BSSH_ENRICHED_TOPIC_ARN: "arn:aws:sns:eu-west-1:123456789012:enriched",
    BSSH_FUNCTION_LOG_GROUPS: '["/aws/lambda/api"]',
    BSSH_WORKFLOW_LOG_GROUPS: "[]",
    BSSH_RUNBOOK_BASE_URL: "https://runbooks",
    BSSH_DASHBOARD_URL: "https://dashboard",
  };

  it("parses the alarm-enrichment function's variables", () => {
    expect(enrichmentConfigFromEnv(ENRICHMENT)).toMatchObject({
      stage: "prod",
      functionLogGroups: ["/aws/lambda/api"],
      workflowLogGroups: [],
    });
  });

  it("names a missing or malformed variable and the fix", () => {
    const { BSSH_STAGE: _, ...noStage } = ENRICHMENT;
    expect(() => enrichmentConfigFromEnv(noStage)).toThrow(
      /BSSH_STAGE is unset: it must be set; the CDK app sets it/,
    );
    expect(() =>
      enrichmentConfigFromEnv({ ...ENRICHMENT, BSSH_FUNCTION_LOG_GROUPS: "/aws/lambda/api" }),
    ).toThrow(/BSSH_FUNCTION_LOG_GROUPS is "\/aws\/lambda\/api": it must be a JSON array/);
  });
});

describe("containerConfig", () => {
  afterEach(() => {
    vi.unstubAllEnvs();
    vi.resetModules();
  });

  it("reads the environment once per container", async () => {
    // Prepare
    vi.stubEnv("BSSH_POLICY", '{"rules":[]}');
    vi.stubEnv("BSSH_RESERVE_MS", "900");
    const { containerConfig } = await import("../../functions/config/config.ts");
    // Act
    const first = containerConfig();
    vi.stubEnv("BSSH_RESERVE_MS", "100");
    const second = containerConfig();
    // Assess
    expect(second).toBe(first);
    expect(second.settings.reserveMs).toBe(900);
  });
});
