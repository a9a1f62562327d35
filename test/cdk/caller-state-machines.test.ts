/** The deploy config's `callerStateMachines`: checked ARNs, passed to the stack's props. */
import { describe, expect, it } from "vitest";
import { deployConfigProps } from "../../cdk/bounded-ssh-stack.ts";
import { checkDeployConfig, DeployConfigError, loadDeployConfig } from "../../cdk/deploy-config.ts";

const ARN = "arn:aws:states:eu-west-1:123456789012:stateMachine:uptime-check";

describe("deploy config callerStateMachines", () => {
  it("accepts state machine ARNs and hands them to the stack", () => {
    const loaded = loadDeployConfig({ stage: "dev", callerStateMachines: [ARN] }, process.cwd());
    expect(deployConfigProps(loaded).callerStateMachines).toEqual([ARN]);
  });

  it.each([
    ["an execution ARN", "arn:aws:states:eu-west-1:123456789012:execution:uptime-check:run-1"],
    ["a version ARN", `${ARN}:1`],
    ["a function ARN", "arn:aws:lambda:eu-west-1:123456789012:function:uptime-check"],
    ["a name", "uptime-check"],
  ])("refuses %s, naming the entry and the expected shape", (_what, arn) => {
    expect(() => checkDeployConfig({ stage: "dev", callerStateMachines: [ARN, arn] })).toThrow(
      DeployConfigError,
    );
    expect(() => checkDeployConfig({ stage: "dev", callerStateMachines: [ARN, arn] })).toThrow(
      /callerStateMachines\[1\] .* is not a state machine ARN \(arn:aws:states:<region>:<account>:stateMachine:<name>/,
    );
  });

  it("refuses a state machine of another account or region than the deployment's", () => {
    const config = { stage: "dev", account: "123456789012", region: "eu-west-1" };
    expect(() => checkDeployConfig({ ...config, callerStateMachines: [ARN] })).not.toThrow();
    expect(() =>
      checkDeployConfig({
        ...config,
        callerStateMachines: [ARN.replace("123456789012", "210987654321")],
      }),
    ).toThrow(
      /callerStateMachines\[0\] .* is in account 210987654321, the deployment in 123456789012/,
    );
    expect(() =>
      checkDeployConfig({
        ...config,
        callerStateMachines: [ARN.replace("eu-west-1", "us-east-1")],
      }),
    ).toThrow(/is in region us-east-1, the deployment in eu-west-1/);
  });

  it("refuses a repeated ARN", () => {
    expect(() => checkDeployConfig({ stage: "dev", callerStateMachines: [ARN, ARN] })).toThrow(
      /callerStateMachines/,
    );
  });
});
