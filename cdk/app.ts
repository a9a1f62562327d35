/**
 * CDK app entry (`cdk.json`: `npx tsx cdk/app.ts`). Synth is offline: no context lookups (a
 * VPC is imported by the ids in the deploy config), local esbuild bundling.
 *
 * The deploy config is a JSON file named by the context `config`
 * (`npx cdk deploy -c config=deploy/prod.json`; see docs/deploy.md). Without one the app
 * synthesizes stage `dev`: not in a VPC, deny-all policy, no credentials.
 */
import * as path from "node:path";
import { App, Validations } from "aws-cdk-lib";
import { AwsSolutionsChecks } from "cdk-nag";
import { BoundedSshStack, deployConfigProps } from "./bounded-ssh-stack.ts";
import { loadDeployConfig, loadDeployConfigFile } from "./deploy-config.ts";

const app = new App();
const configFile = app.node.tryGetContext("config") as string | undefined;
const loaded = configFile
  ? loadDeployConfigFile(path.resolve(configFile))
  : loadDeployConfig({ stage: "dev" }, process.cwd());
const props = deployConfigProps(loaded);
new BoundedSshStack(app, props.stackName!, props);
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
app.synth();
