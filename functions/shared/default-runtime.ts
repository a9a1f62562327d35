import { localRuntime } from "../local/local-config.ts";
import { awsRuntime, type Runtime } from "./runtime.ts";
import { ENV } from "./settings.ts";

/**
 * The runtime of the exported handlers: local mode when `BSSH_CONFIG` names a config file,
 * AWS otherwise. Built on first invocation; a configuration error throws (a deploy bug).
 */
export function defaultRuntime(env: NodeJS.ProcessEnv = process.env): Runtime {
  const configPath = env[ENV.config];
  return configPath ? localRuntime(configPath) : awsRuntime(env);
}
