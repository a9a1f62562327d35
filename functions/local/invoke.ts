/**
 * `npm run invoke -- <event.json>`: runs the Step Functions handler (functions/task.ts) on one
 * event file, locally, with a Lambda-like context. Prints the result; when the handler throws,
 * prints the error name (what a `Catch` would match) and its JSON payload and exits 1.
 */
import { readFileSync } from "node:fs";
import { ENV } from "../shared/settings.ts";
import { toTaskEvent } from "./api-event.ts";
import { lambdaContext, localFunctionTimeoutMs } from "./lambda-context.ts";

const file = process.argv[2];
if (!file) {
  console.error("usage: npm run invoke -- <event.json>");
  process.exit(2);
}
if (!process.env[ENV.config]) {
  console.error(`set ${ENV.config} to a local config file (see docs/local-mode.md)`);
  process.exit(2);
}
let event: unknown;
try {
  event = JSON.parse(readFileSync(file, "utf8"));
} catch (err) {
  console.error(`cannot read ${file}: ${(err as Error).message}`);
  process.exit(2);
}
const { handler } = await import("../task.ts");
const { readLocalConfig } = await import("./local-config.ts");
const { stateMachineArn } = readLocalConfig(process.env[ENV.config]!).config;
try {
  // A bare request is wrapped as the state machine would: { request, execution }.
  const result = await handler(
    toTaskEvent(event, stateMachineArn),
    lambdaContext({ timeoutMs: localFunctionTimeoutMs() }),
  );
  console.log(JSON.stringify(result, null, 2));
} catch (err) {
  const error = err as Error;
  let payload: unknown = error.message;
  try {
    payload = JSON.parse(error.message);
  } catch {
    // Not JSON: a crash outside the handler's error mapping; print the message as is.
  }
  console.log(JSON.stringify({ error: error.name, cause: payload }, null, 2));
  console.error(error.name);
  process.exitCode = 1;
}
