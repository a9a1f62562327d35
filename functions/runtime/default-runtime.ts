import { ENV } from "../config/config.ts";
import { awsRuntime, type Runtime } from "./runtime.ts";

/**
 * The runtime of the exported handlers: local mode when `BSSH_CONFIG` names a config file,
 * AWS otherwise. Built on first invocation; a configuration error throws (a deploy bug).
 * Local mode's modules are loaded only in local mode: a deployed function never loads them.
 */
export async function defaultRuntime(env: NodeJS.ProcessEnv = process.env): Promise<Runtime> {
  const configPath = env[ENV.config];
  if (!configPath) return awsRuntime(env);
  const { localRuntime } = await import("../local/local-config.ts");
  return localRuntime(configPath);
}
