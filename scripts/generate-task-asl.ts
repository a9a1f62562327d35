/**
 * Generates docs/api.md's Step Functions ASL from the builder (`boundedSshTask` +
 * `catchBoundedSshErrors`, cdk/constructs/bounded-ssh-task.ts): the single-host workflow's
 * definition, with the default task timeout and retry, exactly as CDK renders it. Never edit the
 * block by hand; test/cdk/task-asl-doc.test.ts fails while it is stale.
 */
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { runCli } from "../local/cli.ts";

/** The document holding the block. */
export const API_DOC = fileURLToPath(new URL("../docs/api.md", import.meta.url));
/** The example task function ARN in the block (your stack's output `TaskFunctionArn`). */
export const EXAMPLE_TASK_FUNCTION_ARN =
  "arn:aws:lambda:eu-west-1:123456789012:function:prod-bounded-ssh-task";
const START = "<!-- task-asl:start (scripts/generate-task-asl.ts; do not edit) -->";
const END = "<!-- task-asl:end -->";

/** `Fn::Join` and the partition, the only intrinsics the definition carries. */
function resolve(value: unknown): string {
  if (typeof value === "string") return value;
  const v = value as Record<string, unknown>;
  if ("Fn::Join" in v) {
    const [sep, parts] = v["Fn::Join"] as [string, unknown[]];
    return parts.map(resolve).join(sep);
  }
  if ((v as { Ref?: string }).Ref === "AWS::Partition") return "aws";
  throw new Error(`unexpected intrinsic in the definition: ${JSON.stringify(value)}`);
}

/** The ASL of a state machine built with the builder's defaults. */
export async function taskAsl(): Promise<Record<string, unknown>> {
  // Loaded here, not at the top: --help must not load aws-cdk-lib.
  const { App, Stack } = await import("aws-cdk-lib");
  const lambda = await import("aws-cdk-lib/aws-lambda");
  const sfn = await import("aws-cdk-lib/aws-stepfunctions");
  const { Template } = await import("aws-cdk-lib/assertions");
  const { DEFAULT_TASK_TIMEOUTS } = await import("../cdk/config.ts");
  const { boundedSshTask, catchBoundedSshErrors } = await import(
    "../cdk/constructs/bounded-ssh-task.ts"
  );
  const stack = new Stack(new App(), "Asl");
  const run = boundedSshTask(stack, "RunCommand", {
    taskFunction: lambda.Function.fromFunctionArn(stack, "Task", EXAMPLE_TASK_FUNCTION_ARN),
    taskTimeout: DEFAULT_TASK_TIMEOUTS.taskTimeout,
  });
  catchBoundedSshErrors(stack, run);
  new sfn.StateMachine(stack, "Machine", {
    definitionBody: sfn.DefinitionBody.fromChainable(run.next(new sfn.Succeed(stack, "Done"))),
  });
  const machines = Template.fromStack(stack).findResources("AWS::StepFunctions::StateMachine");
  const [machine] = Object.values(machines) as { Properties: { DefinitionString: unknown } }[];
  return JSON.parse(resolve(machine!.Properties.DefinitionString)) as Record<string, unknown>;
}

/** The ASL in docs/api.md's block (as written; Biome formats the JSON inside). */
export function documentedAsl(doc: string): unknown {
  const start = doc.indexOf(START);
  const end = doc.indexOf(END);
  const block = /```json\n([\s\S]*?)\n```/.exec(doc.slice(start, end));
  if (start === -1 || !block) throw new Error(`docs/api.md has no JSON block after "${START}"`);
  return JSON.parse(block[1]!);
}

/** docs/api.md with the block replaced by `asl`. */
export function withAsl(doc: string, asl: Record<string, unknown>): string {
  const start = doc.indexOf(START);
  const end = doc.indexOf(END);
  if (start === -1 || end < start) {
    throw new Error(`docs/api.md has no block between "${START}" and "${END}"`);
  }
  const block = `${START}\n\n\`\`\`json\n${JSON.stringify(asl, null, 2)}\n\`\`\`\n\n`;
  return doc.slice(0, start) + block + doc.slice(end);
}

const HELP = `
usage: npx tsx scripts/generate-task-asl.ts   (npm run generate runs it too)

Rewrites the Step Functions ASL block of docs/api.md (between its task-asl markers) from the
task-state builder (boundedSshTask + catchBoundedSshErrors, cdk/constructs/bounded-ssh-task.ts)
with the default task timeout and retry, then formats docs/api.md with Biome. test/cdk/task-asl-doc.test.ts fails while it is stale.

cost: a few seconds (loads aws-cdk-lib); rewrites docs/api.md in the checkout (review with git diff).
`;

/** Rewrites docs/api.md's ASL block (also run by `npm run generate`). */
export async function writeTaskAslDoc(): Promise<void> {
  writeFileSync(API_DOC, withAsl(readFileSync(API_DOC, "utf8"), await taskAsl()));
  // The house formatter (npm run lint) lays out the JSON block; the drift test compares values.
  execFileSync("npx", ["biome", "format", "--write", API_DOC], { stdio: "inherit" });
  console.log(`wrote ${API_DOC}`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await runCli("generate-task-asl", HELP, writeTaskAslDoc);
}
