/**
 * CDK app entry (`cdk.json`: `npx tsx cdk/app.ts`). Synth is offline: no context lookups, an
 * environment-agnostic stack (account/region resolve at deploy time), local esbuild bundling.
 */
import { App, Validations } from "aws-cdk-lib";
import { AwsSolutionsChecks } from "cdk-nag";
import { BoundedSshStack } from "./bounded-ssh-stack.ts";

const app = new App();
new BoundedSshStack(app, "BoundedSsh", {
  description: "bounded-ssh: bounded remote command execution over SSH",
});
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
app.synth();
