/**
 * The deploy config's cache lifetimes reach both functions in the names the handlers read, and
 * a lifetime longer than a revocation may take is refused at synth (issue 23).
 */
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { App, Duration } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { describe, expect, it } from "vitest";
import { BoundedSshStack, deployConfigProps } from "../../cdk/bounded-ssh-stack.ts";
import { HANDLER_ENV } from "../../cdk/config.ts";
import { checkDeployConfig, loadDeployConfig } from "../../cdk/deploy-config.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const FIXTURE = path.join(ROOT, "test/cdk/fixtures/handler.ts");

describe("cache lifetimes", () => {
  it("go from the deploy config to both functions, only those set", () => {
    const config = checkDeployConfig({
      stage: "ttl",
      cache: { knownHostsSeconds: 60, credentialsSeconds: 0 },
    });
    const props = deployConfigProps(loadDeployConfig(config, ROOT));
    const stack = new BoundedSshStack(new App(), "ttl-bounded-ssh", {
      ...props,
      apiEntry: FIXTURE,
      taskEntry: FIXTURE,
    });
    const functions = Object.values(
      Template.fromStack(stack).findResources("AWS::Lambda::Function"),
    )
      .map((f) => f.Properties.Environment?.Variables as Record<string, unknown> | undefined)
      .filter((vars) => vars?.[HANDLER_ENV.policyParameter] !== undefined);
    expect(functions).toHaveLength(2);
    for (const vars of functions) {
      expect(vars![HANDLER_ENV.knownHostsCacheTtlMs]).toBe("60000");
      expect(vars![HANDLER_ENV.credentialsCacheTtlMs]).toBe("0");
      expect(vars![HANDLER_ENV.policyCacheTtlMs]).toBeUndefined();
      // The engine's young-GC hint needs V8's gc (lib/session/young-gc.ts).
      expect(vars!.NODE_OPTIONS).toBe("--expose-gc");
    }
  });

  it("refuse more than an hour in the deploy config and at synth", () => {
    expect(() => checkDeployConfig({ stage: "ttl", cache: { policySeconds: 3601 } })).toThrow(
      /cache\/policySeconds/,
    );
    expect(() => checkDeployConfig({ stage: "ttl", cache: { revokedSeconds: 1 } })).toThrow(
      /additional/,
    );
    expect(
      () =>
        new BoundedSshStack(new App(), "long", {
          apiEntry: FIXTURE,
          taskEntry: FIXTURE,
          cacheTtl: { knownHosts: Duration.hours(2) },
        }),
    ).toThrow(/BSSH_KNOWN_HOSTS_CACHE_TTL_MS.*at most one hour.*@revoked/);
  });
});
