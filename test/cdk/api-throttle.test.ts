import { readFileSync } from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { App, Duration, Stack } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import * as lambda from "aws-cdk-lib/aws-lambda";
import { describe, expect, it } from "vitest";
import { BoundedSshStack, deployConfigProps } from "../../cdk/bounded-ssh-stack.ts";
import { DEFAULT_API_THROTTLE, RunApi } from "../../cdk/constructs/run-api.ts";
import { checkDeployConfig, DeployConfigError, loadDeployConfig } from "../../cdk/deploy-config.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const FIXTURE = path.join(ROOT, "test/cdk/fixtures/handler.ts");

/** The stage's MethodSettings throttle of a synthesized stack. */
function stageThrottle(template: Template): { rate: unknown; burst: unknown } {
  const stages = Object.values(template.findResources("AWS::ApiGateway::Stage"));
  expect(stages).toHaveLength(1);
  const settings = (
    stages[0] as {
      Properties: {
        MethodSettings: { ThrottlingRateLimit?: number; ThrottlingBurstLimit?: number }[];
      };
    }
  ).Properties.MethodSettings;
  return {
    rate: settings[0]?.ThrottlingRateLimit,
    burst: settings[0]?.ThrottlingBurstLimit,
  };
}

function synthConfig(config: Record<string, unknown>): Template {
  const app = new App();
  const props = deployConfigProps(loadDeployConfig(checkDeployConfig(config), ROOT));
  const stack = new BoundedSshStack(app, "Throttle", {
    ...props,
    apiEntry: FIXTURE,
    taskEntry: FIXTURE,
  });
  return Template.fromStack(stack);
}

describe("API stage throttle from the deploy config (apiThrottle)", () => {
  it("defaults to 10 per second, burst 20, and takes the configured values", () => {
    expect(stageThrottle(synthConfig({ stage: "dflt" }))).toEqual({
      rate: DEFAULT_API_THROTTLE.rateLimit,
      burst: DEFAULT_API_THROTTLE.burstLimit,
    });
    expect(DEFAULT_API_THROTTLE).toEqual({ rateLimit: 10, burstLimit: 20 });
    expect(
      stageThrottle(
        synthConfig({ stage: "busy", apiThrottle: { rateLimit: 250, burstLimit: 500 } }),
      ),
    ).toEqual({ rate: 250, burst: 500 });
    // One field alone keeps the other's default.
    expect(stageThrottle(synthConfig({ stage: "half", apiThrottle: { burstLimit: 40 } }))).toEqual({
      rate: 10,
      burst: 40,
    });
  });

  it.each([
    [{ rateLimit: 0 }, "/apiThrottle/rateLimit must be > 0"],
    [{ rateLimit: 20_000 }, "/apiThrottle/rateLimit must be <= 10000"],
    [{ burstLimit: 2.5 }, "/apiThrottle/burstLimit must be integer"],
    [{ burstLimit: 0 }, "/apiThrottle/burstLimit must be >= 1"],
    [{ burst: 5 }, "must NOT have additional properties"],
    [{ rateLimit: 100 }, "apiThrottle.burstLimit (20) is below apiThrottle.rateLimit (100)"],
  ])("refuses %j with a message naming the field", (apiThrottle, message) => {
    expect(() => checkDeployConfig({ stage: "x", apiThrottle })).toThrow(DeployConfigError);
    expect(() => checkDeployConfig({ stage: "x", apiThrottle })).toThrow(message);
  });

  it("RunApi refuses a throttle API Gateway would take but that cannot serve its rate", () => {
    const stack = new Stack(new App(), "S");
    const handler = new lambda.Function(stack, "F", {
      runtime: lambda.Runtime.NODEJS_22_X,
      handler: "index.handler",
      code: lambda.Code.fromInline("exports.handler = async () => ({})"),
    });
    expect(
      () =>
        new RunApi(stack, "Api", {
          handler,
          integrationTimeout: Duration.seconds(29),
          throttlingRateLimit: 50,
          throttlingBurstLimit: 10,
        }),
    ).toThrow("the burst an integer at least the rate");
  });

  it("is documented in docs/deploy.md", () => {
    const doc = readFileSync(path.join(ROOT, "docs/deploy.md"), "utf8");
    expect(doc).toMatch(/\| `apiThrottle` +\|.*`rateLimit`.*`burstLimit`/);
  });
});
