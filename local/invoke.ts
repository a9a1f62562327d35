/**
 * `npm run invoke -- <event.json | ->`: runs the Step Functions handler (functions/task.ts) on
 * one event, locally, with a Lambda-like context. stdout carries only the result (or the
 * error envelope), so `| jq` works; logs, audit lines and metrics go to stderr. When the
 * handler throws, prints `{ error, cause }`, writes the error name on stderr and exits 1.
 */
import { readFileSync } from "node:fs";
import { ENV } from "../operations/environment.ts";
import { toTaskEvent } from "./api-event.ts";
import { runCli, UsageError } from "./cli.ts";
import { lambdaContext } from "./lambda-context.ts";

const HELP = `
usage: BSSH_CONFIG=<config.json> npm run invoke -- <event.json | ->

Runs the Step Functions task handler (functions/task.ts) on one event: a bare request
({"host", "username", "command", …}) is wrapped as the state machine would, as
{ request, execution } with the config's stateMachineArn. "-" reads the event from stdin.
stdout: only the result JSON (or {"error", "cause"} and exit 1, what a Catch would match);
logs, audit lines and metrics go to stderr. Function timeout and reserve are the deployed
task function's (cdk/config.ts) unless BSSH_FUNCTION_TIMEOUT_MS / BSSH_RESERVE_MS are set.
`;

async function main(args: string[]): Promise<void> {
  const file = args[0];
  if (!file || args.length > 1) throw new UsageError("expected one event file (or -); see --help");
  const configPath = process.env[ENV.config];
  if (!configPath) {
    throw new UsageError(
      `set ${ENV.config} to a local config file (npm run init -- user@host writes .bssh/config.json)`,
    );
  }
  // Loaded here, not at the top: --help answers without loading the handlers.
  const { localTimeouts } = await import("./local-timeouts.ts");
  const { checkLocalConfig, localRuntime } = await import("./local-config.ts");
  const timeouts = localTimeouts("task");
  const { config } = checkLocalConfig(configPath);
  let event: unknown;
  try {
    event = JSON.parse(readFileSync(file === "-" ? 0 : file, "utf8"));
  } catch (err) {
    const what = file === "-" ? "stdin" : file;
    throw new UsageError(`cannot read the event from ${what}: ${(err as Error).message}`);
  }
  // stdout is the result's alone: everything the handler logs goes to stderr.
  const toStderr = (line: string) => process.stderr.write(`${line}\n`);
  const { createTaskHandler } = await import("../functions/task.ts");
  const handler = createTaskHandler(
    localRuntime(configPath, {
      settings: { reserveMs: timeouts.reserveMs },
      metrics: { mode: "emf", writeLine: toStderr },
      writeAuditLine: toStderr,
    }),
  );
  const print = (value: unknown) => process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  try {
    // A bare request is wrapped as the state machine would: { request, execution }.
    const result = await handler(
      toTaskEvent(event, config.stateMachineArn),
      lambdaContext({ timeoutMs: timeouts.functionTimeoutMs }),
    );
    print(result);
  } catch (err) {
    const error = err as Error;
    let payload: unknown = error.message;
    try {
      payload = JSON.parse(error.message);
    } catch {
      // Not JSON: a crash outside the handler's error mapping; print the message as is.
    }
    print({ error: error.name, cause: payload });
    console.error(error.name);
    process.exitCode = 1;
  }
}

await runCli("invoke", HELP, main);
