import { readFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import {
  FileKnownHosts,
  type LocalCredential,
  LocalCredentialStore,
} from "../credentials/local-store.ts";
import type { PolicyDocument } from "../policy/policy.ts";
import { type Runtime, staticPolicy } from "../shared/runtime.ts";
import { type HandlerSettings, settingsFromEnv } from "../shared/settings.ts";
import { LOCAL_API, LOCAL_STATE_MACHINE } from "./api-event.ts";

/** The local mode config file (named by env `BSSH_CONFIG`). Paths are relative to the file. */
export interface LocalConfig {
  /** Credential name → key file (and passphrase) or password. */
  credentials: Record<string, LocalCredential>;
  /** OpenSSH known_hosts file. */
  knownHostsFile?: string;
  policy: PolicyDocument;
  /** Caller identity of local API requests (the IAM principal API Gateway would report). */
  callerArn: string;
  /**
   * The state machine local Step Functions invocations (`npm run invoke`) run as: the policy's
   * caller for them. @default LOCAL_STATE_MACHINE
   */
  stateMachineArn?: string;
}

/** Reads and checks a local config file; throws `TypeError` naming the problem. */
export function readLocalConfig(path: string): { config: LocalConfig; baseDir: string } {
  const absolute = resolve(path);
  const config = JSON.parse(readFileSync(absolute, "utf8")) as LocalConfig;
  if (!config || typeof config !== "object") throw new TypeError(`${path}: not a JSON object`);
  if (!config.credentials || typeof config.credentials !== "object") {
    throw new TypeError(`${path}: "credentials" must be an object`);
  }
  if (typeof config.callerArn !== "string") throw new TypeError(`${path}: "callerArn" is required`);
  if (!config.policy) throw new TypeError(`${path}: "policy" is required`);
  if ("workflowCallerArn" in config) {
    throw new TypeError(
      `${path}: "workflowCallerArn" is gone: tasks run as their state machine; set "stateMachineArn" (default ${LOCAL_STATE_MACHINE}) and name it in the policy's callers`,
    );
  }
  return { config, baseDir: dirname(absolute) };
}

/** The runtime of local mode: the same handlers, credentials and policy from the config file. */
export function localRuntime(
  path: string,
  overrides: Partial<Omit<Runtime, "settings">> & { settings?: Partial<HandlerSettings> } = {},
): Runtime {
  const { config, baseDir } = readLocalConfig(path);
  const settings = { ...settingsFromEnv(), ...overrides.settings };
  // Local events claim the local API; a state machine of the config's own naming runs tasks.
  settings.api ??= { ...LOCAL_API };
  if (settings.stateMachineArns.length === 0) {
    settings.stateMachineArns = [config.stateMachineArn ?? LOCAL_STATE_MACHINE];
  }
  const knownHostsPath =
    config.knownHostsFile === undefined
      ? undefined
      : isAbsolute(config.knownHostsFile)
        ? config.knownHostsFile
        : resolve(baseDir, config.knownHostsFile);
  return {
    credentials: new LocalCredentialStore(config.credentials, baseDir),
    knownHosts: new FileKnownHosts(knownHostsPath),
    policy: staticPolicy(config.policy),
    // No CloudWatch locally: metrics go to stdout as EMF unless the environment says otherwise.
    metrics: process.env.BSSH_METRICS_MODE === undefined ? { mode: "emf" } : {},
    ...overrides,
    settings,
  };
}
