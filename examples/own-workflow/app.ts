/**
 * `npx cdk synth --app "npx tsx examples/own-workflow/app.ts" -c taskFunctionArn=<TaskFunctionArn>`
 * (from a checkout of bounded-ssh: the builder is not in the npm package).
 */
import { App } from "aws-cdk-lib";
import { UptimeCheckStack } from "./own-workflow.ts";

const app = new App();
const taskFunctionArn = app.node.tryGetContext("taskFunctionArn") as string | undefined;
if (!taskFunctionArn) {
  throw new Error(
    "give the bounded-ssh task function's ARN: -c taskFunctionArn=<the stack output TaskFunctionArn>",
  );
}
new UptimeCheckStack(app, "UptimeCheck", {
  taskFunctionArn,
  stateMachineName: (app.node.tryGetContext("name") as string | undefined) ?? "uptime-check",
});
app.synth();
