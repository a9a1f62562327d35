import { accessSync, constants, readFileSync, statSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import {
  type HandlerSettings,
  metricsConfigFromEnv,
  settingsFromEnv,
} from "../functions/config/config.ts";
import {
  FileKnownHosts,
  type LocalCredential,
  LocalCredentialStore,
} from "../functions/credentials/local-store.ts";
import type { PolicyDocument } from "../functions/policy/policy.ts";
import { staticPolicy } from "../functions/policy/policy-source.ts";
import type { Runtime } from "../functions/runtime/runtime.ts";
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

/**
 * A local config that cannot work: the message names the file, the field and the fix, in
 * one line (the CLIs print it as is).
 */
export class LocalConfigError extends TypeError {
  override name = "LocalConfigError";
}

/** Resolves a path of the config file (relative to the file's folder). */
export function configPath(baseDir: string, path: string): string {
  return isAbsolute(path) ? path : resolve(baseDir, path);
}

function errnoOf(err: unknown): string {
  return String((err as { code?: unknown }).code ?? (err as Error).message);
}

/** Throws unless `path` is a readable regular file; `what` and `fix` go into the message. */
function checkReadable(config: string, what: string, path: string, fix: string): void {
  let isFile: boolean;
  try {
    isFile = statSync(path).isFile();
    accessSync(path, constants.R_OK);
  } catch (err) {
    const code = errnoOf(err);
    const problem = code === "ENOENT" ? "does not exist" : `cannot be read (${code})`;
    throw new LocalConfigError(`${config}: ${what} ${path} ${problem}: ${fix}`);
  }
  if (!isFile) throw new LocalConfigError(`${config}: ${what} ${path} is not a file: ${fix}`);
}

/**
 * Reads a local config file and checks its shape (it parses, has the required fields).
 * Throws {@link LocalConfigError} naming the file and the fix.
 */
export function readLocalConfig(path: string): { config: LocalConfig; baseDir: string } {
  const absolute = resolve(path);
  let text: string;
  try {
    text = readFileSync(absolute, "utf8");
  } catch (err) {
    const code = errnoOf(err);
    throw new LocalConfigError(
      code === "ENOENT"
        ? `${path}: no such config file: write one with \`npm run init -- user@host\`, or point BSSH_CONFIG at an existing file`
        : `${path}: the config file cannot be read (${code}): check its permissions`,
    );
  }
  let config: LocalConfig;
  try {
    config = JSON.parse(text) as LocalConfig;
  } catch (err) {
    throw new LocalConfigError(
      `${path}: not valid JSON (${(err as Error).message}): fix the syntax`,
    );
  }
  if (!config || typeof config !== "object" || Array.isArray(config)) {
    throw new LocalConfigError(`${path}: not a JSON object`);
  }
  if (!config.credentials || typeof config.credentials !== "object") {
    throw new LocalConfigError(`${path}: "credentials" must be an object`);
  }
  if (typeof config.callerArn !== "string") {
    throw new LocalConfigError(`${path}: "callerArn" is required`);
  }
  if (!config.policy) throw new LocalConfigError(`${path}: "policy" is required`);
  if ("workflowCallerArn" in config) {
    throw new LocalConfigError(
      `${path}: "workflowCallerArn" is gone: tasks run as their state machine; set "stateMachineArn" (default ${LOCAL_STATE_MACHINE}) and name it in the policy's callers`,
    );
  }
  return { config, baseDir: dirname(absolute) };
}

/**
 * {@link readLocalConfig}, then every file the config names exists and is readable: what the
 * local commands run before anything listens, so a mistake is one line naming the file and
 * the fix instead of an HTTP 500 later. (The runtime itself reads files per request, so a key
 * removed later is still the request's `CredentialInvalid`.)
 */
export function checkLocalConfig(path: string): { config: LocalConfig; baseDir: string } {
  const { config, baseDir } = readLocalConfig(path);
  for (const [name, entry] of Object.entries(config.credentials)) {
    if (entry && typeof entry === "object" && "password" in entry) continue;
    const ca = entry && typeof entry === "object" && "certificateAuthority" in entry;
    const file = (
      ca
        ? (entry.certificateAuthority as { privateKeyFile?: unknown } | null)
        : (entry as { privateKeyFile?: unknown } | null)
    )?.privateKeyFile;
    if (typeof file !== "string") {
      throw new LocalConfigError(
        ca
          ? `${path}: credentials.${name}.certificateAuthority needs "privateKeyFile"`
          : `${path}: credentials.${name} needs "privateKeyFile", "password" or "certificateAuthority"`,
      );
    }
    const keyPath = configPath(baseDir, file);
    checkReadable(
      path,
      `credentials.${name}${ca ? ".certificateAuthority" : ""}.privateKeyFile`,
      keyPath,
      `create it (ssh-keygen -t ed25519 -N '' -f ${keyPath}) or fix the path (relative to the config file)`,
    );
  }
  if (config.knownHostsFile !== undefined) {
    if (typeof config.knownHostsFile !== "string") {
      throw new LocalConfigError(`${path}: "knownHostsFile" must be a path`);
    }
    checkReadable(
      path,
      "knownHostsFile",
      configPath(baseDir, config.knownHostsFile),
      "add a host with `npm run trust -- host[:port]` (same BSSH_CONFIG), or fix the path (relative to the config file)",
    );
  }
  return { config, baseDir };
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
    config.knownHostsFile === undefined ? undefined : configPath(baseDir, config.knownHostsFile);
  let policy: Runtime["policy"];
  try {
    policy = staticPolicy(config.policy);
  } catch (err) {
    throw new LocalConfigError(`${path}: policy: ${(err as Error).message}`);
  }
  return {
    credentials: new LocalCredentialStore(config.credentials, baseDir),
    knownHosts: new FileKnownHosts(knownHostsPath),
    policy,
    // No CloudWatch locally: metrics go to stdout as EMF unless the environment says otherwise.
    metrics: { mode: "emf", ...metricsConfigFromEnv(process.env) },
    ...overrides,
    settings,
  };
}
