import { containerConfig } from "../config/config.ts";
import { awsRuntime, type Runtime } from "./runtime.ts";

/**
 * The runtime of the exported (deployed) handlers: AWS, from the container's configuration.
 * Built on first invocation; a configuration error throws (a deploy bug). Local mode builds
 * its own handlers over its own runtime (`local/`); nothing here imports it, so a
 * deployed bundle never contains it (test/functions/deployed-imports.test.ts).
 */
export async function defaultRuntime(): Promise<Runtime> {
  return awsRuntime(containerConfig());
}
