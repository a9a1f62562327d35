/**
 * A state machine that is not the project's own (examples/own-workflow: built with
 * `boundedSshTask` + `catchBoundedSshErrors`) runs the REAL task handler against a real sshd
 * on aws-local-stepfunctions, registered the way a deployment registers it: the ARN in the
 * deploy config's `callerStateMachines` reaches the task function's `BSSH_STATE_MACHINE_ARNS`
 * in the synthesized bounded-ssh stack, and the handler here serves exactly that list; the
 * policy names the ARN as a caller. A state machine not registered, or registered but not in
 * the policy, is refused before any session.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { App } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HANDLER_ENV } from "../../cdk/config.ts";
import { UptimeCheckStack } from "../../examples/own-workflow/own-workflow.ts";
import type { AuditLine } from "../../functions/audit/audit-log.ts";
import { createTaskHandler } from "../../functions/task.ts";
import { lambdaContext } from "../../local/lambda-context.ts";
import type { LocalConfig } from "../../local/local-config.ts";
import { localRuntime } from "../../local/local-config.ts";
import { LOOPBACK_DENY } from "../functions/support.ts";
import { type SshdServer, startSshd } from "../helpers/sshd.ts";
import { lambdaError, localStateMachineArn, runLocally } from "./local-sfn.ts";
import { definitionOf, resolveIntrinsic, synth } from "./synth.ts";

/**
 * In the fake Lambda context's region and account (`local`, 0…0): the task handler accepts
 * only state machines of its own account and region.
 */
const OWN_ARN = localStateMachineArn("uptime-check");
const UNREGISTERED_ARN = localStateMachineArn("someone-else");
const UNNAMED_ARN = localStateMachineArn("registered-only");
const TASK_FUNCTION_ARN = "arn:aws:lambda:eu-west-1:123456789012:function:prod-bounded-ssh-task";

// The bounded-ssh stack with the example registered (the deploy config's field, through the
// same props deployConfigProps passes).
const project = synth({ callerStateMachines: [OWN_ARN, UNNAMED_ARN] });
const served = (() => {
  const fns = project.template.findResources("AWS::Lambda::Function");
  const task = Object.entries(fns).find(([id]) => id.startsWith("TaskHandler"));
  if (!task) throw new Error("no TaskHandler function in the template");
  const env = (task[1] as { Properties: { Environment: { Variables: Record<string, unknown> } } })
    .Properties.Environment.Variables;
  return resolveIntrinsic(env[HANDLER_ENV.stateMachineArns]).split(",");
})();

// The user's own app: their stack, their state machine, the task function by ARN.
const app = new App();
const own = new UptimeCheckStack(app, "UptimeCheck", {
  env: { account: "123456789012", region: "eu-west-1" },
  taskFunctionArn: TASK_FUNCTION_ARN,
  stateMachineName: "uptime-check",
});
const ownTemplate = Template.fromStack(own);
const definition = definitionOf(ownTemplate, "UptimeCheck");

let sshd: SshdServer;
let configDir: string;
let handler: ReturnType<typeof createTaskHandler>;
const audits: AuditLine[] = [];

beforeAll(async () => {
  sshd = await startSshd();
  configDir = await mkdtemp(path.join(os.tmpdir(), "bssh-own-workflow-"));
  const config: LocalConfig = {
    credentials: { default: { privateKeyFile: sshd.keys.ed25519.path } },
    knownHostsFile: sshd.knownHostsPath,
    // Local mode's API caller; unused here (every event is a task).
    callerArn: "arn:aws:iam::123456789012:role/unused-api-caller",
    policy: {
      denyCidrs: LOOPBACK_DENY,
      replaceDefaultDenyCidrs: true,
      rules: [
        {
          id: "uptime-check",
          callers: [OWN_ARN],
          targets: {
            cidrs: ["127.0.0.0/8"],
            ports: [sshd.port],
            usernames: [sshd.username, "no-such-user"],
          },
          commands: { patterns: ["uptime"] },
          credentials: ["default"],
        },
      ],
    },
  };
  const configPath = path.join(configDir, "config.json");
  await writeFile(configPath, JSON.stringify(config));
  handler = createTaskHandler(
    localRuntime(configPath, {
      settings: { stateMachineArns: served },
      writeAuditLine: () => {},
      observe: (_record, line) => audits.push(line),
      metrics: { mode: "emf", writeLine: () => {} },
    }),
  );
});

afterAll(async () => {
  await sshd?.stop();
  if (configDir) await rm(configDir, { recursive: true, force: true });
});

/** The handler as Lambda runs it for Step Functions: JSON in/out, errors as Lambda's envelope. */
async function task(input: unknown): Promise<unknown> {
  const event = JSON.parse(JSON.stringify(input)) as never;
  try {
    return JSON.parse(JSON.stringify(await handler(event, lambdaContext({ timeoutMs: 10_000 }))));
  } catch (err) {
    const error = err as Error;
    throw lambdaError(error, (error.stack ?? "").split("\n"));
  }
}

const input = () => ({ host: "127.0.0.1", port: sshd.port, username: sshd.username });

describe("a state machine of your own (examples/own-workflow)", () => {
  it("is registered by callerStateMachines: the task function serves it beside the stack's two", () => {
    expect(served).toHaveLength(4);
    expect(served).toEqual(expect.arrayContaining([OWN_ARN, UNNAMED_ARN]));
    expect(served.filter((arn) => /:stateMachine:Test-(SingleHost|Fleet)$/.test(arn))).toHaveLength(
      2,
    );
    project.template.hasOutput("TaskFunctionArn", {});
    project.template.hasOutput("ApiFunctionArn", {});
  });

  it("gets invoke on the task function from its own stack (its role, nothing on the function)", () => {
    const policies = Object.values(ownTemplate.findResources("AWS::IAM::Policy"));
    const statements = policies.flatMap(
      (p) =>
        (p as { Properties: { PolicyDocument: { Statement: Record<string, unknown>[] } } })
          .Properties.PolicyDocument.Statement,
    );
    expect(statements).toContainEqual(
      expect.objectContaining({
        Action: "lambda:InvokeFunction",
        Resource: expect.arrayContaining([TASK_FUNCTION_ARN]),
      }),
    );
  });

  it("retries and catches exactly as the project's single-host workflow", () => {
    const mine = (definition.States as Record<string, Record<string, unknown>>).CheckUptime!;
    const single = definitionOf(project.template, "WorkflowsSingleHost");
    const theirs = (single.States as Record<string, Record<string, unknown>>).RunCommand!;
    expect(mine.Retry).toEqual(theirs.Retry);
    const errorsOf = (s: Record<string, unknown>) =>
      (s.Catch as { ErrorEquals: string[] }[]).map((c) => c.ErrorEquals);
    expect(errorsOf(mine)).toEqual(errorsOf(theirs));
    expect(mine.TimeoutSeconds).toBe(theirs.TimeoutSeconds);
  });

  it("runs the real task handler against a real sshd; the policy accepts it as the caller", async () => {
    const before = audits.length;
    const { output, error } = await runLocally(definition, "CheckUptime", input(), task, OWN_ARN);
    expect(error).toBeUndefined();
    expect(output).toEqual({
      host: "127.0.0.1",
      uptime: { status: "succeeded", exitCode: 0, stdout: expect.stringMatching(/load average/) },
    });
    expect(audits.slice(before)).toContainEqual(
      expect.objectContaining({ source: "task", caller: OWN_ARN }),
    );
  });

  it("a session error fails with its SPEC §6 name and the result parsed back", async () => {
    // Allowed by the policy, refused by sshd: AuthFailed is a session error (not retried).
    const { failed, stateOutput, events } = await runLocally(
      definition,
      "CheckUptime",
      { ...input(), username: "no-such-user" },
      task,
      OWN_ARN,
    );
    expect(failed).toMatchObject({ Error: "AuthFailed" });
    expect(stateOutput("UptimeKeepResult")).toMatchObject({
      error: { Error: "AuthFailed" },
      result: { status: "error", phase: "auth", error: { name: "AuthFailed" } },
    });
    expect(events.some((e) => e.state?.name === "UptimeCommandError")).toBe(true);
  });

  it("a state machine not in callerStateMachines is refused (CallerNotAllowed)", async () => {
    const { failed, events } = await runLocally(
      definition,
      "CheckUptime",
      input(),
      task,
      UNREGISTERED_ARN,
    );
    expect(failed).toMatchObject({ Error: "CallerNotAllowed" });
    expect(events.some((e) => e.state?.name === "UptimeRequestRefused")).toBe(true);
  });

  it("a registered state machine no policy rule names is refused by the policy", async () => {
    const { failed } = await runLocally(definition, "CheckUptime", input(), task, UNNAMED_ARN);
    expect(failed).toMatchObject({ Error: "TargetNotAllowed" });
    expect(String(failed?.Cause)).toContain(`no policy rule allows caller ${UNNAMED_ARN}`);
  });

  it("its CDK app synthesizes with the task function's ARN, and names the fix without it", async () => {
    const run = promisify(execFile);
    const outdir = path.join(configDir, "cdk.out");
    const tsx = path.resolve("node_modules/.bin/tsx");
    await run(tsx, ["examples/own-workflow/app.ts"], {
      env: {
        ...process.env,
        CDK_OUTDIR: outdir,
        CDK_CONTEXT_JSON: JSON.stringify({ taskFunctionArn: TASK_FUNCTION_ARN }),
      },
    });
    const synthesized = JSON.parse(
      readFileSync(path.join(outdir, "UptimeCheck.template.json"), "utf8"),
    ) as { Resources: Record<string, { Type: string; Properties: Record<string, unknown> }> };
    const machine = Object.values(synthesized.Resources).find(
      (r) => r.Type === "AWS::StepFunctions::StateMachine",
    );
    expect(machine?.Properties.StateMachineName).toBe("uptime-check");
    await expect(
      run(tsx, ["examples/own-workflow/app.ts"], {
        env: { ...process.env, CDK_OUTDIR: outdir, CDK_CONTEXT_JSON: "{}" },
      }),
    ).rejects.toMatchObject({ stderr: expect.stringContaining("-c taskFunctionArn=") });
  }, 60_000);
});
