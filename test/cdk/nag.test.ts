import { App, Stack, Validations } from "aws-cdk-lib";
import { Bucket } from "aws-cdk-lib/aws-s3";
import { AwsSolutionsChecks } from "cdk-nag";
import { describe, expect, it } from "vitest";

// The stack's synth passes cdk-nag (synth.ts attaches it); this proves the plugin is really
// wired the way the app wires it, so "passes" cannot mean "never ran".
describe("cdk-nag wiring", () => {
  it("fails synth for a resource that breaks an AwsSolutions rule", () => {
    const app = new App();
    const stack = new Stack(app, "NagProbe");
    new Bucket(stack, "Unencrypted"); // no SSL enforcement, no access logs: AwsSolutions-S1/S10
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    expect(() => app.synth()).toThrow(/AwsSolutions-S/);
  });
});
