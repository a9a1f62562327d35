/**
 * docs/api.md's Step Functions ASL is generated from the builder (scripts/generate-task-asl.ts)
 * and is the project's own single-host definition: the block is current, and the builder's
 * definition equals the deployed workflow's state for state (the function reference aside).
 */
import { readFileSync } from "node:fs";
import { App, Stack } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import * as lambda from "aws-cdk-lib/aws-lambda";
import { describe, expect, it } from "vitest";
import { DEFAULT_TASK_TIMEOUTS } from "../../cdk/config.ts";
import { Workflows } from "../../cdk/constructs/workflows.ts";
import { API_DOC, documentedAsl, taskAsl } from "../../scripts/generate-task-asl.ts";
import { definitionOf } from "./synth.ts";

type Asl = { StartAt: string; States: Record<string, Record<string, unknown>> };

/** The states with the task's function blanked (the doc names an example ARN). */
function states(asl: Asl): Asl["States"] {
  const copy = structuredClone(asl.States);
  for (const state of Object.values(copy)) {
    // payloadResponseOnly: the task's Resource is the function itself.
    if (state.Type === "Task") state.Resource = "<task function>";
  }
  return copy;
}

describe("docs/api.md Step Functions ASL", () => {
  it("is the builder's current output (run npm run generate)", async () => {
    // Values, not text: Biome lays out the JSON inside the markdown.
    expect(documentedAsl(readFileSync(API_DOC, "utf8"))).toEqual(await taskAsl());
  });

  it("is the deployed single-host workflow's definition", async () => {
    const stack = new Stack(new App(), "Test", {
      env: { account: "123456789012", region: "eu-west-1" },
    });
    const handler = new lambda.Function(stack, "TaskHandler", {
      runtime: lambda.Runtime.NODEJS_22_X,
      handler: "index.handler",
      code: lambda.Code.fromInline("exports.handler = async () => ({})"),
    });
    new Workflows(stack, "Workflows", {
      handler,
      taskTimeout: DEFAULT_TASK_TIMEOUTS.taskTimeout,
    });
    const deployed = definitionOf(Template.fromStack(stack), "WorkflowsSingleHost") as Asl;
    const generated = (await taskAsl()) as Asl;
    expect(generated.StartAt).toBe(deployed.StartAt);
    expect(states(generated)).toEqual(states(deployed));
  });
});
