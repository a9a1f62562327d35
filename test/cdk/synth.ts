/**
 * Synthesizes the stack once per test file (bundling is the slow part) with cdk-nag attached,
 * and renders state-machine definitions to plain ASL for asl-validator and the local runner.
 */
import { existsSync } from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { App, Validations } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { AwsSolutionsChecks } from "cdk-nag";
import { BoundedSshStack, type BoundedSshStackProps } from "../../cdk/bounded-ssh-stack.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const FIXTURE = path.join(ROOT, "test/cdk/fixtures/handler.ts");

/** The real entry when it exists, else the fixture (so the suite runs before handlers land). */
export function entry(name: "api" | "task"): string {
  const real = path.join(ROOT, `functions/${name}.ts`);
  return existsSync(real) ? real : FIXTURE;
}

export interface Synthesized {
  stack: BoundedSshStack;
  template: Template;
}

let cached: Synthesized | undefined;

/** The default stack, synthesized once (cdk-nag errors make `synth` throw). */
export function synthOnce(): Synthesized {
  cached ??= synth();
  return cached;
}

/** A fresh app + stack; throws when cdk-nag or the timeout order refuses it. */
export function synth(props: Partial<BoundedSshStackProps> = {}): Synthesized {
  const app = new App();
  const stack = new BoundedSshStack(app, "Test", {
    apiEntry: entry("api"),
    taskEntry: entry("task"),
    ...props,
  });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  app.synth();
  return { stack, template: Template.fromStack(stack) };
}

/** Placeholder values for CloudFormation references inside a definition string. */
export function resolveIntrinsic(value: unknown): string {
  if (typeof value === "string") return value;
  const v = value as Record<string, unknown>;
  if ("Fn::Join" in v) {
    const [sep, parts] = v["Fn::Join"] as [string, unknown[]];
    return parts.map(resolveIntrinsic).join(sep);
  }
  if ("Fn::GetAtt" in v) {
    const [id] = v["Fn::GetAtt"] as [string, string];
    return `arn:aws:lambda:eu-west-1:123456789012:function:${id}`;
  }
  if ("Ref" in v) {
    const ref = v.Ref as string;
    if (ref === "AWS::Partition") return "aws";
    if (ref === "AWS::Region") return "eu-west-1";
    if (ref === "AWS::AccountId") return "123456789012";
    return ref.toLowerCase();
  }
  throw new Error(`unsupported intrinsic ${JSON.stringify(value)}`);
}

/** The ASL of a state machine, with references replaced by plausible ARNs and names. */
export function definitionOf(template: Template, logicalIdPrefix: string): Record<string, unknown> {
  const machines = template.findResources("AWS::StepFunctions::StateMachine");
  const id = Object.keys(machines).find((k) => k.startsWith(logicalIdPrefix));
  if (!id) throw new Error(`no state machine ${logicalIdPrefix}`);
  const body = (machines[id] as { Properties: { DefinitionString: unknown } }).Properties
    .DefinitionString;
  return JSON.parse(resolveIntrinsic(body)) as Record<string, unknown>;
}
